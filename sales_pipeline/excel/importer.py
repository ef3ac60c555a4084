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
import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.excel.csv_read import is_csv, read_csv_sheets
from sales_pipeline.excel.feedback import RejectedCell, SheetRows, write_feedback_workbook
from sales_pipeline.excel.layout import CALENDAR, PROMOTIONS, SALES, SHEETS, STOCK, Sheet, normalise_header
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
    EXCEL_ERRORS,
    CellMarks,
    RawSheet,
    UnreadableWorkbook,
    cell_marks,
    content_hash,
    read_workbook,
    uses_1904_dates,
)
from sales_pipeline.excel.template import README_SHEET
from sales_pipeline.records import ImportResult, SheetResult
from sales_pipeline.warehouse.db import Transaction, read_frame
from sales_pipeline.warehouse.merge import (
    COPY_READ,
    COPY_ROWS,
    MergeCounts,
    TextStream,
    escape_copy_text,
    merge_frame,
    merge_staged,
    stage_frame,
)
from sales_pipeline.warehouse.quality import offending_rows

log = logging.getLogger(__name__)

SOURCE = "excel"
# Sales and stock counts from the back office's API are the system of record: a workbook's copy of
# the same line or count never overwrites them.
API_OWNS_IT_NOT = sql.SQL("t.source <> 'api'")
HEADER_SEARCH_ROWS = 20  # headers may sit below a title block, but not further down than this
LINE_TOTAL_TOLERANCE = 0.015  # a cent of rounding either way, and float noise
# Advisory locks of imports, one per content hash (the two-key space, apart from the refreshes' locks).
IMPORT_LOCK_CLASS = 74_210
# The template's and the feedback workbook's own sheets of instructions: never "ignored" sheets.
_INSTRUCTIONS = (README_SHEET, "Feedback")
NAME_MAX_BYTES = 255  # a file name's limit on ext4, APFS, NTFS: names derived from a sender's must fit


@dataclass(frozen=True)
class ImportSettings:
    archive_dir: Path
    rejected_dir: Path
    timezone: str  # for sales of stores whose time zone is unknown: the pipeline's
    dayfirst: bool = True
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
    summary_rows: int = 0  # totals and subtotals, skipped
    example_rows: int = 0  # the template's example rows, skipped
    dated: pd.Series | None = None  # with repeated_keys "last": each row's date, to find a key's latest row
    ignored_columns: tuple[str, ...] = ()
    counts: MergeCounts = field(default_factory=lambda: MergeCounts(0, 0, 0))
    said: set[tuple] = field(default_factory=set)  # (row, header, reason) of each reject, said once

    @property
    def target(self) -> Sheet:
        return self.mapping.target

    def reject(self, row: int, column: str | None, value: object, reason: str) -> None:
        header = self.headers.get(column, column) if column else None
        # A mapping may read one sender column twice (Sales as unit price and as revenue): one bad cell, one reject.
        if (row, header, reason) not in self.said:
            self.said.add((row, header, reason))
            self.rejects.append(RejectedCell(self.source_name, row, header, value, reason))
        self.rejected_rows.add(row)

    def result(self) -> SheetResult:
        return SheetResult(
            sheet=self.source_name,
            target=self.target.name,
            rows_read=len(self.raw) + self.summary_rows,
            rows_loaded=len(self.good),
            rows_rejected=len(self.rejected_rows),
            rows_duplicate=self.duplicate_rows,
            rows_summary=self.summary_rows,
            rows_example=self.example_rows,
            inserted=self.counts.inserted,
            updated=self.counts.updated,
            unchanged=self.counts.unchanged,
            ignored_columns=self.ignored_columns,
        )


