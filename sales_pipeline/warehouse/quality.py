"""Data-quality rules on the warehouse, as plain queries: each returns the offending rows' count and a sample."""

from dataclasses import dataclass

from psycopg2.extensions import cursor as Cursor

SAMPLE = 10
# A quantity or price beyond these is a typing slip, not a sale.
MAX_QUANTITY = 10_000
MAX_UNIT_PRICE = 100_000
FUTURE_TOLERANCE = "1 hour"  # clocks of tills and servers drift a little


@dataclass(frozen=True)
class RuleResult:
    failures: int
    sample: list[dict]

    @property
    def passed(self) -> bool:
        return self.failures == 0


# Each rule: a query selecting the offending rows (their identifying columns first).
RULES = {
    "order_lines_unique": (
        "SELECT order_id, line_number, count(*) AS copies FROM core.sales GROUP BY 1, 2 HAVING count(*) > 1"
    ),
    "quantities_and_prices_in_range": (
        "SELECT order_id, line_number, quantity, unit_price, discount, revenue FROM core.sales"
        f" WHERE quantity NOT BETWEEN 1 AND {MAX_QUANTITY} OR unit_price NOT BETWEEN 0 AND {MAX_UNIT_PRICE}"
        " OR discount NOT BETWEEN 0 AND 1 OR revenue < 0"
    ),
    "every_sale_has_a_known_product": (
        "SELECT s.order_id, s.line_number, s.product_id FROM core.sales s"
        " WHERE NOT EXISTS (SELECT 1 FROM core.products p WHERE p.product_id = s.product_id)"
    ),
    "no_sale_in_the_future": (
        f"SELECT order_id, line_number, sold_at FROM core.sales WHERE sold_at > now() + interval '{FUTURE_TOLERANCE}'"
    ),
    "stock_not_negative": (
        "SELECT product_id, store_id, as_of, on_hand, on_order FROM core.stock WHERE on_hand < 0 OR on_order < 0"
    ),
    "every_stock_count_has_a_known_product": (
        "SELECT k.product_id, k.store_id, k.as_of FROM core.stock k"
        " WHERE NOT EXISTS (SELECT 1 FROM core.products p WHERE p.product_id = k.product_id)"
    ),
}


def check_rule(cursor: Cursor, rule: str) -> RuleResult:
    query = RULES[rule]
    cursor.execute(f"SELECT count(*) FROM ({query}) offending")
    failures = cursor.fetchone()[0]
    sample: list[dict] = []
    if failures:
        cursor.execute(f"{query} LIMIT {SAMPLE}")
        columns = [c.name for c in cursor.description]
        sample = [{c: str(v) for c, v in zip(columns, row, strict=True)} for row in cursor.fetchall()]
    return RuleResult(failures, sample)


def hold_sales_still(cursor: Cursor) -> None:
    """Until this transaction ends, no one else changes core.sales (writers wait, readers do not); it waits
    for the writers under way to commit first.

    A refresh of the KPIs and its reconciliation read core.sales in separate statements, each with its own
    snapshot: sales committed between them would show as a mismatch that is not one.
    """
    cursor.execute("LOCK TABLE core.sales IN SHARE MODE")


def revenue_mismatches(cursor: Cursor, timezone: str, first_day: object, last_day: object) -> RuleResult:
    """Days whose revenue in marts.daily_kpis (overall) differs from core.sales: exact sums, not rounded.

    Run it in the refresh's transaction, after `hold_sales_still`, so that it compares what the refresh saw.
    """
    cursor.execute(
        "WITH core AS ("
        "  SELECT core.reporting_day(sold_at, sale_date, time_given, %(tz)s) AS day, sum(revenue) AS revenue"
        "  FROM core.sales WHERE core.reported_between(sold_at, sale_date, time_given, %(tz)s,"
        "    %(first)s::date, %(last)s::date) GROUP BY 1),"
        " mart AS (SELECT day, revenue FROM marts.daily_kpis WHERE scope = 'all'"
        "  AND day BETWEEN %(first)s AND %(last)s)"
        " SELECT coalesce(core.day, mart.day)::text, core.revenue::text, mart.revenue::text"
        " FROM core FULL JOIN mart USING (day) WHERE core.revenue IS DISTINCT FROM mart.revenue ORDER BY 1",
        {"tz": timezone, "first": first_day, "last": last_day},
    )
    rows = cursor.fetchall()
    sample = [{"day": day, "core_sales": core, "marts": mart} for day, core, mart in rows[:SAMPLE]]
    return RuleResult(len(rows), sample)
