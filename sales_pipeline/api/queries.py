"""The API's reads: plain SQL on a cursor, over the tables the pipeline's assets wrote. Nothing is
computed here beyond choosing rows and naming columns."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg2.extensions import cursor as Cursor

from sales_pipeline.alerts.store import ALERT_COLUMNS

PERIODS = {"yesterday": "yesterday", "7d": "last_7_days", "30d": "last_30_days", "mtd": "month_to_date"}


def _rows(cursor: Cursor) -> list[dict[str, Any]]:
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def latest_dashboard(cursor: Cursor, scope: str, scope_id: str) -> tuple[dict, dt.datetime] | None:
    """The latest Dashboard document of a scope and when it was written, or None."""
    cursor.execute(
        "SELECT document, computed_at FROM marts.dashboard WHERE scope = %s AND scope_id = %s"
        " ORDER BY refreshed_at DESC LIMIT 1",
        (scope, scope_id),
    )
    row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def stores(cursor: Cursor) -> list[dict[str, Any]]:
    cursor.execute("SELECT store_id, name, city, region FROM core.stores ORDER BY store_id")
    return _rows(cursor)


def top_products(cursor: Cursor, period: str, scope: str, scope_id: str, n: int) -> tuple[dt.date | None, list]:
    """The latest ranking of a period and scope, down to rank n (ties at n kept)."""
    cursor.execute("SELECT max(as_of) FROM marts.top_products")
    as_of = cursor.fetchone()[0]
    if as_of is None:
        return None, []
    cursor.execute(
        "SELECT rank, product_id, product_name AS name, category, units, revenue, share, previous_rank, rank_change"
        " FROM marts.top_products"
        " WHERE as_of = %s AND period = %s AND scope = %s AND scope_id = %s AND rank <= %s"
        " ORDER BY rank, product_id",
        (as_of, PERIODS[period], scope, scope_id, n),
    )
    return as_of, _rows(cursor)


def period_first_day(period: str, as_of: dt.date) -> dt.date:
    """The first day of a ranking period ending at as_of (as marts.top_products defines them)."""
    return {
        "yesterday": as_of,
        "7d": as_of - dt.timedelta(days=6),
        "30d": as_of - dt.timedelta(days=29),
        "mtd": as_of.replace(day=1),
    }[period]


def daily_kpis(
    cursor: Cursor, first_day: dt.date, last_day: dt.date, scope: str, scope_id: str | None,
    after: tuple[dt.date, str] | None, limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of marts.daily_kpis in (day, scope_id) order, after the `after` key, at most `limit`."""
    cursor.execute(
        """
        SELECT day, scope, scope_id, revenue, units, orders, customers, average_order_value, gross_margin,
               margin_rate, discount_given
        FROM marts.daily_kpis
        WHERE scope = %(scope)s AND (%(scope_id)s::text IS NULL OR scope_id = %(scope_id)s)
          AND day BETWEEN %(first_day)s AND %(last_day)s
          AND (%(after_day)s::date IS NULL OR (day, scope_id) > (%(after_day)s::date, %(after_id)s::text))
        ORDER BY day, scope_id
        LIMIT %(limit)s
        """,
        {
            "scope": scope,
            "scope_id": scope_id,
            "first_day": first_day,
            "last_day": last_day,
            "after_day": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        },
    )
    return _rows(cursor)


def forecast(cursor: Cursor, scope: str, scope_id: str) -> dict[str, Any] | None:
    """The published revenue forecast of a series with its days and the published model's accuracy."""
    cursor.execute(
        "SELECT scope, scope_id, origin, status, model, reason, updated_at FROM ml.forecast_series"
        " WHERE target = 'sales' AND scope = %s AND scope_id = %s",
        (scope, scope_id),
    )
    series = _rows(cursor)
    if not series:
        return None
    (found,) = series
    if found["status"] == "skipped":
        return found
    cursor.execute(
        "SELECT day, yhat, yhat_lower_80 AS lower_80, yhat_upper_80 AS upper_80, yhat_lower_95 AS lower_95,"
        " yhat_upper_95 AS upper_95, closed FROM ml.forecasts"
        " WHERE target = 'sales' AND scope = %s AND scope_id = %s AND origin = %s ORDER BY day",
        (scope, scope_id, found["origin"]),
    )
    found["days"] = _rows(cursor)
    cursor.execute(
        "SELECT model, origins, mase, smape, mae, rmse FROM ml.forecast_accuracy"
        " WHERE target = 'sales' AND scope = %s AND scope_id = %s AND model = %s",
        (scope, scope_id, found["model"]),
    )
    accuracy = _rows(cursor)
    found["accuracy"] = accuracy[0] if accuracy else None
    return found


