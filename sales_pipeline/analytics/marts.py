"""The analytics marts, computed in PostgreSQL: daily KPIs, sales trends, stock health, top products, dashboard.

Every function runs on the caller's cursor, inside the caller's transaction: a refresh deletes the
days (or the table) it owns and inserts them again in set-based SQL, so re-running it for the same
range writes the same rows, and a refresh that fails leaves the marts as they were.

Definitions
-----------
- **Day**: a sale's reporting day, ``core.reporting_day(sold_at, sale_date, time_given, tz)``
  (migration 0006): the calendar day of its instant in the pipeline time zone when the sender gave a
  time, else the day the sender wrote (``sale_date``), whatever the time zone. A day without sales has
  no KPI rows; trends count it as zero revenue.
- **Money** sums keep the lines' precision (``numeric``): the days of a span add up to its lines'
  total; only averages, rates and the dashboard round.
- **Daily KPIs** (``marts.daily_kpis``) per day for ``all`` (scope_id ``''``), each ``store``,
  ``category`` (scope_id ``''`` for products without one) and ``product``. ``orders`` counts distinct
  order ids, ``customers`` distinct known customer ids. A line's cost per unit is its own
  ``core.sales.unit_cost`` when the source gave one (e.g. Superstore's Sales - Profit), else the
  product's current ``unit_cost`` (the warehouse keeps no cost history): ``revenue_with_cost`` is the
  revenue of the lines whose cost is known, ``gross_margin = revenue_with_cost - sum(quantity * cost
  per unit)`` over those lines (NULL when none), ``margin_rate = gross_margin / revenue_with_cost``
  (NULL when that revenue is not positive).
  ``discount_given = sum(quantity * unit_price) - revenue``.
- **Sales trends** (``marts.sales_trends``) per day for ``all``, ``category`` and ``product``, from
  the scope's first sale on: ``ma_7``/``ma_28`` = revenue of the 7/28 days ending at the day divided by
  7/28; ``wow_growth`` = ma_7 / (ma_7 seven days earlier) - 1, ``mom_growth`` = ma_28 against 28 days
  earlier, ``yoy_growth`` = ma_28 against 364 days earlier (52 weeks: same weekdays); each NULL when
  the earlier value is 0 (no history). ``direction``, with ``DIRECTION_THRESHOLD`` = 5%:

  * ``new``: the scope's first sale is fewer than 28 days old (no month to compare);
  * ``rising``: the larger of wow/mom is >= +5% and neither is <= -5%;
  * ``falling``: the smaller of wow/mom is <= -5% and neither is >= +5%;
  * ``steady``: otherwise (both within 5%, the two disagree, or nothing to compare).

  A week or month with sales after one with none counts as a rise (its growth itself stays NULL).
- **Stock health** (``marts.stock_health``) per product and store at its latest snapshot:
  ``avg_daily_demand`` = units sold there over the 28 days ending at the snapshot / 28,
  ``days_of_cover = on_hand / avg_daily_demand`` (NULL without demand; on order is not counted),
  ``status``: on_hand = 0 -> ``out_of_stock``; on_hand <= reorder_point -> ``below_reorder_point``;
  days of cover > ``overstock_days`` (default 90), or stock with no demand at all ->
  ``overstock``; else ``healthy``.
- **Top products** (``marts.top_products``) for ``yesterday`` (as_of itself), ``last_7_days``,
  ``last_30_days`` and ``month_to_date``, for the whole business (``all``), each ``store`` (from the
  order lines of those reporting days) and each ``category`` (``''`` for products without one), ranked
  by revenue with ``RANK()`` (ties share a rank and every product ranked <= N is kept); ``share`` of the
  period's total revenue; ``previous_rank`` in the period of the same length just before (for month to
  date: as many days before the 1st), NULL when the product did not sell then; ``rank_change =
  previous_rank - rank`` (positive = climbed).

Dashboard document
------------------
``build_dashboard`` stores in ``marts.dashboard.document`` one JSON object per scope, the whole
business's (returned, and written to dashboard.json) and each store's, all under one ``refreshed_at``
(numbers are JSON numbers, dates ISO strings, money rounded to the cent)::

    {
      "as_of": "2026-11-23",                           # the last complete day covered
      "refreshed_at": "2026-11-24T06:00:01.123456+00:00",
      "currency": null,                                # no currency is recorded yet
      "scope": "all",                                  # or "store"
      "scope_id": "",                                  # the store's id
      "scope_name": null,                              # the store's name
      "headline": {                                    # the 7 days ending at as_of vs the 7 days before
        "revenue":             {"value": 12345.67, "previous": 11000.0, "change": 0.1223},
        "orders":              {"value": 321, "previous": 300, "change": 0.07},
        "units":               {"value": 702, "previous": 650, "change": 0.08},
        "average_order_value": {"value": 38.46, "previous": 36.67, "change": 0.0488},
        "gross_margin_rate":   {"value": 0.3121, "previous": 0.3, "change": 0.0403},
        "customers":           {"value": 250, "previous": 240, "change": 0.0417}
      },
      "headline_day": {...},                           # as_of against the same weekday a week before
      "revenue_30d": [{"day": "2026-10-25", "revenue": 0.0}, ...],    # 30 days ending at as_of, oldest
                                                                      # first, days without sales as 0
      "stock_health": {"out_of_stock": 3, "below_reorder_point": 12, "healthy": 140, "overstock": 9},
      "stock_at_risk": [                               # out of stock, then at the reorder point, least cover
        {"product_id": "P077", "name": "Oat milk 1l", "store_id": "S01", "on_hand": 0, "on_order": 0,
         "reorder_point": 12, "days_of_cover": 0.0, "status": "out_of_stock"},   # first; at most 10
        ...
      ],
      "top_products": [                                # last_7_days period of marts.top_products, this scope
        {"rank": 1, "product_id": "P001", "name": "Espresso beans 1kg", "revenue": 999.5, "units": 40,
         "share": 0.081, "rank_change": 2},
        ...
      ],
      "alerts": [                                      # alerts not resolved (ops.alerts), most severe first
        {"id": 17, "kind": "stock_risk", "severity": "critical", "status": "open",
         "message": "P0077 (Cocoa powder 250g) at S01 (Paris Marais) will run out in about 2.5 days: ...",
         "since": "2026-11-23T06:00:03.120000+00:00"},
        ...
      ]
    }

``change`` is ``value / previous - 1`` rounded to 4 places, null when ``previous`` is 0 or null.
``customers`` counts distinct known customers over each 7 days (not a sum of daily counts);
``gross_margin_rate`` is the 7 days' gross margin over their revenue with known cost (null when none).
"""