def import_workbook(
    transaction: Transaction,
    path: Path,
    settings: ImportSettings,
    mapping: Mapping = TEMPLATE,
    run_id: str | None = None,
    reimport: bool = False,
) -> ImportResult:
    """Import one workbook end to end and return what happened to it (also in ops.import_ledger).

    The importer opens its transaction itself, with `transaction` (e.g. `WarehouseResource.transaction`):
    the decision "these bytes are not loaded yet", the load and the ledger row commit together, and the
    original moves only after that commit, so a failed commit leaves the file in the inbox.
    """
    started_at = dt.datetime.now(dt.UTC)
    refuse_outside_folders(path, settings)
    digest = content_hash(path)
    try:
        result = _import(transaction, path, digest, settings, mapping, run_id, reimport, started_at)
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        raise  # the warehouse went away: nothing was written, and the file stays in the inbox for a retry
    except Exception as error:
        # Anything else would fail again on the same bytes: record it and put the file away, so that it is
        # neither retried forever nor forgotten; the run still fails, with the error.
        _record_failure(transaction, path, digest, settings, mapping, run_id, started_at, error)
        raise
    _keep(path, Path(result.archived_path).parent)  # after the commit (a duplicate or rejected file is there)
    return result


def _import(
    transaction: Transaction,
    path: Path,
    digest: str,
    settings: ImportSettings,
    mapping: Mapping,
    run_id: str | None,
    reimport: bool,
    started_at: dt.datetime,
) -> ImportResult:
    result = None
    try:
        with transaction() as cursor:
            # Imports of the same bytes take turns: the second sees the first's ledger row once it commits.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (IMPORT_LOCK_CLASS, digest))
            earlier = None if reimport else earlier_imports(cursor, [digest]).get(digest)
            if earlier is not None:
                reason = f"same content as import #{earlier[0]} ({earlier[1]}): nothing new to load"
                return _record_outcome(cursor, settings, path, digest, "duplicate", reason, mapping, run_id, started_at)
            try:
                workbook = read_source(path, mapping)
                options = mapping.parse_options(settings.dayfirst, uses_1904_dates(path))
                prepared, ignored = prepare_sheets(workbook, mapping, options, path)
            except UnreadableWorkbook as problem:
                return _record_outcome(cursor, settings, path, digest, "rejected", str(problem), mapping, run_id,
                                       started_at)  # fmt: skip
            del workbook  # the sheets' rows as read: what is still needed is in `prepared`
            result = _load(cursor, path, digest, prepared, ignored, settings, mapping, run_id, started_at)
    except BaseException:
        if result is not None and result.feedback_path:  # the commit failed: its feedback workbook goes too
            Path(result.feedback_path).unlink(missing_ok=True)
        raise
    return result


