"""ops.alerts: the situations people act on, following ml.anomalies, and what people do with them.

An alert is one situation of ml.anomalies (its dedupe key). `follow_anomalies` runs in the anomaly
refresh's own transaction: it opens an alert for each new situation, updates the ongoing ones
(severity, numbers) and resolves those the detection no longer finds. It also records what routing
matches on: the store (a store's drop, a stock position's store, a churned customer's usual store)
and the category (a category's drop, a product's category), NULL for chain-wide.

Each alert opened, escalated (its severity rose), acknowledged, snoozed or resolved sends a PostgreSQL
NOTIFY on the channel `ALERTS_CHANNEL` with a small JSON payload, e.g.
``{"event": "opened", "alert_id": 17, "kind": "stock_risk", "severity": "critical"}``, delivered when
the transaction commits: a listener (the read API's WebSocket) wakes up and reads ops.alerts.

Statuses: open -> acknowledged (someone is on it: no more reminders) or snoozed (no reminders until
`snoozed_until`, then open again) -> resolved (the detection no longer finds it; a situation found
again reopens).
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.warehouse.db import read_frame, refresh_in_turn

ALERTS_CHANNEL = "sales_pipeline_alerts"
STATUSES = ("open", "acknowledged", "snoozed", "resolved")
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class AlertError(ValueError):
    """An alert that cannot be acknowledged or snoozed: unknown, or already resolved."""


_FOLLOW = """
WITH active AS (
    SELECT a.*,
           CASE a.entity_type WHEN 'product' THEN a.entity_id
                              WHEN 'product_store' THEN regexp_replace(a.entity_id, '@[^@]*$', '') END AS product_id,
           CASE a.entity_type WHEN 'store' THEN a.entity_id
                              WHEN 'product_store' THEN substring(a.entity_id FROM '[^@]*$') END AS own_store_id
    FROM ml.anomalies AS a
    WHERE a.kind = %(kind)s AND a.active
),
usual_store AS (
    -- A customer's store: where they bought most lines (the latest on a tie).
    SELECT DISTINCT ON (customer_id) customer_id, store_id
    FROM core.sales
    WHERE customer_id IN (SELECT entity_id FROM active WHERE entity_type = 'customer')
    GROUP BY customer_id, store_id
    ORDER BY customer_id, count(*) DESC, max(sold_at) DESC
),
located AS (
    SELECT a.*, coalesce(a.own_store_id, u.store_id) AS store_id,
           CASE a.entity_type WHEN 'category' THEN a.entity_id ELSE p.category END AS category,
           p.name AS product_name, p.unit_price, c.name AS customer_name
    FROM active AS a
    LEFT JOIN usual_store AS u ON a.entity_type = 'customer' AND u.customer_id = a.entity_id
    LEFT JOIN core.products AS p ON p.product_id = a.product_id
    LEFT JOIN core.customers AS c ON a.entity_type = 'customer' AND c.customer_id = a.entity_id
),
previous AS (
    SELECT dedupe_key, severity, status FROM ops.alerts WHERE kind = %(kind)s
),
upserted AS (
    INSERT INTO ops.alerts AS t (dedupe_key, kind, severity, entity_type, entity_id, store_id, category,
                                 detected_on, message, numbers, context, first_seen_at, last_seen_at)
    SELECT l.dedupe_key, l.kind, l.severity, l.entity_type, l.entity_id, l.store_id, l.category, l.detected_on,
           l.message, l.numbers,
           jsonb_strip_nulls(jsonb_build_object(
               'store_name', s.name, 'store_city', s.city, 'product_id', l.product_id,
               'product_name', l.product_name, 'unit_price', l.unit_price, 'customer_name', l.customer_name)),
           %(now)s, %(now)s
    FROM located AS l
    LEFT JOIN core.stores AS s ON s.store_id = l.store_id
    ON CONFLICT (dedupe_key) DO UPDATE SET
        severity = EXCLUDED.severity, store_id = EXCLUDED.store_id, category = EXCLUDED.category,
        detected_on = EXCLUDED.detected_on, message = EXCLUDED.message, numbers = EXCLUDED.numbers,
        context = EXCLUDED.context, last_seen_at = EXCLUDED.last_seen_at,
        status = CASE WHEN t.status = 'resolved' THEN 'open' ELSE t.status END,
        resolved_at = NULL
    RETURNING t.alert_id, t.dedupe_key, t.kind, t.severity
)
SELECT u.alert_id, u.kind, u.severity, p.severity AS previous_severity, p.status AS previous_status
FROM upserted AS u
LEFT JOIN previous AS p USING (dedupe_key)
"""

_RESOLVE = """
UPDATE ops.alerts AS t SET status = 'resolved', resolved_at = %(now)s
WHERE t.kind = %(kind)s AND t.status <> 'resolved'
  AND NOT EXISTS (SELECT 1 FROM ml.anomalies AS a WHERE a.dedupe_key = t.dedupe_key AND a.active)