from __future__ import annotations

import json
import tempfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json, execute_values

from sales_pipeline.warehouse.db import refresh_in_turn

DIRECTION_THRESHOLD = 0.05  # |growth| below 5% reads as steady
NEW_SCOPE_DAYS = 28  # a scope younger than this is 'new': it has no previous month to compare with
DEMAND_DAYS = 28  # stock health: average daily demand over this many days
STOCK_STATUSES = ("out_of_stock", "below_reorder_point", "healthy", "overstock")
HEADLINE_DAYS = 7
# Sent when a new ranking or new Dashboard documents commit: the read API's cache listens (a wake-up, not the data).
MARTS_CHANNEL = "sales_pipeline_marts"
STOCK_AT_RISK_SHOWN = 10  # the dashboard lists this many products out of stock or at their reorder point

DAILY_KPIS = sql.Identifier("marts", "daily_kpis")
SALES_TRENDS = sql.Identifier("marts", "sales_trends")


def _delete_days(cursor: Cursor, table: sql.Identifier, first_day: date, last_day: date) -> None:
    refresh_in_turn(cursor, ".".join(table.strings))
    cursor.execute(
        sql.SQL("DELETE FROM {} WHERE day BETWEEN %(first_day)s AND %(last_day)s").format(table),
        {"first_day": first_day, "last_day": last_day},
    )


# --- daily KPIs --------------------------------------------------------------------------------

