"""Committing a complete pull: records land in raw.api_records and merge into the core tables.

Everything a pull writes happens in one transaction. The API is the system of record: its lines
win over the same lines imported from a workbook, and a pull of a day of sales replaces the API's
lines of that day (a line deleted in the back office disappears here too).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import pandas as pd
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor
from pydantic.alias_generators import to_camel

from sales_pipeline.javaapi.client import Page, PullStats, served_twice
from sales_pipeline.javaapi.records import SaleLine, SalesLines
from sales_pipeline.warehouse.merge import MergeCounts, escape_copy_text, merge_frame, merge_staged, stage_frame

SOURCE = "api"


@dataclass(frozen=True)
class PullResult:
    pull_id: int
    endpoint: str
    records: int
    counts: MergeCounts
    removed: int = 0


def start_pull(cursor: Cursor, endpoint: str, window: tuple[object, object], run_id: str | None) -> int:
    cursor.execute(
        "INSERT INTO ops.api_pulls (endpoint, window_start, window_end, run_id, started_at)"
        " VALUES (%s, %s, %s, %s, now()) RETURNING pull_id",
        (endpoint, *window, run_id),
    )
    return cursor.fetchone()[0]


def land_records(cursor: Cursor, pull_id: int, endpoint: str, records: Sequence) -> None:
    if not records:  # an empty list (no closure known yet): nothing to keep, and COPY would read one empty row
        return
    prefix = f"{pull_id}\t{endpoint}\t"
    lines = (prefix + escape_copy_text(record.model_dump_json(by_alias=True)) for record in records)
    cursor.copy_expert(
        "COPY raw.api_records (pull_id, endpoint, record) FROM STDIN", io.StringIO("\n".join(lines) + "\n")
    )


def finish_pull(cursor: Cursor, result: PullResult, stats: PullStats, sales_changed: tuple | None = None) -> None:
    cursor.execute(
        "UPDATE ops.api_pulls SET records = %s, pages = %s, retries = %s, inserted = %s, updated = %s,"
        " removed = %s, sales_changed_from = %s, sales_changed_to = %s, finished_at = now() WHERE pull_id = %s",
        (result.records, stats.pages, stats.retries, result.counts.inserted, result.counts.updated, result.removed,
         *(sales_changed or (None, None)), result.pull_id),
    )  # fmt: skip


def products_cursor(cursor: Cursor) -> str | None:
    """Where the next pull of products starts (`updatedSince`): the newest change the last pulls saw."""
    cursor.execute("SELECT cursor FROM ops.api_cursors WHERE endpoint = 'products'")
    row = cursor.fetchone()
    return row[0] if row else None


def advance_products_cursor(cursor: Cursor, records: Sequence) -> None:
    """Move the products cursor to the newest change pulled, in the pull's transaction (nothing pulled: unchanged).

    Kept in the warehouse, not in Dagster, so that it survives a new Dagster instance.
    """
    if not records:
        return
    newest = max(record.updated_at for record in records).isoformat()
    cursor.execute(
        "INSERT INTO ops.api_cursors (endpoint, cursor) VALUES ('products', %s)"
        " ON CONFLICT (endpoint) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()",
        (newest,),
    )


def merge_products(cursor: Cursor, records: Sequence) -> MergeCounts:
    frame = _frame(records).drop(columns=["updated_at"])  # the API's updatedAt is the cursor, not our column
    frame["source"] = SOURCE
    return merge_frame(cursor, "core.products", frame, ("product_id",)) if len(frame) else MergeCounts(0, 0, 0)


def merge_stock(cursor: Cursor, records: Sequence) -> MergeCounts:
    frame = _frame(records)
    if frame.empty:
        return MergeCounts(0, 0, 0)
    frame["source"] = SOURCE
    stores = list(frame["store_id"].dropna().unique())
    _add_missing(cursor, "core.stores", "store_id", sql.SQL("SELECT unnest(%s::text[])"), (stores,))
    return merge_frame(cursor, "core.stock", frame, ("product_id", "store_id", "as_of"))


def merge_store_calendar(cursor: Cursor, records: Sequence) -> tuple[MergeCounts, int]:
    """The back office's whole store calendar replaces the rows it sent before (a closure it dropped goes)."""
    frame = _frame(records).rename(columns={"date": "day", "day_of_week": "weekday"})
    if len(frame):
        frame["weekday"] = frame["weekday"].map(lambda day: day.capitalize() if day else None)
    return _replace_snapshot(cursor, "core.store_calendar", frame, ("store_id", "day", "weekday"))


