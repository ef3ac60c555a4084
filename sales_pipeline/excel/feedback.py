"""The feedback workbook: the rows of a dropped workbook that did not load, ready to fix and drop again.

Each rejected sheet keeps the sender's sheet name and header row, so that the fixed workbook imports with
the same layout and mapping as the original. Two columns are added at the end, Problems and Source Row;
they are only there to help the sender.

Written with xlsxwriter rather than openpyxl: without lxml, openpyxl's write-only mode is about twice as
slow for large feedback (100k rejected rows of 10 columns). Every value goes through a typed write_* call,
so a string such as "=1+1" is always written as text, never as a formula; a string Excel would read as a
formula once the sender edits its cell (starting with =, +, -, @, a tab or a carriage return) also gets
Excel's quote prefix, which keeps it text.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import xlsxwriter
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from sales_pipeline.excel.layout import normalise_header
from sales_pipeline.excel.template import AUTHOR, OPTIONAL_COLOUR, README_SHEET

PROBLEMS_HEADER = "Problems"
SOURCE_ROW_HEADER = "Source Row"
BAD_CELL_COLOUR = "FFC7CE"  # light red
BAD_ROW_COLOUR = "FFF2CC"  # light yellow, lighter than a bad cell
_SHOWN_VALUE_LENGTH = 40
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes Excel take typed text for a formula

FormatFor = Callable[..., Format | None]


@dataclass(frozen=True)
class RejectedCell:
    """One problem found in a dropped workbook."""

    sheet: str  # sheet name as in the sender's workbook
    row: int  # 1-based Excel row number in the sender's sheet
    column: str | None  # the sender's header text of the bad column; None for a whole-row problem
    value: object  # the raw value as read
    reason: str  # plain-English reason, e.g. "not a whole number" / "must be 1 or more"


@dataclass(frozen=True)
class SheetRows:
    """The rows of one sender's sheet, as read."""

    header: list[str]  # the sender's header row as read (original header texts)
    rows: dict[int, list[object]]  # excel row number -> the raw values of that row (same length as header)


def write_feedback_workbook(
    path: Path, source_name: str, sheets: dict[str, SheetRows], rejects: list[RejectedCell]
) -> Path:
    """Write the feedback workbook for `source_name` to `path` and return `path`.

    Every reject must name a sheet of `sheets` and a row of that sheet's `rows`: the row is written back
    whole, so a reject without its row is a caller error (ValueError). Sheets are written in the order
    of `sheets`, rows in their original order.
    """
    by_sheet: dict[str, dict[int, list[RejectedCell]]] = {}
    for reject in rejects:
        if reject.sheet not in sheets or reject.row not in sheets[reject.sheet].rows:
            raise ValueError(f"reject for {reject.sheet!r} row {reject.row} has no row in `sheets`")
        by_sheet.setdefault(reject.sheet, {}).setdefault(reject.row, []).append(reject)
    rejected_sheets = {name: by_sheet[name] for name in sheets if name in by_sheet}

    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path))
    format_for = _format_cache(wb)
    # Sheet names are unique regardless of case in Excel.
    taken = {name.lower() for name in rejected_sheets}
    readme_title = README_SHEET if README_SHEET.lower() not in taken else "Feedback"
    _write_readme(wb.add_worksheet(readme_title), format_for, source_name, rejected_sheets)
    for name, rejected in rejected_sheets.items():
        _write_rejected_sheet(wb.add_worksheet(name), format_for, sheets[name], rejected)
    wb.close()
    return path


def _format_cache(wb: xlsxwriter.Workbook) -> FormatFor:
    """One xlsxwriter Format per combination of properties, made on first use."""
    cache: dict[tuple, Format | None] = {}

    def format_for(
        num_format: str | None = None,
        fill: str | None = None,
        quote: bool = False,
        header: bool = False,
        title: bool = False,
    ) -> Format | None:
        key = (num_format, fill, quote, header, title)
        if key not in cache:
            properties: dict[str, object] = {}
            if num_format:
                properties["num_format"] = num_format
            if fill:
                properties["bg_color"] = f"#{fill}"
            if quote:
                # Keeps "=1+1" or "+33 6 12 34 56 78" text in Excel even after the cell is edited.
                properties["quote_prefix"] = True
            if header:
                properties.update(bold=True, font_color="#FFFFFF", bg_color=f"#{OPTIONAL_COLOUR}")
            if title:
                properties.update(bold=True, font_size=14)
            cache[key] = wb.add_format(properties) if properties else None
        return cache[key]

    return format_for


def _write_readme(
    ws: Worksheet,
    format_for: FormatFor,
    source_name: str,
    rejected_sheets: dict[str, dict[int, list[RejectedCell]]],
) -> None:
    ws.set_column(0, 0, 30)
    ws.set_column(1, 2, 16)
    ws.write_string(0, 0, _clean(f"Feedback for {source_name}"), format_for(title=True))
    ws.write_string(1, 0, "Some rows of this file could not be loaded. They are listed in this workbook.")
    ws.write_string(2, 0, "The rows that loaded are not repeated here: do not send them again.")
    for col, text in enumerate(("Sheet", "Rejected rows", "Problems")):
        ws.write_string(4, col, text, format_for(header=True))
    row = 5
    for name, rows in rejected_sheets.items():
        ws.write_string(row, 0, name)
        ws.write_number(row, 1, len(rows))
        ws.write_number(row, 2, sum(len(problems) for problems in rows.values()))
        row += 1
    ws.write_string(row + 1, 0, "What to do", format_for(title=True))
    lines = (
        "1. Fix the cells highlighted in red. Hover over a cell to read what is wrong with it; the "
        f"{PROBLEMS_HEADER} column lists every problem of the row.",
        "2. Rows highlighted in yellow have a problem with the whole row, such as a key that appears twice.",
        "3. Keep the sheet names and header texts as they are, and delete any row you do not want to send.",
        f"4. {PROBLEMS_HEADER} and {SOURCE_ROW_HEADER} (the row number in your original file) are only "
        "there to help you: they are not loaded.",
        "5. Save this workbook and drop it into the inbox again.",
    )
    for offset, line in enumerate(lines, start=row + 2):
        ws.write_string(offset, 0, line)