RETURNING t.alert_id, t.kind, t.severity
"""


def follow_anomalies(cursor: Cursor, kind: str, now: dt.datetime | None = None) -> dict[str, int]:
    """Bring the alerts of `kind` in line with the active anomalies of that kind (call it right after
    `record_anomalies`, in the same transaction); returns how many were opened, escalated, resolved."""
    now = now or dt.datetime.now(dt.UTC)
    refresh_in_turn(cursor, f"ops.alerts:{kind}")
    params = {"kind": kind, "now": now}
    cursor.execute(_FOLLOW, params)
    events = []
    for alert_id, alert_kind, severity, previous_severity, previous_status in cursor.fetchall():
        if previous_severity is None or previous_status == "resolved":
            events.append(("opened", alert_id, alert_kind, severity))
        elif SEVERITY_RANK[severity] > SEVERITY_RANK[previous_severity]:
            events.append(("escalated", alert_id, alert_kind, severity))
    cursor.execute(_RESOLVE, params)
    resolved = [("resolved", *row) for row in cursor.fetchall()]
    _notify(cursor, events + resolved)
    counts = {"opened": 0, "escalated": 0, "resolved": len(resolved)}
    for event, *_ in events:
        counts[event] += 1
    return counts


def _notify(cursor: Cursor, events: list[tuple[str, int, str, str]]) -> None:
    """One NOTIFY per event, sent by PostgreSQL when the transaction commits."""
    if not events:
        return
    payloads = [
        json.dumps({"event": event, "alert_id": alert_id, "kind": kind, "severity": severity})
        for event, alert_id, kind, severity in events
    ]
    cursor.execute("SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload", (ALERTS_CHANNEL, payloads))


def acknowledge(cursor: Cursor, alert_id: int, by: str, now: dt.datetime | None = None) -> None:
    """Someone is on it: no more reminders (the resolved note still goes out)."""
    now = now or dt.datetime.now(dt.UTC)
    _change(cursor, alert_id, "acknowledged", {"acknowledged_by": by, "acknowledged_at": now, "snoozed_until": None})


def snooze(cursor: Cursor, alert_id: int, until: dt.datetime, now: dt.datetime | None = None) -> None:
    """No reminders until `until`; then the alert is open again."""
    now = now or dt.datetime.now(dt.UTC)
    if until <= now:
        raise AlertError(f"cannot snooze alert {alert_id} until {until.isoformat()}: that is not in the future")
    _change(cursor, alert_id, "snoozed", {"snoozed_until": until})


def _change(cursor: Cursor, alert_id: int, status: str, values: dict) -> None:
    cursor.execute("SELECT kind, severity, status FROM ops.alerts WHERE alert_id = %s FOR UPDATE", (alert_id,))
    row = cursor.fetchone()
    if row is None:
        raise AlertError(f"there is no alert {alert_id} (see `sales-pipeline alerts list`)")
    kind, severity, current = row
    if current == "resolved":
        raise AlertError(f"alert {alert_id} is already resolved")
    cursor.execute(
        "UPDATE ops.alerts SET status = %(status)s, acknowledged_by = coalesce(%(acknowledged_by)s, acknowledged_by),"
        " acknowledged_at = coalesce(%(acknowledged_at)s, acknowledged_at), snoozed_until = %(snoozed_until)s"
        " WHERE alert_id = %(alert_id)s",
        {"acknowledged_by": None, "acknowledged_at": None, **values, "status": status, "alert_id": alert_id},
    )
    _notify(cursor, [(status, alert_id, kind, severity)])


def wake_snoozed(cursor: Cursor, now: dt.datetime) -> int:
    """Snoozed alerts whose time is up are open again (their reminders resume)."""
    cursor.execute(
        "UPDATE ops.alerts SET status = 'open', snoozed_until = NULL"
        " WHERE status = 'snoozed' AND snoozed_until <= %s RETURNING alert_id, kind, severity",
        (now,),
    )
    woken = [("open", *row) for row in cursor.fetchall()]
    _notify(cursor, woken)
    return len(woken)


ALERT_COLUMNS = (
    "alert_id, dedupe_key, kind, severity, entity_type, entity_id, store_id, category, detected_on, message,"
    " numbers, context, status, first_seen_at, last_seen_at, resolved_at, acknowledged_by, acknowledged_at,"
    " snoozed_until"
)


def read_alerts(cursor: Cursor, status: str | None = None) -> pd.DataFrame:
    """Alerts, most severe and newest first: those not resolved, or those of one `status`."""
    if status is not None and status not in STATUSES:
        raise AlertError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    where = "status = %(status)s" if status else "status <> 'resolved'"
    return read_frame(
        cursor,
        f"SELECT {ALERT_COLUMNS} FROM ops.alerts WHERE {where}"
        " ORDER BY array_position(ARRAY['critical', 'warning', 'info'], severity), first_seen_at DESC, alert_id",
        {"status": status},
    )


def open_counts(cursor: Cursor) -> dict[str, int]:
    """How many alerts not resolved there are of each severity."""
    cursor.execute("SELECT severity, count(*) FROM ops.alerts WHERE status <> 'resolved' GROUP BY 1")
    counts = dict(cursor.fetchall())
    return {severity: counts.get(severity, 0) for severity in ("critical", "warning", "info")}