def record_upload(cursor: Cursor, content_hash: str, file_name: str, size: int, mapping: str) -> None:
    cursor.execute(
        "INSERT INTO ops.api_uploads (content_hash, file_name, bytes, mapping) VALUES (%s, %s, %s, %s)",
        (content_hash, file_name, size, mapping),
    )


def import_result(cursor: Cursor, content_hash: str) -> dict[str, Any] | None:
    """What became of these bytes: the import that loaded them (or its latest outcome), else their upload
    while it waits for the inbox sensor, else None."""
    cursor.execute(
        """
        SELECT content_hash, file_name, status, reason, mapping, rows_read, rows_loaded, rows_rejected,
               rows_duplicate, sheets, ignored_sheets, feedback_path, run_id, finished_at
        FROM ops.import_ledger
        WHERE content_hash = %s
        ORDER BY status = 'duplicate', import_id DESC
        LIMIT 1
        """,
        (content_hash,),
    )
    found = _rows(cursor)
    if found:
        return found[0]
    cursor.execute(
        "SELECT content_hash, file_name, 'waiting' AS status, mapping FROM ops.api_uploads"
        " WHERE content_hash = %s ORDER BY upload_id DESC LIMIT 1",
        (content_hash,),
    )
    found = _rows(cursor)
    return found[0] if found else None


def feedback_path(cursor: Cursor, content_hash: str) -> str | None:
    cursor.execute(
        "SELECT feedback_path FROM ops.import_ledger WHERE content_hash = %s AND feedback_path IS NOT NULL"
        " ORDER BY status = 'duplicate', import_id DESC LIMIT 1",
        (content_hash,),
    )
    row = cursor.fetchone()
    return row[0] if row else None


def report(cursor: Cursor, day: dt.date, scope: str, locale: str) -> str | None:
    """The path of a day's PDF report from ops.generated_reports (reports/daily_report, `sales-pipeline report`)."""
    cursor.execute(
        "SELECT path FROM ops.generated_reports WHERE day = %s AND scope = %s AND locale = %s",
        (day, scope, locale),
    )
    row = cursor.fetchone()
    return row[0] if row else None


def health(cursor: Cursor) -> dict[str, Any]:
    cursor.execute(
        """
        SELECT (SELECT max(version) FROM ops.schema_migrations) AS schema_version,
               extract(epoch FROM now() - (SELECT max(finished_at) FROM ops.import_ledger
                                           WHERE status IN ('loaded', 'loaded_with_rejects'))) AS last_import_age_s,
               extract(epoch FROM now() - (SELECT max(finished_at) FROM ops.api_pulls)) AS last_pull_age_s,
               extract(epoch FROM now() - (SELECT max(updated_at) FROM ml.forecast_series
                                           WHERE status <> 'skipped')) AS last_forecast_age_s
        """
    )
    (row,) = _rows(cursor)
    return {key: float(value) if key.endswith("_s") and value is not None else value for key, value in row.items()}


def alerts(cursor: Cursor, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Alerts, most severe and newest first: those not resolved, or those of one `status`."""
    where = "status = %(status)s" if status else "status <> 'resolved'"
    cursor.execute(
        f"SELECT {ALERT_COLUMNS} FROM ops.alerts WHERE {where}"  # the clause is one of two constants
        " ORDER BY array_position(ARRAY['critical', 'warning', 'info'], severity), first_seen_at DESC, alert_id"
        " LIMIT %(limit)s",
        {"status": status, "limit": limit},
    )
    return _rows(cursor)


def alert(cursor: Cursor, alert_id: int) -> dict[str, Any] | None:
    cursor.execute(f"SELECT {ALERT_COLUMNS} FROM ops.alerts WHERE alert_id = %s", (alert_id,))
    found = _rows(cursor)
    return found[0] if found else None


def last_alert_event(cursor: Cursor) -> int:
    cursor.execute("SELECT coalesce(max(event_id), 0) FROM ops.alert_events")
    return cursor.fetchone()[0]


def alert_events(cursor: Cursor, after: int, limit: int) -> list[dict[str, Any]]:
    """Alert events after `after` in id order, each with its alert as it is now."""
    cursor.execute(
        f"SELECT e.event_id, e.event, e.severity AS event_severity, e.at, {_prefixed('a.', ALERT_COLUMNS)}"
        " FROM ops.alert_events AS e JOIN ops.alerts AS a USING (alert_id)"
        " WHERE e.event_id > %s ORDER BY e.event_id LIMIT %s",
        (after, limit),
    )
    return _rows(cursor)


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(alias + column.strip() for column in columns.split(","))
