"""Importing one dropped workbook: read, map, validate, load, record, archive.

`import_workbook` is plain Python with no Dagster in it: the Dagster asset, the CLI's `import`
command and the tests all call it. Its promises:

- good rows load and bad rows are reported (cell by cell) in ops.import_rejects and in a
  feedback workbook next to the archived original;
- everything it writes to the warehouse is written in one transaction, so a failure leaves
  every table as it was and the file stays in the inbox;
- the original is never deleted or overwritten: it moves to archive/ (or rejected/ when it
  cannot be read at all) under a folder named by its content hash;
- the same bytes, under any name, load nothing new, even when two imports of them run at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.excel.csv_read import is_csv, read_csv_sheets
from sales_pipeline.excel.feedback import RejectedCell, SheetRows, write_feedback_workbook
from sales_pipeline.excel.layout import CALENDAR, PRODUCTS, PROMOTIONS, SALES, STOCK, Sheet, normalise_header
from sales_pipeline.excel.mapping import BACKTICKED, TEMPLATE, Mapping, SheetMapping, header_aliases
from sales_pipeline.excel.parse import (
    REQUIRED,
    UNCALCULATED_FORMULA,
    CellProblem,
    ParseOptions,
    blank_mask,
    cell_text,
    gives_time_of_day,
    is_blank,
    parse_column,
    parse_sheet,
)
from sales_pipeline.excel.read import (
    RawSheet,
    UnreadableWorkbook,
    content_hash,
    read_workbook,
    uncalculated_formula_cells,
    uses_1904_dates,
)
from sales_pipeline.records import ImportResult, SheetResult
from sales_pipeline.warehouse.db import transaction
from sales_pipeline.warehouse.merge import MergeCounts, escape_copy_text, merge_frame, merge_staged, stage_frame

log = logging.getLogger(__name__)

SOURCE = "excel"
# Sales and stock counts from the back office's API are the system of record: a workbook's copy of
# the same line or count never overwrites them.
API_OWNS_IT_NOT = sql.SQL("t.source <> 'api'")
HEADER_SEARCH_ROWS = 20  # headers may sit below a title block, but not further down than this
LINE_TOTAL_TOLERANCE = 0.015  # a cent of rounding either way, and float noise
# Advisory locks of imports, one per content hash (the two-key space, apart from the refreshes' locks).
IMPORT_LOCK_CLASS = 74_210
NAME_MAX_BYTES = 255  # a file name's limit on ext4, APFS, NTFS: names derived from a sender's must fit


@dataclass(frozen=True)
class ImportSettings:
    database_url: str
    archive_dir: Path
    rejected_dir: Path
    dayfirst: bool = True
    timezone: str = "UTC"  # for sales of stores whose time zone is unknown
    inbox_dir: Path | None = None  # when set, files whose real place is outside these folders are refused


@dataclass
class PreparedSheet:
    """One source sheet mapped onto one template sheet, parsed and checked, ready to load."""

    mapping: SheetMapping
    source_name: str
    headers: dict[str, str]  # canonical column -> what the sender's sheet calls it
    sender_header: list[str]
    sender: pd.DataFrame  # the sender's rows as read, index = Excel row numbers
    raw: pd.DataFrame  # canonical columns, raw cells, index = Excel row numbers
    good: pd.DataFrame = field(default_factory=pd.DataFrame)  # typed rows that load
    rejects: list[RejectedCell] = field(default_factory=list)
    rejected_rows: set[int] = field(default_factory=set)
    duplicate_rows: int = 0
    dated: pd.Series | None = None  # with repeated_keys "last": each row's date, to find a key's latest row
    ignored_columns: tuple[str, ...] = ()
    counts: MergeCounts = field(default_factory=lambda: MergeCounts(0, 0, 0))

    @property
    def target(self) -> Sheet:
        return self.mapping.target

    def reject(self, row: int, column: str | None, value: object, reason: str) -> None:
        header = self.headers.get(column, column) if column else None
        self.rejects.append(RejectedCell(self.source_name, row, header, value, reason))
        self.rejected_rows.add(row)

    def result(self) -> SheetResult:
        return SheetResult(
            sheet=self.source_name,
            target=self.target.name,
            rows_read=len(self.raw),
            rows_loaded=len(self.good),
            rows_rejected=len(self.rejected_rows),
            rows_duplicate=self.duplicate_rows,
            inserted=self.counts.inserted,
            updated=self.counts.updated,
            unchanged=self.counts.unchanged,
            ignored_columns=self.ignored_columns,
        )


def import_workbook(
    path: Path,
    settings: ImportSettings,
    mapping: Mapping = TEMPLATE,
    run_id: str | None = None,
    reimport: bool = False,
) -> ImportResult:
    """Import one workbook end to end and return what happened to it (also in ops.import_ledger).

    The importer opens its own transaction (hence `settings.database_url`): the decision "these bytes
    are not loaded yet", the load and the ledger row commit together, and the original moves only
    after that commit, so a failed commit leaves the file in the inbox.
    """
    started_at = dt.datetime.now(dt.UTC)
    refuse_outside_folders(path, settings)
    digest = content_hash(path)
    result = None
    try:
        with transaction(settings.database_url) as cursor:
            # Imports of the same bytes take turns: the second sees the first's ledger row once it commits.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (IMPORT_LOCK_CLASS, digest))
            earlier = None if reimport else earlier_imports(cursor, [digest]).get(digest)
            if earlier is not None:
                reason = f"same content as import #{earlier[0]} ({earlier[1]}): nothing new to load"
                return _record_outcome(cursor, settings, path, digest, "duplicate", reason, mapping, run_id, started_at)
            try:
                workbook = read_source(path, mapping)
                options = mapping.parse_options(settings.dayfirst, uses_1904_dates(path))
                prepared = prepare_sheets(workbook, mapping, options, path)
            except UnreadableWorkbook as problem:
                return _record_outcome(cursor, settings, path, digest, "rejected", str(problem), mapping, run_id,
                                       started_at)  # fmt: skip
            result = _load(cursor, path, digest, prepared, settings, mapping, run_id, started_at)
    except BaseException:
        if result is not None and result.feedback_path:  # the commit failed: its feedback workbook goes too
            Path(result.feedback_path).unlink(missing_ok=True)
        raise
    _keep(path, Path(result.archived_path).parent)
    return result


def _load(
    cursor: Cursor,
    path: Path,
    digest: str,
    prepared: list[PreparedSheet],
    settings: ImportSettings,
    mapping: Mapping,
    run_id: str | None,
    started_at: dt.datetime,
) -> ImportResult:
    """Load the prepared sheets and write the ledger row, in the caller's transaction."""
    archive = settings.archive_dir / digest[:16]
    feedback_path = None
    try:
        import_id = _start_ledger_entry(cursor, path.name, digest, mapping, run_id, started_at)
        _land_raw_rows(cursor, import_id, prepared)
        _check_references(cursor, prepared)
        for sheet in prepared:
            sheet.counts = _merge(cursor, sheet, import_id, settings.timezone)
        _store_rejects(cursor, import_id, path.name, prepared)
        # Written once every reject is known, and before the commit: a failed import leaves none.
        feedback_path = _write_feedback(archive, path, prepared)
        results = tuple(s.result() for s in prepared)
        status, reason = _outcome(results)
        archived = archive / path.name
        changed = _sales_changed(prepared)
        _finish_ledger_entry(cursor, import_id, status, reason, results, archived, feedback_path, changed)
    except BaseException:
        if feedback_path:
            feedback_path.unlink(missing_ok=True)
        raise
    return ImportResult(
        import_id, path.name, digest, status, reason, mapping.name, results, str(archived),
        str(feedback_path) if feedback_path else None,
    )  # fmt: skip