def _record_failure(
    transaction: Transaction,
    path: Path,
    digest: str,
    settings: ImportSettings,
    mapping: Mapping,
    run_id: str | None,
    started_at: dt.datetime,
    error: Exception,
) -> None:
    """The ledger row (status failed, the error) of an import that crashed, and the file moved to rejected/."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    reason = f"the import failed ({type(error).__name__}{': ' + detail if detail else ''}): this is a fault of the "
    reason += "pipeline, not of the file; it is kept in the rejected folder, to drop again once it is fixed"
    try:
        with transaction() as cursor:
            _record_outcome(cursor, settings, path, digest, "failed", reason, mapping, run_id, started_at)
    except Exception:  # the error the run reports is the first one
        log.exception("could not record the failed import of %s", path)


def _load(
    cursor: Cursor,
    path: Path,
    digest: str,
    prepared: list[PreparedSheet],
    ignored: dict[str, str],
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
        # Referenced tables first (the template's order), whatever order a mapping lists its sheets in.
        for sheet in sorted(prepared, key=lambda s: SHEETS.index(s.target)):
            sheet.counts = _merge(cursor, sheet, import_id, settings.timezone)
        _store_rejects(cursor, import_id, path.name, prepared)
        # Written once every reject is known, and before the commit: a failed import leaves none.
        feedback_path = _write_feedback(archive, path, prepared)
        results = tuple(s.result() for s in prepared)
        status, reason = _outcome(results)
        archived = archive / path.name
        changed = _sales_changed(prepared)
        _finish_ledger_entry(cursor, import_id, status, reason, results, archived, feedback_path, changed, ignored)
    except BaseException:
        if feedback_path:
            feedback_path.unlink(missing_ok=True)
        raise
    return ImportResult(
        import_id, path.name, digest, status, reason, mapping.name, results, str(archived),
        str(feedback_path) if feedback_path else None, ignored,
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
) -> tuple[list[PreparedSheet], dict[str, str]]:
    """Map, parse and validate every sheet the mapping names (and their copies, `Sales (2)`); raise
    UnreadableWorkbook on a structural problem. Also returns the sheets not read, with why."""
    prepared = []
    ignored: dict[str, str] = {}
    sources = _Sources(path)
    for sheet_mapping in mapping.sheets:
        for raw_sheet, copy in _find_sheets(workbook, sheet_mapping, mapping):
            try:
                prepared.append(_prepare(raw_sheet, sheet_mapping, options, sources))
            except UnreadableWorkbook as problem:
                if not copy:
                    raise
                ignored[raw_sheet.name] = f"not read as {sheet_mapping.target.name}: {problem}"
    if not prepared:
        expected = ", ".join(s.target.name for s in mapping.sheets)
        raise UnreadableWorkbook(
            f"no sheet matches the import template: expected one of {expected}; "
            f"the workbook has {', '.join(repr(n) for n in workbook) or 'no worksheets'}"
        )
    if not any(len(s.raw) > s.example_rows for s in prepared):
        names = ", ".join(repr(s.source_name) for s in prepared)
        if any(s.example_rows for s in prepared):
            raise UnreadableWorkbook(f"no data rows: {names} hold only the template's example rows")
        raise UnreadableWorkbook(f"no data rows: {names} hold a header row but nothing below it")
    _mark_duplicate_keys(prepared)
    read = {s.source_name for s in prepared}
    ignored = {name: why for name, why in ignored.items() if name not in read}  # a copy another entry read
    for name, raw_sheet in workbook.items():  # a CSV file is one sheet under its mapping's names: read if read
        if raw_sheet.name not in read and name not in read and name not in ignored and name not in _INSTRUCTIONS:
            ignored[name] = (
                f"not a sheet of the template ({', '.join(s.name for s in SHEETS)})"
                if mapping.is_template
                else f"not a sheet of the mapping '{mapping.name}'"
            )
    return prepared, ignored


def _find_sheets(
    workbook: dict[str, RawSheet], sheet_mapping: SheetMapping, mapping: Mapping
) -> list[tuple[RawSheet, bool]]:
    """The sheet a mapping entry names, then its copies (`Sales (2)`, `Sales 2`, `Sales - Lyon`), each with
    whether it is a copy: a copy without the sheet's headers is left out, not a reason to refuse the file."""
    wanted = sheet_mapping.source or sheet_mapping.target.name
    found = workbook.get(wanted) or next(
        (sheet for name, sheet in workbook.items() if normalise_header(name) == normalise_header(wanted)), None
    )
    if found is None and not mapping.is_template:
        raise UnreadableWorkbook(
            f"sheet '{wanted}' is missing (mapping '{mapping.name}'); the workbook has "
            f"{', '.join(repr(n) for n in workbook) or 'no worksheets'}"
        )
    prefix = normalise_header(wanted) + "_"
    copies = [sheet for name, sheet in workbook.items() if normalise_header(name).startswith(prefix)]
    return ([(found, False)] if found is not None else []) + [(sheet, True) for sheet in copies if sheet is not found]


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


@dataclass
class _Sources:
    """What is read once per source sheet, however many targets read it (a mapping's Orders feeds four)."""

    path: Path | None
    frames: dict[tuple[str, int], pd.DataFrame] = field(default_factory=dict)
    marks: dict[str, CellMarks] = field(default_factory=dict)

    def cell_marks(self, raw_sheet: RawSheet) -> CellMarks:
        if raw_sheet.marks is not None:  # found while reading
            return raw_sheet.marks
        if raw_sheet.name not in self.marks:
            self.marks[raw_sheet.name] = cell_marks(self.path, raw_sheet.name) if self.path else CellMarks()
        return self.marks[raw_sheet.name]

    def sender_frame(self, raw_sheet: RawSheet, header_index: int, header: list[str]) -> pd.DataFrame:
        """The sender's rows below the header, as read, indexed by Excel row number; a cell showing an
        error (#REF!...), which calamine reads as empty, holds the error's text."""
        key = (raw_sheet.name, header_index)
        if key not in self.frames:
            frame = raw_sheet.frame.iloc[header_index + 1 :].reindex(columns=range(len(header)))
            frame.columns = _unique([h or f"column {i + 1}" for i, h in enumerate(header)])
            for (row, column), text in self.cell_marks(raw_sheet).errors.items():
                position = column - raw_sheet.first_column_number
                if row in frame.index and 0 <= position < frame.shape[1]:
                    name = frame.columns[position]
                    frame[name] = frame[name].astype(object)  # a number column gets a text cell
                    frame.at[row, name] = text
            self.frames[key] = frame
        return self.frames[key]