_DAILY_KPIS_INSERT = """
INSERT INTO marts.daily_kpis (day, scope, scope_id, revenue, units, orders, customers, average_order_value,
                              revenue_with_cost, gross_margin, margin_rate, discount_given)
WITH lines AS (
    SELECT core.reporting_day(s.sold_at, s.sale_date, s.time_given, %(timezone)s) AS day,
           s.order_id,
           s.store_id,
           s.customer_id,
           s.product_id,
           coalesce(p.category, '') AS category,
           s.quantity,
           s.revenue,
           s.quantity * s.unit_price AS list_amount,
           s.quantity * coalesce(s.unit_cost, p.unit_cost) AS cost  -- NULL when neither cost is known
    FROM core.sales AS s
    LEFT JOIN core.products AS p USING (product_id)  -- a sale of an unknown product still counts
    -- Inlined: a sale_date range (indexed), then the exact day.
    WHERE core.reported_between(s.sold_at, s.sale_date, s.time_given, %(timezone)s, %(first_day)s, %(last_day)s)
),
grouped AS (
    SELECT day,
           CASE WHEN GROUPING(store_id) = 0 THEN 'store'
                WHEN GROUPING(category) = 0 THEN 'category'
                WHEN GROUPING(product_id) = 0 THEN 'product'
                ELSE 'all' END AS scope,
           CASE WHEN GROUPING(store_id) = 0 THEN store_id
                WHEN GROUPING(category) = 0 THEN category
                WHEN GROUPING(product_id) = 0 THEN product_id
                ELSE '' END AS scope_id,
           sum(revenue) AS revenue,
           sum(quantity) AS units,
           count(DISTINCT order_id) AS orders,
           count(DISTINCT customer_id) AS customers,  -- anonymous (NULL) customers are not counted
           sum(revenue) FILTER (WHERE cost IS NOT NULL) AS revenue_with_cost,
           sum(cost) AS cost,  -- over the lines with a known cost only
           sum(list_amount) AS list_amount
    FROM lines
    -- One pass over the lines for the four scopes.
    GROUP BY day, GROUPING SETS ((), (store_id), (category), (product_id))
)
SELECT day,
       scope,
       scope_id,
       revenue,
       units,
       orders,
       customers,
       round(revenue / orders, 2),
       coalesce(revenue_with_cost, 0),
       revenue_with_cost - cost,
       -- A rate needs positive revenue; below -999 (cost 1000 times revenue) it no longer means anything.
       CASE WHEN revenue_with_cost > 0 AND cost < 1000 * revenue_with_cost
            THEN round((revenue_with_cost - cost) / revenue_with_cost, 4) END,
       list_amount - revenue
FROM grouped
"""


def refresh_daily_kpis(cursor: Cursor, first_day: date, last_day: date, timezone: str) -> int:
    """Replace the KPIs of the days first_day..last_day (pipeline time zone); return the rows written."""
    _delete_days(cursor, DAILY_KPIS, first_day, last_day)
    cursor.execute(_DAILY_KPIS_INSERT, {"first_day": first_day, "last_day": last_day, "timezone": timezone})
    return cursor.rowcount


# --- sales trends ------------------------------------------------------------------------------

# Windows are RANGE frames over the day, so a day missing from the data counts as zero revenue: the
# history is read sparse (only the days some window needs) and only the output days are generated.
# A one-day refresh then reads 84 days of KPIs per scope rather than 392.
_SALES_TRENDS_INSERT = """
INSERT INTO marts.sales_trends (day, scope, scope_id, revenue, ma_7, ma_28, wow_growth, mom_growth, yoy_growth,
                                direction)
WITH RECURSIVE first_sales AS (
    -- A scope's trend starts at its first sale (ever, not only within the range). Each scope's first row
    -- is found by skipping through the (scope, scope_id, day) index, one probe per scope, rather than
    -- reading the whole history.
    -- (Stores are skipped through too, and dropped below: a scope filter here would cost each probe its start key.)
    (SELECT scope, scope_id, day AS first_sale FROM marts.daily_kpis ORDER BY scope, scope_id, day LIMIT 1)
    UNION ALL
    SELECT next.*
    FROM first_sales AS f
    CROSS JOIN LATERAL (
        SELECT k.scope, k.scope_id, k.day
        FROM marts.daily_kpis AS k
        WHERE (k.scope, k.scope_id) > (f.scope, f.scope_id)
        ORDER BY k.scope, k.scope_id, k.day
        LIMIT 1
    ) AS next
),
output_days AS (
    SELECT f.scope, f.scope_id, f.first_sale, d::date AS day
    FROM first_sales AS f
    CROSS JOIN generate_series(greatest(%(first_day)s::date, f.first_sale), %(last_day)s::date, interval '1 day') AS d
    WHERE f.scope IN ('all', 'category', 'product')
),
history AS (
    -- The 56 days the weekly and monthly windows cover, and the 28 days a year earlier.
    SELECT scope, scope_id, day, revenue
    FROM marts.daily_kpis
    WHERE scope IN ('all', 'category', 'product')
      AND (day BETWEEN %(first_day)s::date - 55 AND %(last_day)s
           OR day BETWEEN %(first_day)s::date - 391 AND %(last_day)s::date - 364)
),
series AS (
    SELECT scope, scope_id, day, coalesce(h.revenue, 0) AS revenue, o.first_sale, o.day IS NOT NULL AS wanted
    FROM history AS h
    FULL JOIN output_days AS o USING (scope, scope_id, day)
),
sums AS (
    SELECT scope, scope_id, day, revenue, first_sale, wanted,
           sum(revenue) OVER (w RANGE BETWEEN '6 days' PRECEDING AND CURRENT ROW) AS week,
           coalesce(sum(revenue) OVER (w RANGE BETWEEN '13 days' PRECEDING AND '7 days' PRECEDING), 0) AS week_before,
           sum(revenue) OVER (w RANGE BETWEEN '27 days' PRECEDING AND CURRENT ROW) AS month,
           coalesce(sum(revenue) OVER (w RANGE BETWEEN '55 days' PRECEDING AND '28 days' PRECEDING), 0)
               AS month_before,
           coalesce(sum(revenue) OVER (w RANGE BETWEEN '391 days' PRECEDING AND '364 days' PRECEDING), 0)
               AS month_year_before
    FROM series
    WINDOW w AS (PARTITION BY scope, scope_id ORDER BY day)
),
growth AS (
    -- Ratios of sums equal ratios of the averages (same number of days); NULL when there was nothing before.
    SELECT *,
           week / nullif(week_before, 0) - 1 AS wow,
           month / nullif(month_before, 0) - 1 AS mom,
           month / nullif(month_year_before, 0) - 1 AS yoy
    FROM sums
    WHERE wanted
),
signals AS (
    -- For the direction, sales after a period with none read as a rise.
    SELECT *,
           CASE WHEN week_before > 0 THEN wow WHEN week > 0 THEN 1 END AS wow_signal,
           CASE WHEN month_before > 0 THEN mom WHEN month > 0 THEN 1 END AS mom_signal
    FROM growth
)
SELECT day,
       scope,
       scope_id,
       revenue,
       round(week / 7, 2),
       round(month / 28, 2),
       round(wow, 4),
       round(mom, 4),
       round(yoy, 4),
       CASE WHEN day - first_sale < %(new_days)s THEN 'new'
            -- greatest/least skip NULLs: one signal alone decides.
            WHEN greatest(wow_signal, mom_signal) >= %(threshold)s
                 AND least(wow_signal, mom_signal) > -%(threshold)s THEN 'rising'
            WHEN least(wow_signal, mom_signal) <= -%(threshold)s
                 AND greatest(wow_signal, mom_signal) < %(threshold)s THEN 'falling'
            ELSE 'steady' END
FROM signals
"""