def _sales_changed(prepared: list[PreparedSheet]) -> tuple[object, object]:
    """The first and last sale instants this import inserted or changed (None, None if none)."""
    spans = [s.counts.span for s in prepared if s.counts.span and s.counts.span[0] is not None]
    if not spans:
        return None, None
    return min(first for first, _ in spans), max(last for _, last in spans)


def read_source(path: Path, mapping: Mapping) -> dict[str, RawSheet]:
    """The sheets of a workbook, or a CSV file as the one sheet a ``format: csv`` mapping reads."""
    if mapping.format == "csv" and is_csv(path):
        return read_csv_sheets(path, [sheet.source for sheet in mapping.sheets], mapping.delimiter)
    if is_csv(path):
        raise UnreadableWorkbook(
            f"a CSV file is read through a mapping with 'format: csv' (mapping '{mapping.name}' reads workbooks):"
            " drop it into the inbox folder of such a mapping, e.g. rossmann/"
        )
    if mapping.format == "csv":
        raise UnreadableWorkbook(f"mapping '{mapping.name}' reads CSV files, and {path.name} is not one")
    return read_workbook(path)


def _outcome(results: tuple[SheetResult, ...]) -> tuple[str, str | None]:
    rejected = sum(r.rows_rejected for r in results)
    if not rejected:
        return "loaded", None
    if not any(r.rows_loaded for r in results):
        return "rejected", f"no row could be loaded: {rejected:,} rows rejected, see the feedback workbook"
    return "loaded_with_rejects", None


# --- reading and checking --------------------------------------------------------------------


