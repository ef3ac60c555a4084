"""What to send now: the alerting policy, in the spirit of Prometheus Alertmanager.

- **Critical** alerts go out at once, grouped per recipient per tick: one email to each routed
  recipient with every critical alert that is new for them, and one webhook message with all of them.
- **Warnings** wait for the daily digest: one email per recipient at ALERT_DIGEST_TIME (in
  PIPELINE_TIMEZONE), sent when the day has a warning new for them; it lists the new ones and, below,
  those of earlier digests still open. Each alert appears once in it.
- **Info** stays on the dashboard.
- **Product-level drops** (about 0.2 false alarms a day at 80 products, see anomalies/drops.py) only go
  into the digest, whatever their severity: never pushed.
- **Reminders**: an open critical alert (not acknowledged, not snoozed) is sent again to whoever got it
  every ALERT_REPEAT_HOURS.
- **Resolved**: a critical alert whose situation is over sends one note to whoever got it.
- **Inhibition**: a drop of the chain's total revenue inhibits the same day's drops of its stores and
  categories in the same message (one story, not ten): they are named under it, not told apart; while
  it is open and already told, those drops wait.

`plan` is a pure function of what the warehouse holds (`read_state`), so the sensor can run it to decide
whether a delivery run is needed, and the run runs it again, under a lock, to write the messages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.alerts.outbox import WEBHOOK_RECIPIENT
from sales_pipeline.alerts.routing import Routing
from sales_pipeline.warehouse.db import read_frame

RESOLVED_NOTE_WITHIN = dt.timedelta(days=7)  # a resolved note is sent for alerts resolved this recently


@dataclass(frozen=True)
class Policy:
    timezone: str = "UTC"
    digest_time: dt.time = dt.time(7, 0)
    repeat_hours: float = 24.0
    webhook: bool = False  # whether a webhook receives the pushed alerts


@dataclass(frozen=True)
class Planned:
    """One message to write: who, on which channel, about which alerts."""

    kind: str  # first, reminder, resolved, digest
    channel: str
    recipient: str
    group_key: str
    alert_ids: tuple[int, ...]
    inhibited_ids: tuple[int, ...] = ()  # first: named under the chain's drop
    earlier_ids: tuple[int, ...] = ()  # digest: still open from earlier digests


@dataclass(frozen=True)
class State:
    alerts: pd.DataFrame  # open, acknowledged, snoozed, and recently resolved alerts
    history: pd.DataFrame  # (alert_id, kind, channel, recipient, state, created_at) of messages about them
    digests: frozenset[tuple[str, str]] = frozenset()  # (recipient, group_key) of the recent digests


def read_state(cursor: Cursor, now: dt.datetime) -> State:
    alerts = read_frame(
        cursor,
        "SELECT alert_id, kind, severity, entity_type, store_id, category, detected_on, status FROM ops.alerts"
        " WHERE status <> 'resolved' OR resolved_at > %s",
        (now - RESOLVED_NOTE_WITHIN,),
    )
    history = read_frame(
        cursor,
        "SELECT l.alert_id, n.kind, n.channel, n.recipient, n.state, n.created_at"
        " FROM ops.notification_alerts AS l JOIN ops.notifications AS n USING (notification_id)"
        " WHERE l.alert_id = ANY(%s)",
        (alerts["alert_id"].tolist(),),
    )
    cursor.execute(
        "SELECT recipient, group_key FROM ops.notifications WHERE kind = 'digest' AND created_at > %s",
        (now - dt.timedelta(days=2),),
    )
    return State(alerts, history, frozenset(cursor.fetchall()))


def plan(state: State, routing: Routing, policy: Policy, now: dt.datetime) -> list[Planned]:
    """The messages due now (see the module docstring), most urgent first."""
    pairs = _routed(state.alerts, routing, policy)
    if pairs.empty:
        return []
    pairs = pairs.merge(_told(state.history), how="left", on=["alert_id", "channel", "recipient"])
    for column in ("first_any", "first_sent", "resolved_any", "in_digest"):
        pairs[column] = pairs[column].fillna(False).astype(bool)
    pushed = (pairs["severity"] == "critical") & ~_product_drop(pairs)
    is_open = pairs["status"] == "open"
    repeat_before = now - dt.timedelta(hours=policy.repeat_hours)

    first = pairs[pushed & is_open & ~pairs["first_any"]]
    reminder = pairs[pushed & is_open & pairs["first_any"] & (pairs["last_push_at"] <= repeat_before)]
    resolved = pairs[(pairs["status"] == "resolved") & pairs["first_sent"] & ~pairs["resolved_any"]]
    planned = _first_groups(first, pairs[pushed & is_open])
    planned += _groups(reminder, "reminder", f"reminder:{now:%Y-%m-%dT%H:%M}")
    planned += _groups(resolved, "resolved", "resolved")
    planned += _digests(pairs, state.digests, policy, now)
    return planned


def _routed(alerts: pd.DataFrame, routing: Routing, policy: Policy) -> pd.DataFrame:
    """One row per (alert, channel, recipient): email to the routed addresses, the webhook for pushed kinds."""
    if alerts.empty:
        return pd.DataFrame(columns=[*alerts.columns, "channel", "recipient"])
    recipients = routing.recipients(alerts)
    rows = [(alert_id, "email", address) for alert_id, addresses in recipients.items() for address in addresses]
    if policy.webhook:
        pushable = alerts[(alerts["severity"] == "critical") & ~_product_drop(alerts)]
        rows += [(int(alert_id), "webhook", WEBHOOK_RECIPIENT) for alert_id in pushable["alert_id"]]
    routed = pd.DataFrame(rows, columns=["alert_id", "channel", "recipient"])
    return alerts.merge(routed, on="alert_id")


def _product_drop(alerts: pd.DataFrame) -> pd.Series:
    return (alerts["kind"] == "sales_drop") & (alerts["entity_type"] == "product")


def _told(history: pd.DataFrame) -> pd.DataFrame:
    """Per (alert, channel, recipient): what they were already sent about it."""
    keys = ["alert_id", "channel", "recipient"]
    if history.empty:
        return pd.DataFrame(columns=[*keys, "first_any", "first_sent", "resolved_any", "in_digest", "last_push_at"])
    h = history.assign(
        first_any=history["kind"] == "first",
        first_sent=(history["kind"] == "first") & (history["state"] == "sent"),
        resolved_any=history["kind"] == "resolved",
        in_digest=history["kind"] == "digest",
        push_at=history["created_at"].where(history["kind"].isin(["first", "reminder"])),
    )
    return h.groupby(keys, as_index=False).agg(
        first_any=("first_any", "any"),
        first_sent=("first_sent", "any"),
        resolved_any=("resolved_any", "any"),
        in_digest=("in_digest", "any"),
        last_push_at=("push_at", "max"),
    )


def _key(prefix: str, ids: list[int]) -> str:
    return f"{prefix}:{hashlib.sha256(','.join(map(str, sorted(ids))).encode()).hexdigest()[:16]}"


def _ordered(rows: pd.DataFrame) -> list[int]:
    """Alert ids, the chain's drops first, then by kind and id: the order the message tells them."""
    order = rows.assign(chain=rows["entity_type"] != "total").sort_values(["chain", "kind", "alert_id"])
    return [int(a) for a in order["alert_id"]]


