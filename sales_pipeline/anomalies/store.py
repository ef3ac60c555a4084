"""ml.anomalies: record what a detection found, keep history, close what is over."""

from __future__ import annotations

import json

from psycopg2.extensions import cursor as Cursor

from sales_pipeline.records import Alert
from sales_pipeline.warehouse.db import refresh_in_turn


def record_anomalies(cursor: Cursor, kind: str, alerts: list[Alert]) -> dict[str, int]:
    """Upsert this detection's `alerts` of `kind`; active ones of that kind it no longer finds are resolved.

    A situation keeps its dedupe key, so a re-run updates its severity, numbers and message and keeps
    first_seen_at; nothing is deleted, so the alerts that were sent stay explainable.
    """
    if any(alert.kind != kind for alert in alerts):
        raise ValueError(f"record_anomalies({kind!r}) was given alerts of another kind")
    refresh_in_turn(cursor, f"ml.anomalies:{kind}")
    keys = [alert.dedupe_key for alert in alerts]
    cursor.execute(
        "SELECT dedupe_key FROM ml.anomalies WHERE kind = %s AND active AND NOT (dedupe_key = ANY(%s))",
        (kind, keys),
    )
    resolved = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "UPDATE ml.anomalies SET active = false, resolved_at = now(), updated_at = now() WHERE dedupe_key = ANY(%s)",
        (resolved,),
    )
    cursor.execute("SELECT dedupe_key FROM ml.anomalies WHERE dedupe_key = ANY(%s)", (keys,))
    known = {row[0] for row in cursor.fetchall()}
    for alert in alerts:
        cursor.execute(
            """
            INSERT INTO ml.anomalies AS a
                (dedupe_key, kind, severity, entity_type, entity_id, detected_on, message, numbers)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (dedupe_key) DO UPDATE SET
                severity = EXCLUDED.severity, detected_on = EXCLUDED.detected_on, message = EXCLUDED.message,
                numbers = EXCLUDED.numbers, active = true, resolved_at = NULL, updated_at = now()
            """,
            (
                alert.dedupe_key,
                alert.kind,
                alert.severity,
                alert.entity_type,
                alert.entity_id,
                alert.detected_on,
                alert.message,
                json.dumps(alert.numbers, default=str),
            ),
        )
    return {"new": len(set(keys) - known), "ongoing": len(set(keys) & known), "resolved": len(resolved)}