def prepare_sheets(
    workbook: dict[str, RawSheet], mapping: Mapping, options: ParseOptions, path: Path | None = None
) -> list[PreparedSheet]:
    """Map, parse and validate every sheet the mapping names; raise UnreadableWorkbook on a structural problem."""
    prepared = []
    cache: dict[tuple[str, int], pd.DataFrame] = {}  # a source sheet read by several targets is framed once
    for sheet_mapping in mapping.sheets:
        raw_sheet = _find_sheet(workbook, sheet_mapping, mapping)
        if raw_sheet is None:
            continue
        prepared.append(_prepare(raw_sheet, sheet_mapping, options, cache, path))
    if not prepared:
        expected = ", ".join(s.target.name for s in mapping.sheets)
        raise UnreadableWorkbook(
            f"no sheet matches the import template: expected one of {expected}; "
            f"the workbook has {', '.join(repr(n) for n in workbook) or 'no worksheets'}"
        )
    if not any(len(s.raw) for s in prepared):
        names = ", ".join(repr(s.source_name) for s in prepared)
        raise UnreadableWorkbook(f"no data rows: {names} hold a header row but nothing below it")
    _mark_duplicate_keys(prepared)
    return prepared


def _find_sheet(workbook: dict[str, RawSheet], sheet_mapping: SheetMapping, mapping: Mapping) -> RawSheet | None:
    wanted = sheet_mapping.source or sheet_mapping.target.name
    by_normalised = {normalise_header(name): sheet for name, sheet in workbook.items()}
    found = workbook.get(wanted) or by_normalised.get(normalise_header(wanted))
    if found is None and not mapping.is_template:
        raise UnreadableWorkbook(
            f"sheet '{wanted}' is missing (mapping '{mapping.name}'); the workbook has "
            f"{', '.join(repr(n) for n in workbook) or 'no worksheets'}"
        )
    return found


def _expected_headers(sheet_mapping: SheetMapping) -> set[str]:
    """The normalised headers this sheet should carry: how its header row is recognised."""
    if sheet_mapping.source is None:
        return set(header_aliases(sheet_mapping.target))
    expected = {normalise_header(header) for header in sheet_mapping.columns.values()}
    expected.update(normalise_header(header) for header in _other_headers(sheet_mapping))
    return expected


def _other_headers(sheet_mapping: SheetMapping) -> list[str]:
    """The source headers a mapping reads besides its columns: computed operands, the date of repeated keys."""
    headers = BACKTICKED.findall(" ".join([*sheet_mapping.computed.values(), sheet_mapping.where or ""]))
    return headers + ([sheet_mapping.latest_by] if sheet_mapping.latest_by else [])


def _sender_frame(
    raw_sheet: RawSheet, header_index: int, header: list[str], cache: dict[tuple[str, int], pd.DataFrame]
) -> pd.DataFrame:
    """The sender's rows below the header, as read, indexed by Excel row number (built once per sheet)."""
    key = (raw_sheet.name, header_index)
    if key not in cache:
        rows = raw_sheet.rows[header_index + 1 :]
        frame = pd.DataFrame(rows, dtype=object).reindex(columns=range(len(header)))
        frame.columns = _unique([h or f"column {i + 1}" for i, h in enumerate(header)])
        first_data_row = raw_sheet.first_row_number + header_index + 1
        frame.index = pd.RangeIndex(first_data_row, first_data_row + len(frame))
        cache[key] = frame
    return cache[key]


