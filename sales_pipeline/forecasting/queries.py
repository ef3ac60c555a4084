"""What the Dagster UI and the checks read back from the ml tables."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.warehouse.db import read_frame


def published(cursor: Cursor, target: str, scope: str, scope_id: str, origin: date) -> pd.DataFrame:
    """The forecast published from `origin` for one series."""
    return read_frame(
        cursor,
        "SELECT day, model, yhat, yhat_lower_80, yhat_upper_80, yhat_lower_95, yhat_upper_95, closed"
        " FROM ml.forecasts WHERE (target, scope, scope_id, origin) = (%(target)s, %(scope)s, %(id)s, %(origin)s)"
        " ORDER BY day",
        {"target": target, "scope": scope, "id": scope_id, "origin": origin},
    )


def rows_published(cursor: Cursor, target: str, origin: date) -> int:
    frame = read_frame(
        cursor,
        "SELECT count(*) AS n FROM ml.forecasts WHERE target = %(target)s AND origin = %(origin)s",
        {"target": target, "origin": origin},
    )
    return int(frame["n"].iloc[0])


def demand_ahead(cursor: Cursor, origin: date) -> pd.Series:
    """The demand forecasts from `origin` summed over products and stores, per day."""
    rows = read_frame(
        cursor,
        "SELECT day, sum(yhat) AS units FROM ml.forecasts WHERE target = 'demand' AND origin = %(origin)s"
        " GROUP BY day ORDER BY day",
        {"origin": origin},
    )
    return rows.set_index(pd.to_datetime(rows["day"]))["units"]


def recent_actuals(cursor: Cursor, column: str, origin: date, days: int = 56) -> pd.Series:
    """The chain's revenue or units per day over the `days` up to `origin` (0 on days without sales)."""
    rows = read_frame(
        cursor,
        f"SELECT day, {column}::float8 AS value FROM marts.daily_kpis"
        " WHERE scope = 'all' AND day BETWEEN %(first)s AND %(origin)s",
        {"first": origin - timedelta(days=days - 1), "origin": origin},
    )
    index = pd.date_range(origin - timedelta(days=days - 1), origin, freq="D")
    return rows.assign(day=pd.to_datetime(rows["day"])).set_index("day")["value"].reindex(index, fill_value=0.0)


def accuracy_summary(cursor: Cursor, target: str) -> pd.DataFrame:
    """Per scope: how many series publish which model, and the median backtest scores against seasonal naive.

    The medians leave out the trivially zero series (every scored day a zero forecast of zero sales: a
    perfect score that says nothing), counted apart.
    """
    return read_frame(
        cursor,
        """
        SELECT c.scope, count(*) AS series,
               count(*) FILTER (WHERE c.trivially_zero) AS trivially_zero,
               count(*) FILTER (WHERE c.model = 'prophet') AS prophet,
               count(*) FILTER (WHERE c.model IN ('auto_ets', 'auto_theta', 'combination')) AS statistical,
               count(*) FILTER (WHERE c.model = 'seasonal_naive') AS seasonal_naive,
               count(*) FILTER (WHERE c.model = 'tsb') AS tsb,
               round((percentile_cont(0.5) WITHIN GROUP (ORDER BY c.mase)
                   FILTER (WHERE NOT c.trivially_zero))::numeric, 3) AS median_mase,
               round((percentile_cont(0.5) WITHIN GROUP (ORDER BY n.mase)
                   FILTER (WHERE NOT c.trivially_zero))::numeric, 3) AS naive_median_mase,
               round((percentile_cont(0.5) WITHIN GROUP (ORDER BY c.smape)
                   FILTER (WHERE NOT c.trivially_zero))::numeric, 1) AS median_smape
        FROM ml.forecast_accuracy c
        JOIN ml.forecast_accuracy n
          ON (n.target, n.scope, n.scope_id, n.model) = (c.target, c.scope, c.scope_id, 'seasonal_naive')
        WHERE c.target = %(target)s AND c.chosen
        GROUP BY c.scope ORDER BY c.scope
        """,
        {"target": target},
    )


def model_comparison(cursor: Cursor, target: str, scope: str, scope_id: str) -> dict[str, float | None]:
    """Backtest MASE per candidate model of one series."""
    rows = read_frame(
        cursor,
        "SELECT model, mase FROM ml.forecast_accuracy WHERE (target, scope, scope_id) = (%(t)s, %(s)s, %(i)s)",
        {"t": target, "s": scope, "i": scope_id},
    )
    return {row.model: (None if pd.isna(row.mase) else float(row.mase)) for row in rows.itertuples()}


def published_model(cursor: Cursor, target: str, scope: str, scope_id: str) -> str | None:
    """The model a series publishes (ml.forecast_series), None before its first forecast."""
    cursor.execute(
        "SELECT model FROM ml.forecast_series WHERE (target, scope, scope_id) = (%s, %s, %s)", (target, scope, scope_id)
    )
    row = cursor.fetchone()
    return None if row is None else row[0]


def bad_bounds(cursor: Cursor, target: str) -> pd.DataFrame:
    """Latest published rows whose bounds are out of order (lower95 <= lower80 <= yhat <= upper80 <= upper95)."""
    return read_frame(
        cursor,
        """
        SELECT f.scope, f.scope_id, f.day, f.yhat, f.yhat_lower_95, f.yhat_lower_80, f.yhat_upper_80, f.yhat_upper_95
        FROM ml.forecasts f
        JOIN ml.forecast_series s USING (target, scope, scope_id, origin)
        WHERE f.target = %(target)s AND NOT (
            f.yhat_lower_95 <= f.yhat_lower_80 AND f.yhat_lower_80 <= f.yhat
            AND f.yhat <= f.yhat_upper_80 AND f.yhat_upper_80 <= f.yhat_upper_95)
        LIMIT 20
        """,
        {"target": target},
    )


def incomplete_series(cursor: Cursor, target: str, horizon: int) -> pd.DataFrame:
    """Forecast series whose latest origin has not exactly `horizon` published days."""
    return read_frame(
        cursor,
        """
        SELECT s.scope, s.scope_id, s.origin, count(f.day) AS days
        FROM ml.forecast_series s
        LEFT JOIN ml.forecasts f USING (target, scope, scope_id, origin)
        WHERE s.target = %(target)s AND s.status <> 'skipped'
        GROUP BY 1, 2, 3 HAVING count(f.day) <> %(horizon)s
        LIMIT 20
        """,
        {"target": target, "horizon": horizon},
    )
