"""What the Dagster UI reads back from the marts: small frames for the assets' previews and charts."""

from __future__ import annotations

from datetime import date

import pandas as pd
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.warehouse.db import read_frame


def daily_figures(cursor: Cursor, first_day: date, last_day: date) -> pd.DataFrame:
    """Per day with KPIs, first_day..last_day: the rows written (every scope) and the whole chain's revenue,
    orders and units."""
    return read_frame(
        cursor,
        "SELECT day, count(*) AS rows_written, sum(revenue) FILTER (WHERE scope = 'all') AS revenue,"
        " sum(orders) FILTER (WHERE scope = 'all') AS orders, sum(units) FILTER (WHERE scope = 'all') AS units"
        " FROM marts.daily_kpis WHERE day BETWEEN %(first)s AND %(last)s GROUP BY day ORDER BY day",
        {"first": first_day, "last": last_day},
    )


def recent_trend(cursor: Cursor, days: int = 120) -> pd.DataFrame:
    """The chain's revenue, moving averages and direction over its latest `days` days, oldest first."""
    latest = read_frame(
        cursor,
        "SELECT day, revenue, ma_7, ma_28, direction FROM marts.sales_trends WHERE scope = 'all'"
        " ORDER BY day DESC LIMIT %(days)s",
        {"days": days},
    )
    return latest.sort_values("day")


def stock_status_counts(cursor: Cursor) -> pd.DataFrame:
    return read_frame(
        cursor, "SELECT status, count(*) AS items FROM marts.stock_health GROUP BY status ORDER BY 2 DESC"
    )


def least_cover(cursor: Cursor, limit: int = 10) -> pd.DataFrame:
    """The product-store pairs with the fewest days of cover."""
    return read_frame(
        cursor,
        "SELECT product_id, store_id, on_hand, avg_daily_demand, days_of_cover, status FROM marts.stock_health"
        " ORDER BY days_of_cover NULLS LAST LIMIT %(limit)s",
        {"limit": limit},
    )


def top_of_period(cursor: Cursor, as_of: date | None, period: str, shown: int) -> pd.DataFrame:
    """The whole business's top `shown` products of a period."""
    return read_frame(
        cursor,
        "SELECT rank, product_id, product_name, revenue, share, rank_change FROM marts.top_products"
        " WHERE as_of = %(as_of)s AND period = %(period)s AND scope = 'all' AND rank <= %(shown)s"
        " ORDER BY rank, product_id",
        {"as_of": as_of, "period": period, "shown": shown},
    )