def _prepare(
    raw_sheet: RawSheet,
    sheet_mapping: SheetMapping,
    options: ParseOptions,
    cache: dict[tuple[str, int], pd.DataFrame],
    path: Path | None,
) -> PreparedSheet:
    target = sheet_mapping.target
    expected = _expected_headers(sheet_mapping)
    header_index = _header_row(raw_sheet.rows, expected)
    header_cells = raw_sheet.rows[header_index] if raw_sheet.rows else []
    sender_header = ["" if is_blank(h) else str(h).strip() for h in header_cells]
    source_position: dict[str, int] = {}  # normalised sender header -> its position in the row
    for index, header in enumerate(sender_header):
        if header:
            source_position.setdefault(normalise_header(header), index)
    if sheet_mapping.source is None:
        aliases = header_aliases(target)
        position = {}  # canonical column -> position in the row
        for normalised, index in source_position.items():
            if normalised in aliases:
                position.setdefault(aliases[normalised], index)
    else:  # a mapping may feed several columns from one header (Region -> store id and name)
        position = {
            name: source_position[normalise_header(header)]
            for name, header in sheet_mapping.columns.items()
            if normalise_header(header) in source_position
        }
    # Unknown headers in a template sheet may be typos worth reporting; a mapping names what it reads.
    ignored = (
        [h for h in sender_header if h and normalise_header(h) not in expected] if not sheet_mapping.source else []
    )
    where = f"sheet '{raw_sheet.name}'"
    provided = set(position) | set(sheet_mapping.constants) | set(sheet_mapping.computed)
    missing_names = [
        c.name
        for c in target.columns
        if c.required and c.name not in provided and not (c.name == "line_number" and sheet_mapping.source)
    ]
    if sheet_mapping.source:  # a mapping names the source headers: report those
        missing = [sheet_mapping.columns.get(name, name) for name in missing_names]
        missing += [h for h in _other_headers(sheet_mapping) if normalise_header(h) not in source_position]
    else:
        missing = [target.column_by_name[name].header for name in missing_names]
    if missing:
        found = ", ".join(repr(h) for h in sender_header if h) or "none"
        raise UnreadableWorkbook(
            f"{where}: required column(s) missing: {', '.join(missing)} (headers found in row "
            f"{raw_sheet.first_row_number + header_index}: {found})"
        )

    sender = _sender_frame(raw_sheet, header_index, sender_header, cache)
    if position:  # rows with nothing in the columns this target reads are not rows
        empty = pd.concat([blank_mask(sender.iloc[:, i]) for i in position.values()], axis=1).all(axis=1)
        sender = sender[~empty]
    if sheet_mapping.where:
        sender = sender[_compute(sheet_mapping.where, sender, source_position).eq(True)]
    raw = pd.DataFrame({name: sender.iloc[:, i] for name, i in position.items()}, index=sender.index)
    headers = {name: sender_header[i] for name, i in position.items()}
    for name, value in sheet_mapping.constants.items():
        raw[name] = pd.Series(value, index=sender.index, dtype=object)
        headers[name] = f"{name} (constant)"
    for name, expression in sheet_mapping.computed.items():
        raw[name] = _compute(expression, sender, source_position)
        headers[name] = expression.replace("`", "")
    raw = raw[[c.name for c in target.columns if c.name in raw.columns]]

    typed, problems = parse_sheet(raw, target, options)
    for name in target.key:  # a key column the sheet leaves out is blank in every row (a calendar's weekday)
        if name not in typed.columns and name != "line_number":
            typed[name] = None
    problems = _flag_uncalculated_formulas(problems, raw_sheet, position, path)
    prepared = PreparedSheet(sheet_mapping, raw_sheet.name, headers, sender_header, sender, raw)
    prepared.ignored_columns = tuple(ignored)
    prepared.dated = _row_dates(sender, source_position, sheet_mapping.latest_by, options)
    for problem in problems:
        prepared.reject(problem.row_number, problem.column, problem.value, problem.reason)
    if target is SALES and "revenue" in typed.columns:
        _check_line_totals(prepared, typed)
    if target is CALENDAR:
        _check_calendar_days(prepared, typed)
    if target is PROMOTIONS:
        _check_promotion_dates(prepared, typed)
    if target is SALES and "line_number" not in typed.columns:
        # No line column: lines are numbered within each order in sheet order.
        typed.insert(1, "line_number", typed.groupby("order_id", dropna=False).cumcount().add(1).astype("Int64"))
    prepared.good = typed.drop(index=list(prepared.rejected_rows))
    return prepared


def _flag_uncalculated_formulas(
    problems: list[CellProblem], raw_sheet: RawSheet, position: dict[str, int], path: Path | None
) -> list[CellProblem]:
    """A formula without a saved result reads as empty; say so rather than "a value is required"."""
    if path is None or not any(p.reason == REQUIRED for p in problems):
        return problems
    formulas = uncalculated_formula_cells(path, raw_sheet.name)
    flagged = []
    for problem in problems:
        column = raw_sheet.first_column_number + position.get(problem.column, -(10**6))
        if problem.reason == REQUIRED and (problem.row_number, column) in formulas:
            problem = CellProblem(problem.row_number, problem.column, problem.value, UNCALCULATED_FORMULA)
        flagged.append(problem)
    return flagged


def _check_line_totals(prepared: PreparedSheet, typed: pd.DataFrame) -> None:
    """A line total must agree with quantity x unit price x (1 - discount), to the cent."""
    discount = typed.get("discount", 0.0)  # a mapping may give no discount: none
    computed = typed["quantity"].astype(float) * typed["unit_price"] * (1 - discount)
    wrong = (typed["revenue"] - computed).abs() > LINE_TOTAL_TOLERANCE
    for row_number in typed.index[wrong.fillna(False).astype(bool)]:
        expected = f"{computed[row_number]:.2f}"
        reason = f"does not match quantity x unit price x (1 - discount) = {expected}"
        prepared.reject(row_number, "revenue", prepared.raw.at[row_number, "revenue"], reason)


def _check_calendar_days(prepared: PreparedSheet, typed: pd.DataFrame) -> None:
    """A calendar row names a date or a weekday: with both, or neither, what it means is not known."""
    dated = typed["day"].notna() if "day" in typed else pd.Series(False, index=typed.index)
    weekly = typed["weekday"].notna() if "weekday" in typed else pd.Series(False, index=typed.index)
    for row_number in typed.index[dated & weekly]:
        reason = "give a date or a weekday, not both: a date closes that day, a weekday every such day"
        prepared.reject(row_number, "weekday", prepared.raw.at[row_number, "weekday"], reason)
    for row_number in typed.index[~dated & ~weekly]:
        prepared.reject(row_number, "day", None, "a date or a weekday is required: the day (or days) it is about")