def _prepare(
    raw_sheet: RawSheet,
    sheet_mapping: SheetMapping,
    options: ParseOptions,
    sources: _Sources,
) -> PreparedSheet:
    target = sheet_mapping.target
    expected = _expected_headers(sheet_mapping)
    top = raw_sheet.head(HEADER_SEARCH_ROWS)
    header_index = _header_row(top, expected)
    header_cells = top[header_index] if top else []
    sender_header = ["" if is_blank(h) else str(h).strip() for h in header_cells]
    source_position, position = _column_positions(sender_header, sheet_mapping)
    # Unknown headers in a template sheet may be typos worth reporting; a mapping names what it reads.
    ignored = (
        [h for h in sender_header if h and normalise_header(h) not in expected] if not sheet_mapping.source else []
    )
    missing = _missing_columns(sheet_mapping, source_position, position)
    if missing:
        found = ", ".join(repr(h) for h in sender_header if h) or "none"
        raise UnreadableWorkbook(
            f"sheet '{raw_sheet.name}': required column(s) missing: {', '.join(missing)} (headers found in row "
            f"{raw_sheet.frame.index[header_index] if top else 1}: {found})"
        )

    sender = sources.sender_frame(raw_sheet, header_index, sender_header)
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
    marks = sources.cell_marks(raw_sheet)
    summary = _summary_rows(raw, target, marks)
    prepared = PreparedSheet(sheet_mapping, raw_sheet.name, headers, sender_header, sender, raw[~summary])
    prepared.summary_rows = int(summary.sum())
    prepared.ignored_columns = tuple(ignored)
    prepared.dated = _row_dates(sender, source_position, sheet_mapping.latest_by, options)
    columns = {name: raw_sheet.first_column_number + i for name, i in position.items()}
    _check_cells(prepared, options, marks, columns)
    return prepared


def _column_positions(sender_header: list[str], sheet_mapping: SheetMapping) -> tuple[dict[str, int], dict[str, int]]:
    """Where the sender's headers stand in the row (normalised header -> position), and where each
    column the target reads stands (canonical column -> position)."""
    source_position: dict[str, int] = {}
    for index, header in enumerate(sender_header):
        if header:
            source_position.setdefault(normalise_header(header), index)
    if sheet_mapping.source is None:
        aliases = header_aliases(sheet_mapping.target)
        position = {}
        for normalised, index in source_position.items():
            if normalised in aliases:
                position.setdefault(aliases[normalised], index)
    else:  # a mapping may feed several columns from one header (Region -> store id and name)
        position = {
            name: source_position[normalise_header(header)]
            for name, header in sheet_mapping.columns.items()
            if normalise_header(header) in source_position
        }
    return source_position, position


def _missing_columns(
    sheet_mapping: SheetMapping, source_position: dict[str, int], position: dict[str, int]
) -> list[str]:
    """The headers a sheet lacks: the template's required columns, or what the mapping reads, as named there."""
    target = sheet_mapping.target
    provided = set(position) | set(sheet_mapping.constants) | set(sheet_mapping.computed)
    missing_names = [
        c.name
        for c in target.columns
        if c.required and c.name not in provided and not (c.name == "line_number" and sheet_mapping.source)
    ]
    if not sheet_mapping.source:
        return [target.column_by_name[name].header for name in missing_names]
    missing = [sheet_mapping.columns.get(name, name) for name in missing_names]  # the mapping's source headers
    return missing + [h for h in _other_headers(sheet_mapping) if normalise_header(h) not in source_position]