def first_day_changed_since_trends(cursor: Cursor) -> date | None:
    """The first day whose KPIs were computed after the trends' last refresh (None: nothing changed)."""
    cursor.execute(
        "SELECT min(day) FROM marts.daily_kpis WHERE computed_at >"
        " coalesce((SELECT max(computed_at) FROM marts.sales_trends), '-infinity')"
    )
    return cursor.fetchone()[0]


def refresh_sales_trends(cursor: Cursor, first_day: date, last_day: date) -> int:
    """Replace the trends of the days first_day..last_day from marts.daily_kpis; return the rows written.

    Reads the KPIs back to first_day - 391 days, so refresh the KPIs first. A changed day of KPIs
    moves the trends of the 392 days from it on (the year-over-year window).
    """
    _delete_days(cursor, SALES_TRENDS, first_day, last_day)
    cursor.execute(
        _SALES_TRENDS_INSERT,
        {
            "first_day": first_day,
            "last_day": last_day,
            "new_days": NEW_SCOPE_DAYS,
            "threshold": Decimal(str(DIRECTION_THRESHOLD)),
        },
    )
    return cursor.rowcount


# --- stock health ------------------------------------------------------------------------------

_STOCK_HEALTH_INSERT = """
INSERT INTO marts.stock_health (product_id, store_id, as_of, on_hand, on_order, reorder_point, avg_daily_demand,
                                days_of_cover, status, stock_value_at_cost)
WITH RECURSIVE latest AS (
    -- Each product and store's latest snapshot, found by walking the primary key backwards: every probe
    -- lands on the next pair's newest row (one probe per pair), rather than reading every snapshot ever taken.
    (SELECT product_id, store_id, as_of, on_hand, on_order
     FROM core.stock
     ORDER BY product_id DESC, store_id DESC, as_of DESC
     LIMIT 1)
    UNION ALL
    SELECT previous.*
    FROM latest AS l
    CROSS JOIN LATERAL (
        SELECT s.product_id, s.store_id, s.as_of, s.on_hand, s.on_order
        FROM core.stock AS s
        WHERE (s.product_id, s.store_id) < (l.product_id, l.store_id)
        ORDER BY s.product_id DESC, s.store_id DESC, s.as_of DESC
        LIMIT 1
    ) AS previous
),
span AS (
    SELECT min(as_of) - %(demand_days)s + 1 AS first_day, max(as_of) AS last_day FROM latest
),
daily_units AS (
    -- Units per product, store and day over the span every snapshot's window falls in (one index range:
    -- the span's days are columns of a one-row join, not subqueries, so that the function is inlined).
    SELECT s.product_id, s.store_id, core.reporting_day(s.sold_at, s.sale_date, s.time_given, %(timezone)s) AS day,
           sum(s.quantity) AS units
    FROM span
    JOIN core.sales AS s
      ON core.reported_between(s.sold_at, s.sale_date, s.time_given, %(timezone)s, span.first_day, span.last_day)
    GROUP BY 1, 2, 3
),
demand AS (
    SELECT l.product_id, l.store_id, coalesce(sum(u.units), 0) AS units
    FROM latest AS l
    LEFT JOIN daily_units AS u
        ON u.product_id = l.product_id
       AND u.store_id = l.store_id
       AND u.day BETWEEN l.as_of - %(demand_days)s + 1 AND l.as_of
    GROUP BY l.product_id, l.store_id
),
measured AS (
    SELECT l.*, p.reorder_point, p.unit_cost, d.units,
           -- From the exact units, not the rounded average.
           CASE WHEN d.units > 0 THEN l.on_hand * %(demand_days)s::numeric / d.units END AS cover
    FROM latest AS l
    JOIN demand AS d USING (product_id, store_id)
    LEFT JOIN core.products AS p USING (product_id)
)
SELECT product_id,
       store_id,
       as_of,
       on_hand,
       on_order,
       reorder_point,
       round(units::numeric / %(demand_days)s, 3),
       round(cover, 1),
       CASE WHEN on_hand = 0 THEN 'out_of_stock'
            WHEN on_hand <= reorder_point THEN 'below_reorder_point'
            -- Stock that did not sell at all in the window has endless cover.
            WHEN cover IS NULL OR cover > %(overstock_days)s THEN 'overstock'
            ELSE 'healthy' END,
       round(on_hand * unit_cost, 2)
FROM measured
"""