def _check_promotion_dates(prepared: PreparedSheet, typed: pd.DataFrame) -> None:
    """A promotion ends on or after the day it starts."""
    backwards = (typed["ends_on"] < typed["starts_on"]).fillna(False).astype(bool)
    for row_number in typed.index[backwards]:
        starts = typed.at[row_number, "starts_on"].date().isoformat()
        reason = f"ends before it starts ({starts}): the To date is the promotion's last day, on or after From"
        prepared.reject(row_number, "ends_on", prepared.raw.at[row_number, "ends_on"], reason)


def _header_row(rows: list[list[object]], expected: dict[str, str]) -> int:
    """The row (within the first few) that carries the most expected headers; 0 if none does."""
    best, best_hits = 0, 0
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        hits = sum(1 for cell in row if not is_blank(cell) and normalise_header(cell) in expected)
        if hits > best_hits:
            best, best_hits = index, hits
    return best


def _compute(expression: str, sender: pd.DataFrame, positions: dict[str, int]) -> pd.Series:
    """Evaluate a mapping's computed column over the sender's numeric columns."""
    names = BACKTICKED.findall(expression)
    frame = pd.DataFrame(
        {name: pd.to_numeric(sender.iloc[:, positions[normalise_header(name)]], errors="coerce") for name in names},
        index=sender.index,
    )
    if frame.empty:
        return pd.Series(None, index=sender.index, dtype=object)
    result = frame.eval(expression)
    return result.astype(object).where(result.notna(), None)


def _row_dates(
    sender: pd.DataFrame, positions: dict[str, int], header: str | None, options: ParseOptions
) -> pd.Series | None:
    """The sender's `header` column read as sale dates (NaT where unreadable); None without a header."""
    if header is None:
        return None
    dates, _ = parse_column(sender.iloc[:, positions[normalise_header(header)]], SALES.column_by_name["sold_at"],
                            options)  # fmt: skip
    return dates


def _superseded(good: pd.DataFrame, key_columns: list[str], dated: pd.Series | None) -> pd.Series:
    """Rows of a repeated key that are not its latest (mapping module doc): by date, then sheet order."""
    if dated is None:
        return good.duplicated(key_columns, keep="last")
    # A stable sort keeps sheet order among equal dates; undated rows (NaT) go first, as the oldest.
    order = dated.reindex(good.index).sort_values(kind="stable", na_position="first").index
    return good.loc[order].duplicated(key_columns, keep="last").reindex(good.index)


def _mark_duplicate_keys(prepared: list[PreparedSheet]) -> None:
    """Within a workbook, a key appears once: exact repeats are counted, conflicting ones rejected.

    Several sheets (or a mapping feeding one target from several sheets) share a target's key space,
    so sheets of the same target are checked together, in order. Only rows whose key repeats take
    the slow path.
    """
    earlier: dict[str, list[PreparedSheet]] = {}  # target -> sheets already checked
    for sheet in prepared:
        before = earlier.setdefault(sheet.target.name, [])
        key_columns = list(sheet.target.key)
        good = sheet.good
        if sheet.mapping.repeated_keys == "last" and not good.empty:
            repeated = _superseded(good, key_columns, sheet.dated)
            sheet.duplicate_rows += int(repeated.sum())
            good = sheet.good = good[~repeated]
        if good.empty:
            before.append(sheet)
            continue
        keys = pd.MultiIndex.from_frame(good[key_columns])
        suspect = good.duplicated(key_columns, keep=False).to_numpy()
        for other in before:
            suspect |= keys.isin(pd.MultiIndex.from_frame(other.good[key_columns]))
        first_seen: dict[tuple, tuple[int, pd.DataFrame]] = {}
        for other in before:
            for row_number, key in zip(other.good.index, other.good[key_columns].itertuples(index=False, name=None),
                                       strict=True):  # fmt: skip
                first_seen.setdefault(key, (row_number, other.good))
        value_columns = [c for c in good.columns if c not in key_columns]
        drop = []
        for row_number, key in zip(good.index[suspect], keys[suspect], strict=True):
            first = first_seen.setdefault(key, (row_number, good))
            if first[0] == row_number and first[1] is good:
                continue
            drop.append(row_number)
            first_row, first_frame = first
            shared = [c for c in value_columns if c in first_frame.columns]
            if _same(tuple(first_frame.loc[first_row, shared]), tuple(good.loc[row_number, shared])):
                sheet.duplicate_rows += 1
            else:
                shown = ", ".join(f"{c}={k}" for c, k in zip(key_columns, key, strict=True))
                sheet.reject(row_number, None, None, f"duplicate key ({shown}): row {first_row} has other values")
        sheet.good = good.drop(index=drop)
        before.append(sheet)


def _same(left: tuple, right: tuple) -> bool:
    return all((a == b) or (pd.isna(a) and pd.isna(b)) for a, b in zip(left, right, strict=True))