def merge_promotions(cursor: Cursor, records: Sequence) -> tuple[MergeCounts, int]:
    """The back office's promotions replace the ones it sent before (a promotion it cancelled goes).

    The warehouse keys a promotion by what it covers and when it starts; two of the back office's with
    the same key are one (the later id wins).
    """
    frame = _frame(records).drop(columns=["promotion_id"], errors="ignore")
    key = ("product_id", "category", "store_id", "starts_on")
    if len(frame):
        frame = frame.drop_duplicates(list(key), keep="last")
    return _replace_snapshot(cursor, "core.promotions", frame, key)


def _replace_snapshot(cursor: Cursor, table: str, frame: pd.DataFrame, key: tuple[str, ...]) -> tuple[MergeCounts, int]:
    """Merge a complete pull of `table`'s API rows, and delete the API's rows the pull no longer has."""
    staging = "stage_api_" + table.split(".")[-1]
    if len(frame):
        frame = frame.assign(source=SOURCE)
        stage_frame(cursor, frame[list(key)], table, staging)
        stores = sql.SQL("SELECT DISTINCT store_id FROM {}").format(sql.Identifier(staging))
        _add_missing(cursor, "core.stores", "store_id", stores)
        counts = merge_frame(cursor, table, frame, key)
    else:
        counts = MergeCounts(0, 0, 0)
        stage_frame(cursor, pd.DataFrame({column: [] for column in key}), table, staging)
    same_key = sql.SQL(" AND ").join(
        sql.SQL("s.{0} IS NOT DISTINCT FROM t.{0}").format(sql.Identifier(column)) for column in key
    )
    cursor.execute(
        sql.SQL("DELETE FROM {} t WHERE t.source = %s AND NOT EXISTS (SELECT 1 FROM {} s WHERE {})").format(
            sql.SQL(".").join(map(sql.Identifier, table.split("."))), sql.Identifier(staging), same_key
        ),
        (SOURCE,),
    )
    return counts, cursor.rowcount


def land_sales(
    cursor: Cursor, pull_id: int, pages: Iterable[Page], window: tuple[dt.datetime, dt.datetime]
) -> PullResult:
    """Land and merge a window's sale lines, page by page as they come, and remove the API's lines of that
    window the pull no longer has.

    Memory holds a page at a time: as soon as a page has come (the client has checked it), its records are
    COPYed into raw.api_records (each record's JSON) and its lines into a staging table (typed columns),
    while the client reads the next page; the server reads each record once. After the last page, one
    statement fails the pull on a key served twice, one removes the lines gone, one merges the lines into
    core.sales. All in the
    caller's transaction, so a pull that fails on page 7 of 10 leaves nothing; when page 0 comes again
    (the pull started over) it rolls back to before the first page. The counts' span covers the removed
    lines too, so the marts refresh the days they left. `pages` must be a checked pull of that window
    (the client's `pages`): a line missing from them is deleted.
    """
    # The staging table types the lines as core.sales does, beside the page and place each came in.
    cursor.execute(
        sql.SQL(
            "CREATE TEMP TABLE stage_api_sales ON COMMIT DROP AS SELECT NULL::integer AS page,"
            " NULL::integer AS place, {} FROM core.sales WITH NO DATA"
        ).format(sql.SQL(", ").join(map(sql.Identifier, _SALE_COLUMNS.values())))
    )
    cursor.execute("SAVEPOINT sales_pages")
    started, records = False, 0
    for page in pages:
        if page.number == 0 and started:
            cursor.execute("ROLLBACK TO SAVEPOINT sales_pages")
            records = 0
        started = True
        if len(page.records):
            raw, lines = _copy_texts(pull_id, page)
            cursor.copy_expert("COPY raw.api_records (pull_id, endpoint, record) FROM STDIN", io.StringIO(raw))
            cursor.copy_expert("COPY stage_api_sales FROM STDIN", io.StringIO(lines))
        records += len(page.records)
    _fail_on_repeated_key(cursor)
    # The API's lines of the window that the pull no longer has go before the merge, which never writes them:
    # a first pull then finds an empty window rather than looking through the lines it just wrote.
    cursor.execute(
        "DELETE FROM core.sales t WHERE t.source = %s AND t.sold_at >= %s AND t.sold_at < %s"
        " AND NOT EXISTS (SELECT 1 FROM stage_api_sales s WHERE s.order_id = t.order_id"
        " AND s.line_number = t.line_number) RETURNING t.sold_at",
        (SOURCE, *window),
    )
    removed_at = [row[0] for row in cursor.fetchall()]
    for table, key in (("core.stores", "store_id"), ("core.customers", "customer_id")):
        _add_missing(cursor, table, key, sql.SQL("SELECT DISTINCT {} FROM stage_api_sales").format(sql.Identifier(key)))
    # sale_date is the store's local day; the API gives instants, always with a time (time_given).
    select = sql.SQL(
        "SELECT {columns}, %(source)s, NULL::bigint, (s.sold_at AT TIME ZONE coalesce(st.timezone, 'UTC'))::date,"
        " true FROM stage_api_sales s LEFT JOIN core.stores st USING (store_id)"
    ).format(columns=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in _SALE_COLUMNS.values()))
    # import_id names the workbook that last wrote a line: none for the API's.
    counts = merge_staged(
        cursor, "core.sales", records, select,
        [*_SALE_COLUMNS.values(), "source", "import_id", "sale_date", "time_given"], ("order_id", "line_number"),
        params={"source": SOURCE}, span="sold_at",
    )  # fmt: skip
    removed_span = (min(removed_at), max(removed_at)) if removed_at else None
    counts = replace(counts, span=_widest(counts.span, removed_span))
    return PullResult(pull_id, "sales", records, counts, len(removed_at))