def refresh_stock_health(cursor: Cursor, timezone: str, overstock_days: float = 90.0) -> int:
    """Replace marts.stock_health from each product and store's latest stock snapshot; return the rows written."""
    refresh_in_turn(cursor, "marts.stock_health")
    cursor.execute("DELETE FROM marts.stock_health")  # not TRUNCATE: readers keep seeing the old rows until commit
    cursor.execute(
        _STOCK_HEALTH_INSERT,
        {"timezone": timezone, "demand_days": DEMAND_DAYS, "overstock_days": Decimal(str(overstock_days))},
    )
    return cursor.rowcount


# --- top products ------------------------------------------------------------------------------

_TOP_PRODUCTS_INSERT = """
INSERT INTO marts.top_products (as_of, period, scope, scope_id, rank, product_id, product_name, category, units,
                                revenue, share, previous_rank, rank_change)
WITH periods (period, first_day) AS (
    VALUES ('yesterday', %(as_of)s::date),
           ('last_7_days', %(as_of)s::date - 6),
           ('last_30_days', %(as_of)s::date - 29),
           ('month_to_date', date_trunc('month', %(as_of)s::date)::date)
),
windows AS (
    -- Each period, and the period of the same length just before it.
    SELECT period, true AS is_current, first_day, %(as_of)s::date AS last_day FROM periods
    UNION ALL
    SELECT period, false, first_day - (%(as_of)s::date - first_day + 1), first_day - 1 FROM periods
),
product_days AS (
    -- Only the days some window covers (about two months), read once.
    SELECT d.day, d.scope_id AS product_id, coalesce(p.category, '') AS category, d.revenue, d.units
    FROM marts.daily_kpis AS d
    LEFT JOIN core.products AS p ON p.product_id = d.scope_id
    WHERE d.scope = 'product' AND d.day BETWEEN (SELECT min(first_day) FROM windows) AND %(as_of)s
),
store_days AS (
    -- The KPIs have no product per store: those days come from the order lines, by the same reporting day.
    SELECT core.reporting_day(sold_at, sale_date, time_given, %(timezone)s) AS day, store_id, product_id,
           sum(revenue) AS revenue, sum(quantity) AS units
    FROM core.sales
    WHERE core.reported_between(sold_at, sale_date, time_given, %(timezone)s,
                                (SELECT min(first_day) FROM windows), %(as_of)s)
      -- The same days, bounded by a value the planner sees: it cannot see the windows' first day, and guessing
      -- a third of the table it read all of core.sales (5 s at 1M lines). No window starts more than 61 days
      -- back (month to date on the 31st, and the 31 days before it), and a sale's sale_date is within 2 days
      -- of its day: 63, and one to spare.
      AND sale_date >= %(as_of)s::date - 64
    GROUP BY 1, 2, 3
),
scoped AS (
    SELECT 'all' AS scope, '' AS scope_id, day, product_id, revenue, units FROM product_days
    UNION ALL
    SELECT 'category', category, day, product_id, revenue, units FROM product_days
    UNION ALL
    SELECT 'store', store_id, day, product_id, revenue, units FROM store_days
),
totals AS (
    SELECT w.period, w.is_current, d.scope, d.scope_id, d.product_id, sum(d.revenue) AS revenue,
           sum(d.units) AS units
    FROM windows AS w
    JOIN scoped AS d ON d.day BETWEEN w.first_day AND w.last_day
    GROUP BY w.period, w.is_current, d.scope, d.scope_id, d.product_id
),
ranked AS (
    SELECT *,
           rank() OVER (PARTITION BY period, is_current, scope, scope_id ORDER BY revenue DESC) AS rank,
           revenue / nullif(sum(revenue) OVER (PARTITION BY period, is_current, scope, scope_id), 0) AS share
    FROM totals
)
SELECT %(as_of)s, c.period, c.scope, c.scope_id, c.rank, c.product_id, p.name, p.category, c.units, c.revenue,
       round(c.share, 4), b.rank, b.rank - c.rank
FROM ranked AS c
LEFT JOIN ranked AS b ON b.period = c.period AND NOT b.is_current AND b.scope = c.scope AND b.scope_id = c.scope_id
                     AND b.product_id = c.product_id
LEFT JOIN core.products AS p ON p.product_id = c.product_id
WHERE c.is_current AND c.rank <= %(top_n)s
"""