def _check_references(cursor: Cursor, prepared: list[PreparedSheet]) -> None:
    """Sales and stock must name a product this workbook or the warehouse knows."""
    in_workbook = set()
    for sheet in prepared:
        if sheet.target is PRODUCTS:
            in_workbook.update(sheet.good["product_id"])
    for sheet in prepared:
        if sheet.target not in (SALES, STOCK) or sheet.good.empty:
            continue
        wanted = set(sheet.good["product_id"]) - in_workbook
        if not wanted:
            continue
        cursor.execute("SELECT product_id FROM core.products WHERE product_id = ANY(%s)", (sorted(wanted),))
        known = in_workbook | {row[0] for row in cursor.fetchall()}
        unknown = ~sheet.good["product_id"].isin(known)
        for row_number, product_id in sheet.good.loc[unknown, "product_id"].items():
            sheet.reject(
                row_number, "product_id", product_id, "unknown product: not in the Products sheet or the warehouse"
            )
        sheet.good = sheet.good[~unknown]


# --- writing ---------------------------------------------------------------------------------


def _merge(cursor: Cursor, sheet: PreparedSheet, import_id: int, timezone: str) -> MergeCounts:
    frame = sheet.good.copy()
    if frame.empty:
        return MergeCounts(0, 0, 0)
    frame["source"] = SOURCE
    target = sheet.target
    if target is SALES:
        return _merge_sales(cursor, frame, import_id, timezone)
    if target is STOCK:
        _add_missing_stores(cursor, frame["store_id"])
        return merge_frame(cursor, target.table, frame, target.key, update_only_if=API_OWNS_IT_NOT)
    return merge_frame(cursor, target.table, frame, target.key)


def _merge_sales(cursor: Cursor, frame: pd.DataFrame, import_id: int, timezone: str) -> MergeCounts:
    """Sales carry the store's local wall time; the merge turns it into an instant and a business day.

    A line without a time of day keeps that day as its reporting day in any zone (time_given false).
    """
    _add_missing_stores(cursor, frame["store_id"])
    if "discount" not in frame:  # a sheet without discounts gives none (the line total below reads it)
        frame["discount"] = SALES.column_by_name["discount"].default
    if "customer_id" in frame:
        customers = frame["customer_id"].dropna().unique()
        if len(customers):
            cursor.execute(
                "INSERT INTO core.customers (customer_id, source) SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
                (list(customers), SOURCE),
            )
    frame["import_id"] = import_id
    frame["time_given"] = gives_time_of_day(frame["sold_at"])
    frame = frame.rename(columns={"sold_at": "sold_local"})
    stage_frame(cursor, frame, "core.sales", "stage_sales", extra_columns={"sold_local": "timestamp"})
    columns = [c for c in frame.columns if c != "sold_local"]
    zone = sql.SQL("coalesce(st.timezone, %(timezone)s)")
    # The sender's line total when given, kept as sent (3 or 4 decimals too: the warehouse then adds up
    # to the sender's own totals), else computed in numeric arithmetic: PostgreSQL rounds half a cent
    # up, as Excel's ROUND and the till do.
    revenue = sql.SQL("round(s.quantity * s.unit_price * (1 - s.discount), 2)")
    if "revenue" in columns:
        columns.remove("revenue")
        revenue = sql.SQL("coalesce(s.revenue, {})").format(revenue)
    select = sql.SQL(
        "SELECT {columns}, s.sold_local AT TIME ZONE {zone}, s.sold_local::date, {revenue}"
        " FROM stage_sales s LEFT JOIN core.stores st USING (store_id)"
    ).format(
        columns=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns),
        zone=zone,
        revenue=revenue,
    )
    return merge_staged(
        cursor, "core.sales", len(frame), select, [*columns, "sold_at", "sale_date", "revenue"], SALES.key,
        params={"timezone": timezone}, bookkeeping=("import_id",), span="sold_at",
        update_only_if=API_OWNS_IT_NOT,
    )  # fmt: skip


def _add_missing_stores(cursor: Cursor, store_ids: pd.Series) -> None:
    """A store first seen in sales or stock gets a row of its own; its details can follow later."""
    cursor.execute(
        "INSERT INTO core.stores (store_id, source) SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
        (list(store_ids.dropna().unique()), SOURCE),
    )