def _check_cells(prepared: PreparedSheet, options: ParseOptions, marks: CellMarks, columns: dict[str, int]) -> None:
    """Parse and validate the sheet's cells into `prepared.good`, rejecting each bad cell with its reason.

    `columns`: the Excel column number of each canonical column read from a header.
    """
    raw, target = prepared.raw, prepared.target
    typed, problems = parse_sheet(raw, target, options)
    for name in target.key:  # a key column the sheet leaves out is blank in every row (a calendar's weekday)
        if name not in typed.columns and name != "line_number":
            typed[name] = None
    shown_errors = {
        (row, name): text for name in columns for row, text in raw[name][raw[name].isin(EXCEL_ERRORS)].items()
    }
    for problem in problems:
        if (problem.row_number, problem.column) in shown_errors:
            continue  # said below, with the error the cell shows
        if problem.reason == REQUIRED and (problem.row_number, columns.get(problem.column)) in marks.uncalculated:
            problem = CellProblem(problem.row_number, problem.column, problem.value, UNCALCULATED_FORMULA)
        prepared.reject(problem.row_number, problem.column, problem.value, problem.reason)
    for (row, name), text in shown_errors.items():
        prepared.reject(row, name, text, f"the cell shows {text}: fix the formula or type the value")
    examples = _example_rows(typed, target, options) if prepared.mapping.source is None else None
    if target.whole_rows:  # an order line or a stock count is sent whole: a column left out is its default
        for column in target.columns:
            if column.default is not None and column.name not in typed:
                typed[column.name] = column.default
    if target is SALES and "revenue" in typed.columns:
        _check_line_totals(prepared, typed)
    if target is CALENDAR:
        _check_calendar_days(prepared, typed)
    if target is PROMOTIONS:
        _check_promotion_dates(prepared, typed)
    if target is SALES and "line_number" not in typed.columns:
        # No line column: lines are numbered within each order in sheet order.
        typed.insert(1, "line_number", typed.groupby("order_id", dropna=False).cumcount().add(1).astype("Int64"))
    if examples is not None:
        examples &= ~typed.index.isin(list(prepared.rejected_rows))
        prepared.example_rows = int(examples.sum())
        typed = typed[~examples]
    prepared.good = typed.drop(index=list(prepared.rejected_rows))


# A label Excel's Data > Subtotal, or a person, writes on a row of totals: Total, Grand Total, Sous-total...
_TOTAL_LABEL = re.compile(
    r"(?:^|\s)(?:grand\s+|sub-?|sous-)?tota(?:l|ux)(?:s|\s+g[ée]n[ée]ral)?(?:\s|:|$)", re.IGNORECASE
)


def _summary_rows(raw: pd.DataFrame, target: Sheet, marks: CellMarks) -> pd.Series:
    """Rows of totals rather than of data: a SUBTOTAL (or column SUM) formula, or a key left blank on a row
    that says Total somewhere (`S01 Total`, `Grand Total`, `TOTAL:`)."""
    summary = pd.Series(raw.index.isin(list(marks.summary_rows)), index=raw.index)
    keys = [name for name in target.key if name in raw.columns]
    if not keys or raw.empty:
        return summary
    incomplete = raw[pd.concat([blank_mask(raw[name]) for name in keys], axis=1).any(axis=1)]
    if incomplete.empty:  # the usual case: every row has its key
        return summary
    labelled = incomplete.apply(lambda cells: cells.map(lambda v: isinstance(v, str) and bool(_TOTAL_LABEL.search(v))))
    return summary | raw.index.isin(incomplete.index[labelled.any(axis=1)])