def refresh_top_products(cursor: Cursor, as_of: date, top_n: int, timezone: str) -> int:
    """Replace the top products of as_of for every period and scope; return the rows written.

    The whole business and each category rank from marts.daily_kpis; each store from the order lines
    of the same days (reporting days in `timezone`, the pipeline time zone the KPIs were built with).
    """
    if top_n < 1:
        raise ValueError(f"top_n must be 1 or more, not {top_n}")
    refresh_in_turn(cursor, "marts.top_products")
    cursor.execute("DELETE FROM marts.top_products WHERE as_of = %(as_of)s", {"as_of": as_of})
    cursor.execute(_TOP_PRODUCTS_INSERT, {"as_of": as_of, "top_n": top_n, "timezone": timezone})
    written = cursor.rowcount
    cursor.execute("SELECT pg_notify(%s, 'top_products')", (MARTS_CHANNEL,))
    return written


# --- dashboard ---------------------------------------------------------------------------------


def last_complete_day(cursor: Cursor) -> date | None:
    """The latest day in marts.daily_kpis, or None when it is empty."""
    cursor.execute("SELECT max(day) FROM marts.daily_kpis WHERE scope = 'all'")
    return cursor.fetchone()[0]


def build_dashboard(
    cursor: Cursor, as_of: date, timezone: str, top_n: int = 5, alerts: list[dict] | None = None
) -> dict[str, Any]:
    """Build the Dashboard documents for as_of (shape in this module's docstring), the whole business's and each
    store's, store them in marts.dashboard under one refreshed_at, and return the whole business's.

    Reads the marts (refresh them first) and, for distinct customers over a week, core.sales by reporting
    day in `timezone`, which must be the pipeline time zone the KPIs were built with. `alerts`: the open
    alerts, as `sales_pipeline.alerts.render.alert_record` gives them, with their `store_id` (NULL: chain-wide):
    a store's document lists its own.
    """
    cursor.execute("SELECT clock_timestamp()")  # each refresh its own key, even twice in one transaction
    refreshed_at: datetime = cursor.fetchone()[0]
    cursor.execute(
        "SELECT store_id, name FROM core.stores"
        " UNION SELECT DISTINCT scope_id, NULL FROM marts.daily_kpis WHERE scope = 'store'"
        "  AND scope_id NOT IN (SELECT store_id FROM core.stores)"
        " ORDER BY 1"
    )
    scopes = [("all", "", None), *(("store", store_id, name) for store_id, name in cursor.fetchall())]
    alerts = alerts or []
    documents = [
        _dashboard_document(cursor, as_of, refreshed_at, (scope, scope_id), name, top_n, timezone)
        | {"alerts": [a for a in alerts if scope == "all" or a.get("store_id") == scope_id]}
        for scope, scope_id, name in scopes
    ]
    execute_values(
        cursor,
        "INSERT INTO marts.dashboard (refreshed_at, as_of, scope, scope_id, document) VALUES %s",
        [(refreshed_at, as_of, d["scope"], d["scope_id"], Json(d)) for d in documents],
    )
    cursor.execute("SELECT pg_notify(%s, 'dashboard')", (MARTS_CHANNEL,))
    return documents[0]