def _land_raw_rows(cursor: Cursor, import_id: int, prepared: list[PreparedSheet]) -> None:
    """Keep every row as the sender wrote it (header -> cell, as JSON), good and bad, with its import.

    A source sheet read by several targets lands once: each row any of them read (a row no entry's
    ``where`` keeps is not read). The rows go to COPY in its text format: JSON's escapes are
    backslashes, which that format reads as escapes too, so they are doubled.
    """
    chunks = []
    by_source: dict[str, list[pd.DataFrame]] = {}
    for sheet in prepared:
        by_source.setdefault(sheet.source_name, []).append(sheet.sender)
    for source_name, senders in by_source.items():
        sender = pd.concat(senders) if len(senders) > 1 else senders[0]
        sender = sender[~sender.index.duplicated()].sort_index()
        if sender.empty:
            continue
        documents = sender.to_json(orient="records", lines=True, date_format="iso", default_handler=str)
        documents = documents.replace("\\", "\\\\")  # one pass over the whole text, not per row
        prefix = f"{import_id}\t{escape_copy_text(source_name)}\t"
        rows = zip(sender.index, documents.rstrip("\n").split("\n"), strict=True)
        chunks.append("\n".join(f"{prefix}{row_number}\t{document}" for row_number, document in rows))
    if chunks:
        buffer = io.StringIO("\n".join(chunks) + "\n")
        cursor.copy_expert("COPY raw.excel_rows (import_id, sheet, row_number, row) FROM STDIN", buffer)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def _store_rejects(cursor: Cursor, import_id: int, file_name: str, prepared: list[PreparedSheet]) -> None:
    rejects = [r for s in prepared for r in s.rejects]
    if not rejects:
        return
    frame = pd.DataFrame({
        "import_id": import_id, "file_name": file_name, "sheet": [r.sheet for r in rejects],
        "row_number": [r.row for r in rejects], "column_name": [r.column for r in rejects],
        "value": [cell_text(r.value) for r in rejects],
        "reason": [r.reason for r in rejects],
    })  # fmt: skip
    stage_frame(cursor, frame, "ops.import_rejects", "stage_rejects")
    cursor.execute("INSERT INTO ops.import_rejects SELECT * FROM stage_rejects")


def _write_feedback(archive: Path, path: Path, prepared: list[PreparedSheet]) -> Path | None:
    rejects = [r for s in prepared for r in s.rejects]
    if not rejects:
        return None
    # Several targets may read the same source sheet (a mapping's Orders): one feedback sheet each.
    rejected_rows: dict[str, set[int]] = {}
    for sheet in prepared:
        rejected_rows.setdefault(sheet.source_name, set()).update(sheet.rejected_rows)
    by_source = {s.source_name: s for s in prepared}
    sheets = {}
    for name, rows in rejected_rows.items():
        if rows:
            cells = by_source[name].sender.loc[sorted(rows)]
            sheets[name] = SheetRows(
                by_source[name].sender_header, dict(zip(cells.index, cells.values.tolist(), strict=True))
            )
    archive.mkdir(parents=True, exist_ok=True)
    feedback = archive / fitting_name(path.stem, ".feedback.xlsx")
    return write_feedback_workbook(feedback, path.name, sheets, sorted(rejects, key=lambda r: (r.sheet, r.row)))


def _start_ledger_entry(
    cursor: Cursor, file_name: str, digest: str, mapping: Mapping, run_id: str | None, started_at: dt.datetime
) -> int:
    cursor.execute(
        "INSERT INTO ops.import_ledger (content_hash, file_name, status, mapping, run_id, started_at)"
        " VALUES (%s, %s, 'loaded', %s, %s, %s) RETURNING import_id",
        (digest, file_name, mapping.name, run_id, started_at),
    )
    return cursor.fetchone()[0]


def _finish_ledger_entry(
    cursor: Cursor,
    import_id: int,
    status: str,
    reason: str | None,
    results: Iterable[SheetResult],
    archived: Path,
    feedback: Path | None,
    sales_changed: tuple[object, object],
) -> None:
    results = list(results)
    cursor.execute(
        "UPDATE ops.import_ledger SET status = %s, reason = %s, rows_read = %s, rows_loaded = %s, rows_rejected = %s,"
        " rows_duplicate = %s, sheets = %s, archived_path = %s, feedback_path = %s,"
        " sales_changed_from = %s, sales_changed_to = %s, finished_at = now()"
        " WHERE import_id = %s",
        (
            status,
            reason,
            sum(r.rows_read for r in results),
            sum(r.rows_loaded for r in results),
            sum(r.rows_rejected for r in results),
            sum(r.rows_duplicate for r in results),
            json.dumps([r.__dict__ for r in results]),
            str(archived),
            str(feedback) if feedback else None,
            *sales_changed,
            import_id,
        ),
    )


def _record_outcome(
    cursor: Cursor,
    settings: ImportSettings,
    path: Path,
    digest: str,
    status: str,
    reason: str,
    mapping: Mapping,
    run_id: str | None,
    started_at: dt.datetime,
) -> ImportResult:
    """Record a workbook that loads nothing (a duplicate, or unreadable) and put the file away.

    The file moves inside the transaction: if the move fails, no ledger row claims it was kept.
    """
    folder = (settings.archive_dir if status == "duplicate" else settings.rejected_dir) / digest[:16]
    cursor.execute(
        "INSERT INTO ops.import_ledger (content_hash, file_name, status, reason, mapping, archived_path, run_id,"
        " started_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING import_id",
        (digest, path.name, status, reason, mapping.name, str(folder / path.name), run_id, started_at),
    )
    import_id = cursor.fetchone()[0]
    kept = _keep(path, folder)
    return ImportResult(import_id, path.name, digest, status, reason, mapping.name, (), str(kept))