# A line's fields on the wire -> core.sales's columns (its line total is our revenue).
_SALE_COLUMNS = {to_camel(field): "revenue" if field == "line_total" else field for field in SaleLine.model_fields}


def _copy_texts(pull_id: int, page: Page) -> tuple[str, str]:
    """COPY's text format for a page: its records for raw.api_records, its lines for the staging table (page,
    place, then core.sales's columns)."""
    lines: SalesLines = page.records
    raw = "".join(f"{pull_id}\tsales\t{record}\n" for record in _copy_column(lines.texts))
    columns = [
        [str(page.number)] * len(lines), list(map(str, range(len(lines)))),
        *(_copy_column(lines.columns[field]) for field in SaleLine.model_fields),
    ]  # fmt: skip
    return raw, "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def _copy_column(values: list) -> list[str]:
    """A column's values as COPY's text format writes them: \\N for null, t/f, text escaped where it needs it."""
    kinds = set(map(type, values)) - {type(None)}
    if kinds == {bool}:
        return ["\\N" if value is None else "t" if value else "f" for value in values]
    if kinds == {str}:
        text = "".join(value for value in values if value is not None)
        if any(special in text for special in "\\\t\n\r"):
            return ["\\N" if value is None else escape_copy_text(value) for value in values]
        return ["\\N" if value is None else value for value in values]
    return ["\\N" if value is None else str(value) for value in values]


def _fail_on_repeated_key(cursor: Cursor) -> None:
    """Fail the pull on the first line whose key an earlier line had, naming its page and the page it came on."""
    cursor.execute(
        "SELECT 1 FROM stage_api_sales GROUP BY order_id, line_number HAVING count(*) > 1 LIMIT 1"
    )  # a hash of the keys: the common case, no repeat, costs no sort
    if cursor.fetchone() is None:
        return
    cursor.execute(
        "SELECT page, place, order_id, line_number, first_page FROM (SELECT *, row_number() OVER w AS nth,"
        " first_value(page) OVER w AS first_page FROM stage_api_sales"
        " WINDOW w AS (PARTITION BY order_id, line_number ORDER BY page, place)) keys"
        " WHERE nth > 1 ORDER BY page, place LIMIT 1"
    )
    page, place, order_id, line_number, first_page = cursor.fetchone()
    key_text = SaleLine.model_construct(order_id=order_id, line_number=line_number).key_text
    raise served_twice("sales", page, place, key_text, first_page)


def _widest(*spans: tuple | None) -> tuple | None:
    """The smallest span covering every given one (a merge that changed nothing has (None, None))."""
    ends = [end for span in spans if span for end in span if end is not None]
    return (min(ends), max(ends)) if ends else None


def _frame(records: Sequence) -> pd.DataFrame:
    return pd.DataFrame([record.model_dump() for record in records])


def _add_missing(cursor: Cursor, table: str, key: str, values: sql.Composable, params: tuple = ()) -> None:
    """Add the stores (or customers) that the query `values` names and the warehouse does not know yet."""
    statement = sql.SQL(
        "INSERT INTO {} ({}, source) SELECT v, %s FROM ({}) AS pulled (v) WHERE v IS NOT NULL ON CONFLICT DO NOTHING"
    )
    table_name = sql.SQL(".").join(map(sql.Identifier, table.split(".")))
    cursor.execute(statement.format(table_name, sql.Identifier(key), values), (SOURCE, *params))