def _example_rows(typed: pd.DataFrame, target: Sheet, options: ParseOptions) -> pd.Series:
    """Rows identical to the template's example row (left in place under its header), in the sheet's columns."""
    same = pd.Series(not typed.empty, index=typed.index)
    for name in typed.columns:
        column = target.column_by_name[name]
        example, _ = parse_column(pd.Series([column.example], dtype=object), column, options)
        value = example.iloc[0]
        if pd.isna(value):  # a column the example leaves blank (a calendar's weekday, a promotion's category)
            same &= typed[name].isna()
        else:
            same &= typed[name].eq(value).fillna(False).astype(bool)
    return same


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
    """The row (of the first few) that carries the most expected headers; 0 if none does."""
    best, best_hits = 0, 0
    for index, row in enumerate(rows):
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
    """Within a workbook, a key appears once: exact repeats load once (the others counted as duplicates);
    a key whose rows differ loads from none of them, each rejected naming the others, since nothing tells
    which one is right.

    Several sheets (or a mapping feeding one target from several sheets) share a target's key space,
    so sheets of the same target are checked together, in order. Only rows whose key repeats take
    the slow path.
    """
    by_target: dict[str, list[PreparedSheet]] = {}
    for sheet in prepared:
        if sheet.mapping.repeated_keys == "last" and not sheet.good.empty:
            repeated = _superseded(sheet.good, list(sheet.target.key), sheet.dated)
            sheet.duplicate_rows += int(repeated.sum())
            sheet.good = sheet.good[~repeated]
        by_target.setdefault(sheet.target.name, []).append(sheet)
    for sheets in by_target.values():
        _settle_repeated_keys(sheets)


def _settle_repeated_keys(sheets: list[PreparedSheet]) -> None:
    key_columns = list(sheets[0].target.key)
    rows_of_key: dict[tuple, list[tuple[PreparedSheet, int]]] = {}  # in sheet order, then row order
    for sheet in sheets:
        if sheet.good.empty:
            continue
        keys = pd.MultiIndex.from_frame(sheet.good[key_columns])
        suspect = sheet.good.duplicated(key_columns, keep=False).to_numpy(copy=True)
        for other in sheets:
            if other is not sheet and not other.good.empty:
                suspect |= keys.isin(pd.MultiIndex.from_frame(other.good[key_columns]))
        for row_number, key in zip(sheet.good.index[suspect], keys[suspect], strict=True):
            rows_of_key.setdefault(key, []).append((sheet, row_number))
    drop: dict[int, list[int]] = {id(sheet): [] for sheet in sheets}
    for key, rows in rows_of_key.items():
        (first_sheet, first_row), *repeats = rows
        if all(_same_row(first_sheet, first_row, sheet, row) for sheet, row in repeats):
            for sheet, row in repeats:
                drop[id(sheet)].append(row)
                sheet.duplicate_rows += 1
            continue
        shown = ", ".join(f"{first_sheet.headers.get(c, c)} {k}" for c, k in zip(key_columns, key, strict=True))
        for sheet, row in rows:
            others = ", ".join(_where(o, number, sheet) for o, number in rows if (o, number) != (sheet, row))
            drop[id(sheet)].append(row)
            sheet.reject(row, None, None, f"the key ({shown}) is also in {others} with other values: keep one row")
    for sheet in sheets:
        sheet.good = sheet.good.drop(index=drop[id(sheet)])


def _where(sheet: PreparedSheet, row: int, seen_from: PreparedSheet) -> str:
    return f"row {row}" if sheet.source_name == seen_from.source_name else f"row {row} of '{sheet.source_name}'"


def _same_row(sheet: PreparedSheet, row: int, other: PreparedSheet, other_row: int) -> bool:
    shared = [c for c in sheet.good.columns if c in other.good.columns]
    left, right = sheet.good.loc[row, shared], other.good.loc[other_row, shared]
    return all((a == b) or (pd.isna(a) and pd.isna(b)) for a, b in zip(left, right, strict=True))


# --- writing ---------------------------------------------------------------------------------


def _merge(cursor: Cursor, sheet: PreparedSheet, import_id: int, timezone: str) -> MergeCounts:
    if sheet.good.empty:
        return MergeCounts(0, 0, 0)
    target = sheet.target
    if target is SALES:
        return _merge_sales(cursor, sheet, import_id, timezone)
    if target is STOCK:
        columns = list(sheet.good.columns)
        stage_frame(cursor, sheet.good, target.table, "stage_stock", index_as="row_number")
        candidates = sql.SQL("SELECT s.row_number, {}, {} AS source FROM stage_stock s").format(
            sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns), sql.Literal(SOURCE)
        )
        staged = _enforce_rules(cursor, sheet, candidates, "stage_stock", {})
        _add_missing(cursor, "core.stores", "store_id", "stage_stock")
        return merge_staged(cursor, target.table, staged, _without_row_numbers(candidates, [*columns, "source"]),
                            [*columns, "source"], target.key, update_only_if=API_OWNS_IT_NOT)  # fmt: skip
    return merge_frame(cursor, target.table, sheet.good.assign(source=SOURCE), target.key)