def _dashboard_document(
    cursor: Cursor,
    as_of: date,
    refreshed_at: datetime,
    scope: tuple[str, str],
    name: str | None,
    top_n: int,
    timezone: str,
) -> dict[str, Any]:
    week = (as_of - timedelta(days=HEADLINE_DAYS - 1), as_of)
    week_before = (week[0] - timedelta(days=HEADLINE_DAYS), week[0] - timedelta(days=1))
    same_day_last_week = as_of - timedelta(days=7)
    return {
        "as_of": as_of.isoformat(),
        "refreshed_at": refreshed_at.isoformat(),
        "currency": None,
        "scope": scope[0],
        "scope_id": scope[1],
        "scope_name": name,
        "headline": _headline(cursor, scope, week, week_before, timezone),
        "headline_day": _headline(cursor, scope, (as_of, as_of), (same_day_last_week, same_day_last_week), timezone),
        "revenue_30d": _revenue_series(cursor, scope, as_of, 30),
        "stock_health": _stock_health_counts(cursor, scope),
        "stock_at_risk": _stock_at_risk(cursor, scope),
        "top_products": _top_products(cursor, scope, as_of, top_n),
        "alerts": [],  # filled in by build_dashboard
    }


def write_dashboard_file(document: dict[str, Any], folder: Path) -> Path:
    """Write the document as `folder/dashboard.json` for a web page or BI tool to read; return its path.

    A temporary file of this writer's own (two runs may write at once), then an atomic rename: readers
    never see a half-written file.
    """
    path = folder / "dashboard.json"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix="dashboard.", suffix=".tmp", delete=False) as out:
        out.write(json.dumps(document, indent=2) + "\n")
    Path(out.name).chmod(0o644)  # readable by a web server or BI tool, as a plainly written file would be
    Path(out.name).replace(path)
    return path


def _headline(
    cursor: Cursor, scope: tuple[str, str], current: tuple[date, date], previous: tuple[date, date], timezone: str
) -> dict[str, dict[str, Any]]:
    """The KPIs of the `current` days against the `previous` ones (first and last day of each)."""
    params = {
        "scope": scope[0],
        "scope_id": scope[1],
        "store_id": scope[1] if scope[0] == "store" else None,
        "current_first": current[0],
        "current_last": current[1],
        "previous_first": previous[0],
        "previous_last": previous[1],
        "timezone": timezone,
    }
    # Orders sum across days (an order has one instant); distinct customers do not, see below.
    cursor.execute(
        """
        SELECT day >= %(current_first)s AS is_current,
               sum(revenue), sum(units), sum(orders), sum(revenue_with_cost), sum(gross_margin)
        FROM marts.daily_kpis
        WHERE scope = %(scope)s AND scope_id = %(scope_id)s
          AND (day BETWEEN %(current_first)s AND %(current_last)s
               OR day BETWEEN %(previous_first)s AND %(previous_last)s)
        GROUP BY 1
        """,
        params,
    )
    totals = {is_current: values for is_current, *values in cursor.fetchall()}
    customers = _distinct_customers(cursor, params)

    def figures(is_current: bool) -> dict[str, Any]:
        revenue, units, orders, revenue_with_cost, gross_margin = totals.get(is_current, (0, 0, 0, 0, None))
        return {
            "revenue": _money(revenue),
            "orders": int(orders),
            "units": int(units),
            "average_order_value": _money(revenue / orders) if orders else None,
            "gross_margin_rate": (
                round(float(gross_margin / revenue_with_cost), 4)
                if gross_margin is not None and revenue_with_cost > 0
                else None
            ),
            "customers": customers.get(is_current, 0),
        }

    now, before = figures(True), figures(False)
    return {
        name: {"value": now[name], "previous": before[name], "change": _change(now[name], before[name])} for name in now
    }