def _write_rejected_sheet(
    ws: Worksheet, format_for: FormatFor, sheet_rows: SheetRows, rejected: dict[int, list[RejectedCell]]
) -> None:
    # A re-dropped feedback workbook already has our two columns: drop them rather than stacking copies.
    kept = [i for i, text in enumerate(sheet_rows.header) if text not in (PROBLEMS_HEADER, SOURCE_ROW_HEADER)]
    header = [sheet_rows.header[i] for i in kept]
    # Rejects name the sender's header text; the normalised match only forgives stray spaces or case.
    exact: dict[str, int] = {}
    normalised: dict[str, int] = {}
    for index, text in enumerate(header):
        exact.setdefault(str(text), index)
        normalised.setdefault(normalise_header(text), index)
    problems_col, source_row_col = len(header), len(header) + 1

    for col, text in enumerate([*header, PROBLEMS_HEADER, SOURCE_ROW_HEADER]):
        width = 60 if col == problems_col else min(40, max(12, len(str(text)) + 4))
        ws.set_column(col, col, width)
        _write_value(ws, format_for, 0, col, "" if text is None else str(text), header=True)
    ws.freeze_panes(1, 0)
    ws.set_comments_author(AUTHOR)

    for out_row, row_number in enumerate(sorted(rejected), start=1):
        problems = rejected[row_number]
        raw = sheet_rows.rows[row_number]
        cell_reasons: dict[int, list[str]] = {}
        whole_row = False
        for problem in problems:
            index = None
            if problem.column is not None:
                index = exact.get(problem.column, normalised.get(normalise_header(problem.column)))
            if index is None:
                whole_row = True
            else:
                cell_reasons.setdefault(index, []).append(problem.reason)
        row_fill = BAD_ROW_COLOUR if whole_row else None
        for col, source_col in enumerate(kept):
            value = raw[source_col] if source_col < len(raw) else None
            reasons = cell_reasons.get(col)
            _write_value(ws, format_for, out_row, col, value, BAD_CELL_COLOUR if reasons else row_fill)
            if reasons:
                ws.write_comment(out_row, col, _clean("\n".join(reasons)))
        problems_text = "; ".join(_problem_text(problem) for problem in problems)
        _write_value(ws, format_for, out_row, problems_col, problems_text)
        ws.write_number(out_row, source_row_col, row_number)


def _write_value(
    ws: Worksheet,
    format_for: FormatFor,
    row: int,
    col: int,
    value: object,
    fill: str | None = None,
    header: bool = False,
) -> None:
    """Write a raw value back as the type it was read as, or as its text when Excel has no such type."""
    value = _writable(value)
    if value is None:
        if fill:  # a blank bad cell still needs its fill
            ws.write_blank(row, col, None, format_for(fill=fill, header=header))
    elif isinstance(value, str):
        quote = value.startswith(FORMULA_STARTS)
        ws.write_string(row, col, value, format_for(fill=fill, quote=quote, header=header))
    elif isinstance(value, bool):
        ws.write_boolean(row, col, value, format_for(fill=fill, header=header))
    elif isinstance(value, dt.date | dt.time):
        ws.write_datetime(row, col, value, format_for(_date_format(value), fill, header=header))
    else:
        ws.write_number(row, col, value, format_for(fill=fill, header=header))


def _writable(value: object) -> bool | int | float | str | dt.date | dt.time | None:
    """The value as Excel can hold it, as close to the raw value as possible."""
    if isinstance(value, str):
        return _clean(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real | Decimal):
        number = int(value) if isinstance(value, numbers.Integral) else float(value)
        if math.isfinite(number):
            return number
        return None if math.isnan(number) else str(number)  # NaN is how pandas spells blank
    if isinstance(value, dt.date | dt.time):
        if value != value:  # pandas NaT
            return None
        # Excel has no time zones: keep the offset visible as text rather than silently dropping it.
        return str(value) if getattr(value, "tzinfo", None) is not None else value
    # timedelta and anything else: its text, so that nothing is lost and nothing fails.
    return _clean(str(value))


def _clean(text: str) -> str:
    """Drop the control characters that an xlsx file cannot hold."""
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def _date_format(value: dt.date | dt.time) -> str:
    if isinstance(value, dt.datetime):
        precise = value.second or value.microsecond
        return "yyyy-mm-dd hh:mm:ss" if precise else "yyyy-mm-dd hh:mm"
    if isinstance(value, dt.date):
        return "yyyy-mm-dd"
    return "hh:mm:ss"


def _problem_text(problem: RejectedCell) -> str:
    """'Quantity: not a whole number ('abc')'."""
    text = problem.reason if problem.column is None else f"{problem.column}: {problem.reason}"
    if problem.value is None or (isinstance(problem.value, str) and not problem.value):
        return text
    shown = repr(problem.value) if isinstance(problem.value, str) else str(problem.value)
    if len(shown) > _SHOWN_VALUE_LENGTH:
        shown = shown[: _SHOWN_VALUE_LENGTH - 1] + "…"
    return f"{text} ({shown})"