def _merge_sales(cursor: Cursor, sheet: PreparedSheet, import_id: int, timezone: str) -> MergeCounts:
    """Sales carry the store's local wall time; the merge turns it into an instant and a business day.

    A line without a time of day keeps that day as its reporting day in any zone (time_given false).
    """
    frame = sheet.good.assign(import_id=import_id, time_given=gives_time_of_day(sheet.good["sold_at"]))
    frame = frame.rename(columns={"sold_at": "sold_local"})
    stage_frame(cursor, frame, "core.sales", "stage_sales", extra_columns={"sold_local": "timestamp"},
                index_as="row_number")  # fmt: skip
    columns = [c for c in frame.columns if c not in ("sold_local", "revenue")]
    # The sender's line total when given, kept as sent (3 or 4 decimals too: the warehouse then adds up
    # to the sender's own totals), else computed in numeric arithmetic: PostgreSQL rounds half a cent
    # up, as Excel's ROUND and the till do.
    revenue = sql.SQL("round(s.quantity * s.unit_price * (1 - s.discount), 2)")
    if "revenue" in frame.columns:
        revenue = sql.SQL("coalesce(s.revenue, {})").format(revenue)
    candidates = sql.SQL(
        "SELECT s.row_number, {columns}, {source} AS source, s.sold_local AT TIME ZONE {zone} AS sold_at,"
        " s.sold_local::date AS sale_date, {revenue} AS revenue"
        " FROM stage_sales s LEFT JOIN core.stores st USING (store_id)"
    ).format(
        columns=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns),
        source=sql.Literal(SOURCE),
        zone=sql.SQL("coalesce(st.timezone, %(timezone)s)"),
        revenue=revenue,
    )
    params = {"timezone": timezone}
    staged = _enforce_rules(cursor, sheet, candidates, "stage_sales", params)
    _add_missing(cursor, "core.stores", "store_id", "stage_sales")
    if "customer_id" in columns:
        _add_missing(cursor, "core.customers", "customer_id", "stage_sales")
    merged = [*columns, "source", "sold_at", "sale_date", "revenue"]
    return merge_staged(
        cursor, "core.sales", staged, _without_row_numbers(candidates, merged), merged, SALES.key,
        params=params, bookkeeping=("import_id",), span="sold_at", update_only_if=API_OWNS_IT_NOT,
    )  # fmt: skip


def _enforce_rules(cursor: Cursor, sheet: PreparedSheet, candidates: sql.Composable, staging: str, params: dict) -> int:
    """Reject the staged rows that break a rule of the warehouse's checks (quality.py), with the rule's reason,
    so that what the checks would call wrong never loads; returns the number of rows left to merge."""
    broken = offending_rows(cursor, candidates, sheet.target.table, params)
    for row_number, rule in broken:
        value = sheet.raw.at[row_number, rule.column] if rule.column in sheet.raw.columns else None
        sheet.reject(row_number, rule.column, value, rule.reason)
    if broken:
        rows = sorted({row_number for row_number, _ in broken})
        cursor.execute(sql.SQL("DELETE FROM {} WHERE row_number = ANY(%s)").format(sql.Identifier(staging)), (rows,))
        sheet.good = sheet.good.drop(index=rows)
    return len(sheet.good)


def _without_row_numbers(candidates: sql.Composable, columns: list[str]) -> sql.Composable:
    return sql.SQL("SELECT {} FROM ({}) c").format(sql.SQL(", ").join(map(sql.Identifier, columns)), candidates)