def earlier_imports(cursor: Cursor, digests: list[str]) -> dict[str, tuple[int, str]]:
    """Content hash -> (import id, file name) of the first import that loaded those bytes."""
    if not digests:
        return {}
    cursor.execute(
        "SELECT DISTINCT ON (content_hash) content_hash, import_id, file_name FROM ops.import_ledger"
        " WHERE content_hash = ANY(%s) AND status IN ('loaded', 'loaded_with_rejects')"
        " ORDER BY content_hash, import_id",
        (digests,),
    )
    return {digest: (import_id, file_name) for digest, import_id, file_name in cursor.fetchall()}


# --- the files: where they may come from, where they go ------------------------------------------


class OutsideTheInbox(Exception):
    """A path the importer must not move: a link, or a file whose real place is outside its folders."""


def refuse_outside_folders(path: Path, settings: ImportSettings) -> None:
    """Raise OutsideTheInbox unless `path` is a real file inside the inbox, archive or rejected folder.

    A link (or a file reached through a linked folder) would make the importer move or archive
    something that is not the pipeline's: the target outside, or only the link and not the bytes.
    """
    if path.is_symlink():
        raise OutsideTheInbox(f"{path} is a symbolic link: the inbox takes files, not links")
    if settings.inbox_dir is None:
        return
    real = path.resolve()
    folders = [settings.inbox_dir, settings.archive_dir, settings.rejected_dir]
    if not any(real.is_relative_to(folder.resolve()) for folder in folders):
        raise OutsideTheInbox(f"{path} is {real}, outside {settings.inbox_dir} (a linked folder?)")


def fitting_name(stem: str, suffix: str, max_bytes: int = NAME_MAX_BYTES) -> str:
    """`stem + suffix`, the stem cut (at a character) so that the name fits the file system's limit."""
    room = max_bytes - len(suffix.encode())
    return stem.encode()[:room].decode(errors="ignore") + suffix


def claim_name(folder: Path, name: str, create: Callable[[Path], None]) -> Path:
    """Create an entry in `folder` under `name`, else `stem (2).suffix`, `stem (3).suffix`...: the first
    free one. `create(destination)` must raise FileExistsError when the name is taken, so nothing is replaced."""
    suffix = Path(name).suffix
    stem = name.removesuffix(suffix) if suffix else name
    for number in itertools.count(1):
        destination = folder / (name if number == 1 else fitting_name(stem, f" ({number}){suffix}"))
        try:
            create(destination)
            return destination
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def refuse_link(cursor: Cursor, link: Path, rejected_dir: Path) -> Path:
    """Record a link found in the inbox as rejected and move the link (never its target) to rejected/links/.

    Its content hash is that of the link's target path: the bytes behind it are not the pipeline's to read.
    """
    target = link.parent / os.readlink(link)
    folder = rejected_dir / "links"
    folder.mkdir(parents=True, exist_ok=True)
    kept = claim_name(folder, link.name, lambda destination: os.symlink(target, destination))
    reason = (
        f"a symbolic link to {target}: the inbox takes files, not links, and nothing at the target was read or "
        "moved; copy the file itself into the inbox"
    )
    cursor.execute(
        "INSERT INTO ops.import_ledger (content_hash, file_name, status, reason, archived_path, started_at)"
        " VALUES (%s, %s, 'rejected', %s, %s, now())",
        (hashlib.sha256(str(target).encode()).hexdigest(), link.name, reason, str(kept)),
    )
    link.unlink()  # the link only: unlink never follows it
    return kept


def _keep(path: Path, folder: Path) -> Path:
    """Move `path` into `folder` without ever overwriting: the folder is named by the content hash,
    so a file already there under the same name has the same bytes and the new copy adds nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / path.name
    if destination.exists() and destination.resolve() == path.resolve():
        return destination  # a re-run of a file kept here already
    if not path.exists() and destination.exists():
        return destination  # an import of this very file, running at the same time, put it away
    try:
        move_exclusively(path, destination)
    except FileExistsError:
        path.unlink()
    return destination


def move_exclusively(path: Path, destination: Path) -> None:
    """Move a file to a name that must not exist yet (FileExistsError if it does), never replacing one."""
    try:
        os.link(path, destination)  # atomic, and fails rather than replace
    except FileExistsError:
        raise
    except OSError:  # another file system, or one without hard links: copy into a new file
        with path.open("rb") as source, destination.open("xb") as target:
            try:
                shutil.copyfileobj(source, target)
            except BaseException:
                destination.unlink()  # half a copy must not pass for the kept original
                raise
        shutil.copystat(path, destination)
    path.unlink()