def _distinct_customers(cursor: Cursor, params: dict[str, Any]) -> dict[bool, int]:
    """Distinct known customers of the current and the previous days (not a sum of daily counts)."""
    cursor.execute(
        """
        SELECT day >= %(current_first)s AS is_current, count(DISTINCT customer_id)
        FROM (
            SELECT core.reporting_day(sold_at, sale_date, time_given, %(timezone)s) AS day, customer_id
            FROM core.sales
            WHERE core.reported_between(sold_at, sale_date, time_given, %(timezone)s,
                                        %(previous_first)s, %(current_last)s)
              AND (%(store_id)s::text IS NULL OR store_id = %(store_id)s)
        ) AS lines
        WHERE day BETWEEN %(current_first)s AND %(current_last)s OR day BETWEEN %(previous_first)s AND %(previous_last)s
        GROUP BY 1
        """,
        params,
    )
    return dict(cursor.fetchall())


def _revenue_series(cursor: Cursor, scope: tuple[str, str], as_of: date, days: int) -> list[dict[str, Any]]:
    cursor.execute(
        """
        SELECT day, revenue
        FROM marts.daily_kpis
        WHERE scope = %(scope)s AND scope_id = %(scope_id)s AND day BETWEEN %(first_day)s AND %(as_of)s
        """,
        {"scope": scope[0], "scope_id": scope[1], "first_day": as_of - timedelta(days=days - 1), "as_of": as_of},
    )
    revenue = dict(cursor.fetchall())
    series = (as_of - timedelta(days=days - 1 - i) for i in range(days))
    return [{"day": day.isoformat(), "revenue": _money(revenue.get(day, 0))} for day in series]


def _store_filter(scope: tuple[str, str]) -> dict[str, str | None]:
    return {"store_id": scope[1] if scope[0] == "store" else None}


def _stock_health_counts(cursor: Cursor, scope: tuple[str, str]) -> dict[str, int]:
    cursor.execute(
        "SELECT status, count(*) FROM marts.stock_health"
        " WHERE %(store_id)s::text IS NULL OR store_id = %(store_id)s GROUP BY status",
        _store_filter(scope),
    )
    counts = dict(cursor.fetchall())
    return {status: counts.get(status, 0) for status in STOCK_STATUSES}


def _stock_at_risk(cursor: Cursor, scope: tuple[str, str]) -> list[dict[str, Any]]:
    """The products out of stock or at their reorder point, least cover first (at most STOCK_AT_RISK_SHOWN)."""
    cursor.execute(
        """
        SELECT h.product_id, p.name, h.store_id, h.on_hand, h.on_order, h.reorder_point, h.days_of_cover, h.status
        FROM marts.stock_health AS h
        LEFT JOIN core.products AS p USING (product_id)
        WHERE h.status IN ('out_of_stock', 'below_reorder_point')
          AND (%(store_id)s::text IS NULL OR h.store_id = %(store_id)s)
        ORDER BY h.status = 'out_of_stock' DESC, h.days_of_cover NULLS LAST, h.product_id, h.store_id
        LIMIT %(shown)s
        """,
        _store_filter(scope) | {"shown": STOCK_AT_RISK_SHOWN},
    )
    names = ("product_id", "name", "store_id", "on_hand", "on_order", "reorder_point", "days_of_cover", "status")
    return [
        dict(zip(names, row, strict=True)) | {"days_of_cover": float(row[6]) if row[6] is not None else None}
        for row in cursor.fetchall()
    ]


def _top_products(cursor: Cursor, scope: tuple[str, str], as_of: date, top_n: int) -> list[dict[str, Any]]:
    cursor.execute(
        """
        SELECT rank, product_id, product_name, revenue, units, share, rank_change
        FROM marts.top_products
        WHERE as_of = %(as_of)s AND period = 'last_7_days' AND scope = %(scope)s AND scope_id = %(scope_id)s
          AND rank <= %(top_n)s
        ORDER BY rank, product_id
        """,
        {"as_of": as_of, "scope": scope[0], "scope_id": scope[1], "top_n": top_n},
    )
    return [
        {
            "rank": rank,
            "product_id": product_id,
            "name": name,
            "revenue": _money(revenue),
            "units": units,
            "share": float(share) if share is not None else None,
            "rank_change": rank_change,
        }
        for rank, product_id, name, revenue, units, share, rank_change in cursor.fetchall()
    ]


def _money(value: Decimal | int | float) -> float:
    return round(float(value), 2)


def _change(value: float | int | None, previous: float | int | None) -> float | None:
    """value / previous - 1, or None when there is nothing to compare with."""
    if value is None or not previous:
        return None
    return round(value / previous - 1, 4)