def _add_missing(cursor: Cursor, table: str, key: str, staging: str) -> None:
    """A store or customer first seen in sales or stock gets a row of its own; its details can follow later."""
    cursor.execute(
        sql.SQL(
            "INSERT INTO {table} ({key}, source) SELECT DISTINCT {key}, %s FROM {staging} WHERE {key} IS NOT NULL"
            " ON CONFLICT DO NOTHING"
        ).format(
            table=sql.SQL(".").join(map(sql.Identifier, table.split("."))),
            key=sql.Identifier(key),
            staging=sql.Identifier(staging),
        ),
        (SOURCE,),
    )


def _land_raw_rows(cursor: Cursor, import_id: int, prepared: list[PreparedSheet]) -> None:
    """Keep every row as the sender wrote it (header -> cell, as JSON), good and bad, with its import.

    A source sheet read by several targets lands once: each row any of them read (a row no entry's
    ``where`` keeps is not read). The rows go to COPY in its text format, a slice of rows at a time:
    JSON's escapes are backslashes, which that format reads as escapes too, so they are doubled.
    """
    by_source: dict[str, list[pd.DataFrame]] = {}
    for sheet in prepared:
        if not sheet.sender.empty:
            by_source.setdefault(sheet.source_name, []).append(sheet.sender)
    senders = {name: frames[0] if len(frames) == 1 else _rows_read(frames) for name, frames in by_source.items()}

    def slices() -> Iterator[str]:
        for name, sender in senders.items():
            prefix = f"{import_id}\t{escape_copy_text(name)}\t"
            for start in range(0, len(sender), COPY_ROWS):
                part = sender.iloc[start : start + COPY_ROWS]
                documents = part.to_json(orient="records", lines=True, date_format="iso", default_handler=str)
                documents = documents.replace("\\", "\\\\")  # one pass over the slice, not per row
                rows = zip(part.index, documents.rstrip("\n").split("\n"), strict=True)
                yield "".join(f"{prefix}{row_number}\t{document}\n" for row_number, document in rows)

    if senders:
        cursor.copy_expert("COPY raw.excel_rows (import_id, sheet, row_number, row) FROM STDIN", TextStream(slices()),
                           size=COPY_READ)  # fmt: skip


def _rows_read(senders: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of one source sheet read by any of its targets, once each, in sheet order."""
    rows = pd.concat(senders)
    return rows[~rows.index.duplicated()].sort_index()


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
    sheets = {}
    for name, rows in rejected_rows.items():
        if rows:
            # Each target's sender holds only the rows it read (its `where`): the rejected rows are in their union.
            readers = [s for s in prepared if s.source_name == name]
            cells = _rows_read([s.sender for s in readers]).loc[sorted(rows)]
            sheets[name] = SheetRows(
                readers[0].sender_header, dict(zip(cells.index, cells.values.tolist(), strict=True))
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
    ignored: dict[str, str],
) -> None:
    results = list(results)
    cursor.execute(
        "UPDATE ops.import_ledger SET status = %s, reason = %s, rows_read = %s, rows_loaded = %s, rows_rejected = %s,"
        " rows_duplicate = %s, sheets = %s, archived_path = %s, feedback_path = %s,"
        " sales_changed_from = %s, sales_changed_to = %s, ignored_sheets = %s, finished_at = now()"
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
            json.dumps(ignored),
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


def rejects_of_first_load(cursor: Cursor, digest: str) -> tuple[int, str | None] | None:
    """(rows rejected, feedback workbook) of the import that loaded these bytes first; None if none did.

    What a re-drop of the same bytes reports, so that the duplicate does not hide the original's rejects.
    """
    earlier = earlier_imports(cursor, [digest])
    if digest not in earlier:
        return None
    cursor.execute("SELECT rows_rejected, feedback_path FROM ops.import_ledger WHERE import_id = %s",
                   (earlier[digest][0],))  # fmt: skip
    return cursor.fetchone()


def first_rejects(cursor: Cursor, import_id: int, limit: int = 20) -> pd.DataFrame:
    """The first rejected cells of an import (sheet, row, column, value, reason), by sheet and row."""
    return read_frame(
        cursor,
        "SELECT sheet, row_number AS row, column_name AS column, value, reason FROM ops.import_rejects"
        " WHERE import_id = %s ORDER BY sheet, row_number LIMIT %s",
        (import_id, limit),
    )


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
