"""Data-quality rules on the warehouse, each defined once: the asset checks run them on the core tables, and
the workbook import runs the same rules on its staged rows, so that it rejects, cell by cell and with the
same reason, what the checks would call wrong once loaded.

A rule on a row (`CellRule`) is an SQL condition on the row `t`, true when the row breaks it, the column it
blames and the reason a sender reads. The range rules come from the template's bounds
(`sales_pipeline/excel/layout.py`), which the import's parser and the template's data validation read too.
"""

from dataclasses import dataclass

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.excel.layout import SALES, STOCK, Sheet

SAMPLE = 10
FUTURE_TOLERANCE = "1 hour"  # clocks of tills and servers drift a little


@dataclass(frozen=True)
class RuleResult:
    failures: int
    sample: list[dict]

    @property
    def passed(self) -> bool:
        return self.failures == 0


@dataclass(frozen=True)
class CellRule:
    """A rule on one column of a row: `offends` (SQL on the row `t`) is true when the row breaks it."""

    column: str
    offends: sql.Composable
    reason: str


@dataclass(frozen=True)
class Rule:
    """One check of a core table: rules on each row, or a query over several rows (`offending`)."""

    table: str
    shown: tuple[str, ...]  # the columns that identify an offending row in the check's sample
    description: str
    cells: tuple[CellRule, ...] = ()
    offending: str | None = None  # a query selecting the offending rows, when the rule spans rows


def in_range(sheet: Sheet, *names: str) -> tuple[CellRule, ...]:
    """The template's bounds of these columns (and the most a value plausibly is), as rules on a table's rows."""
    rules = []
    for name in names:
        column, value = sheet.column_by_name[name], sql.SQL("t.{}").format(sql.Identifier(name))
        if column.minimum is not None:
            below = sql.SQL("{} < {}").format(value, sql.Literal(column.minimum))
            rules.append(CellRule(name, below, column.range_reason))
        if column.maximum is not None:
            above = sql.SQL("{} > {}").format(value, sql.Literal(column.maximum))
            rules.append(CellRule(name, above, column.range_reason))
        if column.plausible_max is not None:
            above = sql.SQL("{} > {}").format(value, sql.Literal(column.plausible_max))
            rules.append(CellRule(name, above, column.implausible_reason))
    return tuple(rules)


KNOWN_PRODUCT = CellRule(
    "product_id",
    sql.SQL("NOT EXISTS (SELECT 1 FROM core.products p WHERE p.product_id = t.product_id)"),
    "unknown product: not in the Products sheet or the warehouse",
)


NOT_IN_THE_FUTURE = CellRule(
    "sold_at",
    sql.SQL("t.sold_at > now() + {}::interval").format(sql.Literal(FUTURE_TOLERANCE)),
    f"in the future: a sale is sent once it happened (a clock up to {FUTURE_TOLERANCE} ahead is allowed)",
)

RULES = {
    "order_lines_unique": Rule(
        "core.sales", ("order_id", "line_number"), "Each order line (order id, line number) appears once.",
        offending="SELECT order_id, line_number, count(*) AS copies FROM core.sales GROUP BY 1, 2 HAVING count(*) > 1",
    ),
    "quantities_and_prices_in_range": Rule(
        "core.sales", ("order_id", "line_number", "quantity", "unit_price", "discount", "revenue"),
        "Quantities, unit prices, discounts and line totals within the template's bounds (Sales sheet).",
        in_range(SALES, "quantity", "unit_price", "discount", "revenue"),
    ),
    "every_sale_has_a_known_product": Rule(
        "core.sales", ("order_id", "line_number", "product_id"), "Every sale's product is in core.products.",
        (KNOWN_PRODUCT,),
    ),
    "no_sale_in_the_future": Rule(
        "core.sales", ("order_id", "line_number", "sold_at"),
        f"No sale is dated after now ({FUTURE_TOLERANCE} of clock drift allowed).", (NOT_IN_THE_FUTURE,),
    ),
    "stock_not_negative": Rule(
        "core.stock", ("product_id", "store_id", "as_of", "on_hand", "on_order"),
        "On hand and on order are never negative.", in_range(STOCK, "on_hand", "on_order"),
    ),
    "every_stock_count_has_a_known_product": Rule(
        "core.stock", ("product_id", "store_id", "as_of"), "Every stock count's product is in core.products.",
        (KNOWN_PRODUCT,),
    ),
}  # fmt: skip


def cell_rules(table: str) -> tuple[CellRule, ...]:
    """Every rule on the rows of a core table: what the import checks its staged rows against."""
    return tuple(cell for rule in RULES.values() if rule.table == table for cell in rule.cells)


def offending_query(rule: Rule) -> sql.Composable:
    if rule.offending:
        return sql.SQL(rule.offending)
    table = sql.SQL(".").join(map(sql.Identifier, rule.table.split(".")))
    return sql.SQL("SELECT {} FROM {} t WHERE {}").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in rule.shown),
        table,
        sql.SQL(" OR ").join(cell.offends for cell in rule.cells),
    )


def offending_rows(cursor: Cursor, candidates: sql.Composable, table: str, params: dict) -> list[tuple[int, CellRule]]:
    """(row number, broken rule) of the rows `candidates` yields (a query with `row_number` and the table's
    columns) that break a rule of `table`: one pass over them, whatever the number of rules."""
    rules = cell_rules(table)
    if not rules:
        return []
    cursor.execute(
        sql.SQL("WITH t AS ({}) SELECT t.row_number, {} FROM t WHERE {}").format(
            candidates,
            sql.SQL(", ").join(sql.SQL("coalesce({}, false)").format(r.offends) for r in rules),
            sql.SQL(" OR ").join(r.offends for r in rules),
        ),
        params,
    )
    return [(row[0], rule) for row in cursor.fetchall() for rule, broken in zip(rules, row[1:], strict=True) if broken]


def check_rule(cursor: Cursor, rule: str) -> RuleResult:
    query = offending_query(RULES[rule])
    cursor.execute(sql.SQL("SELECT count(*) FROM ({}) offending").format(query))
    failures = cursor.fetchone()[0]
    sample: list[dict] = []
    if failures:
        cursor.execute(sql.SQL("{} LIMIT {}").format(query, sql.Literal(SAMPLE)))
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