def _groups(rows: pd.DataFrame, kind: str, prefix: str) -> list[Planned]:
    return [
        Planned(kind, channel, recipient, _key(prefix, ids := _ordered(group)), tuple(ids))
        for (channel, recipient), group in rows.groupby(["channel", "recipient"], sort=True)
    ]


def _first_groups(new: pd.DataFrame, open_pushed: pd.DataFrame) -> list[Planned]:
    """Each recipient's new critical alerts; the same day's store and category drops under a chain drop
    are inhibited: named in its message, or held back while an earlier message about it stands."""
    planned = []
    chain_drops = open_pushed[(open_pushed["kind"] == "sales_drop") & (open_pushed["entity_type"] == "total")]
    for (channel, recipient), group in new.groupby(["channel", "recipient"], sort=True):
        theirs = chain_drops[(chain_drops["channel"] == channel) & (chain_drops["recipient"] == recipient)]
        inhibited = (
            (group["kind"] == "sales_drop")
            & group["entity_type"].isin(["store", "category"])
            & group["detected_on"].isin(set(theirs["detected_on"]))
        )
        told_now = group[~inhibited]
        if told_now.empty:
            continue  # only drops under a chain drop told before: they wait while it stands
        held = group[inhibited]
        new_chain_days = set(told_now.loc[told_now["entity_type"] == "total", "detected_on"])
        named = held[held["detected_on"].isin(new_chain_days)]
        ids = _ordered(told_now)
        inhibited_ids = _ordered(named)
        planned.append(
            Planned("first", channel, recipient, _key("first", ids + inhibited_ids), tuple(ids), tuple(inhibited_ids))
        )
    return planned


def _digests(pairs: pd.DataFrame, made: frozenset[tuple[str, str]], policy: Policy, now: dt.datetime) -> list[Planned]:
    """Today's digest for each email recipient with a warning new for them, once the digest time has passed."""
    local = now.astimezone(ZoneInfo(policy.timezone))
    if local.time() < policy.digest_time:
        return []
    key = f"digest:{local.date().isoformat()}"
    emailed = pairs[(pairs["channel"] == "email") & (pairs["status"] == "open")]
    listed = emailed[(emailed["severity"] == "warning") | (_product_drop(emailed) & (emailed["severity"] != "info"))]
    planned = []
    for recipient, group in listed.groupby("recipient", sort=True):
        new = group[~group["in_digest"]]
        if new.empty or (recipient, key) in made:
            continue
        earlier = tuple(_ordered(group[group["in_digest"]]))
        planned.append(Planned("digest", "email", recipient, key, tuple(_ordered(new)), earlier_ids=earlier))
    return planned
