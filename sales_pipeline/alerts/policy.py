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
KIND_ORDER = {"sales_drop": 0, "stock_risk": 1, "customer_churn": 2}  # what costs sales today comes first


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
        pairs[column] = pairs[column].eq(True)  # absent after the left merge: False
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


def _in_order(rows: pd.DataFrame) -> pd.DataFrame:
    """The order messages tell alerts in: the chain's drops first, then drops, stock-outs, churn, then by id.

    A message tells so many in full (a chat card ten): the planted store drop and stock-out of the demo
    must not fall behind its regulars who stopped coming.
    """
    ranked = rows.assign(
        chain=rows["entity_type"] != "total", rank=rows["kind"].map(KIND_ORDER).fillna(len(KIND_ORDER))
    )
    return ranked.sort_values(["chain", "rank", "kind", "alert_id"]).drop(columns=["rank"])


def _per_recipient(rows: pd.DataFrame) -> list[tuple[tuple[str, str], list[int]]]:
    """((channel, recipient), alert ids in telling order) for each recipient of `rows`."""
    ordered = _in_order(rows)
    ids = ordered.groupby(["channel", "recipient"], sort=True)["alert_id"].agg(list)
    return [(key, [int(i) for i in values]) for key, values in ids.items()]


def _groups(rows: pd.DataFrame, kind: str, prefix: str) -> list[Planned]:
    return [
        Planned(kind, channel, recipient, _key(prefix, ids), tuple(ids))
        for (channel, recipient), ids in _per_recipient(rows)
    ]


def _first_groups(new: pd.DataFrame, open_pushed: pd.DataFrame) -> list[Planned]:
    """Each recipient's new critical alerts; the same day's store and category drops under a chain drop
    are inhibited: named in its message, or held back while an earlier message about it stands."""
    if new.empty:
        return []
    keys = ["channel", "recipient", "detected_on"]
    chain = open_pushed[(open_pushed["kind"] == "sales_drop") & (open_pushed["entity_type"] == "total")]
    chain_days = chain[keys].drop_duplicates().assign(under_chain=True)
    new_chain = new[new["entity_type"] == "total"]
    told_days = new_chain[keys].drop_duplicates().assign(chain_told_now=True)
    rows = new.merge(chain_days, how="left", on=keys).merge(told_days, how="left", on=keys)
    under = rows["under_chain"].eq(True)
    rows["inhibited"] = (rows["kind"] == "sales_drop") & rows["entity_type"].isin(["store", "category"]) & under
    rows["named"] = rows["inhibited"] & rows["chain_told_now"].eq(True)
    told = dict(_per_recipient(rows[~rows["inhibited"]]))
    named = dict(_per_recipient(rows[rows["named"]]))
    # A recipient with only drops under a chain drop told before gets nothing: they wait while it stands.
    return [
        Planned(
            "first",
            channel,
            recipient,
            _key("first", ids + named.get((channel, recipient), [])),
            tuple(ids),
            tuple(named.get((channel, recipient), [])),
        )
        for (channel, recipient), ids in told.items()
    ]


def _digests(pairs: pd.DataFrame, made: frozenset[tuple[str, str]], policy: Policy, now: dt.datetime) -> list[Planned]:
    """Today's digest for each email recipient with a warning new for them, once the digest time has passed."""
    local = now.astimezone(ZoneInfo(policy.timezone))
    if local.time() < policy.digest_time:
        return []
    key = f"digest:{local.date().isoformat()}"
    emailed = pairs[(pairs["channel"] == "email") & (pairs["status"] == "open")]
    listed = emailed[(emailed["severity"] == "warning") | (_product_drop(emailed) & (emailed["severity"] != "info"))]
    made_today = {recipient for recipient, made_key in made if made_key == key}
    listed = listed[~listed["recipient"].isin(made_today)]
    new = dict(_per_recipient(listed[~listed["in_digest"]]))
    earlier = dict(_per_recipient(listed[listed["in_digest"]]))
    return [
        Planned("digest", "email", recipient, key, tuple(ids), earlier_ids=tuple(earlier.get((channel, recipient), [])))
        for (channel, recipient), ids in new.items()
    ]
