"""Turning a sheet's raw cells into typed, validated rows, and saying why a cell is bad.

Parsing is per column and vectorised where the column is clean (the usual case), falling back to
one Python call per cell only for the cells that need it. Every bad cell gets a reason a person
can act on; validation is lazy, so all of a row's problems are reported, not just the first.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandas.api.types import infer_dtype

from sales_pipeline.excel.layout import Column, Sheet

EXCEL_EPOCH_1900 = pd.Timestamp("1899-12-30")
EXCEL_EPOCH_1904 = pd.Timestamp("1904-01-01")
REQUIRED = "a value is required here"
UNCALCULATED_FORMULA = "a formula without a saved result: open the workbook in Excel, save it, and drop it again"
_TRUE = {"yes", "y", "true", "1", "x", "oui", "o", "vrai"}
_FALSE = {"no", "n", "false", "0", "non", "faux"}
_FLAG_WORDS = {word: True for word in _TRUE} | {word: False for word in _FALSE}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_NUMBER_NOISE = re.compile(r"[\s\u00a0\u202f\u200b-\u200d\u2060\ufeff€$£_]")
# Characters nobody sees, pasted from web pages and chat tools: zero-width spaces and joiners, the word joiner,
# the byte-order mark, the soft hyphen. Removed from text like spaces are trimmed (no-break spaces are spaces).
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad]")
_PLAIN_NUMBERS = ("floating", "integer", "mixed-integer-float")
_THOUSANDS_ONLY = re.compile(r"^[+-]?\d{1,3}(,\d{3})+$")
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](?:\d{4}|\d{2})\b")
_TIME_ONLY = re.compile(r"^\d{1,2}[:h]\d{2}(:\d{2})?\s*([ap]\.?m\.?)?$", re.IGNORECASE)
_RELATIVE_DAYS = {"now", "today", "tomorrow", "yesterday"}
# The warehouse's limits: integer columns, and numeric(12, 4) for prices and costs.
LARGEST_WHOLE = 2_147_483_647
LARGEST_DECIMAL = 99_999_999.9999
# Excel shows and computes with 15 significant digits; the double a cell stores may read back longer
# (22.368 as 22.368000000000002, 731.94 as 731.9399999999999).
EXCEL_DIGITS = 15


@dataclass(frozen=True)
class ParseOptions:
    dayfirst: bool = True  # 03/04/2026 is 3 April
    date_format: str | None = None  # strftime format of text dates, when a mapping fixes one
    date1904: bool = False  # plain numbers in date columns count from 1904


@dataclass(frozen=True)
class CellProblem:
    row_number: int  # Excel row number
    column: str  # canonical column name
    value: object
    reason: str


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or _is_nan(value)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and np.isnan(value)


def parse_sheet(raw: pd.DataFrame, sheet: Sheet, options: ParseOptions) -> tuple[pd.DataFrame, list[CellProblem]]:
    """Parse the canonical columns present in `raw` (index = Excel row numbers).

    Returns typed columns (blanks as None/NA, defaults applied) and one problem per bad cell.
    """
    parsed: dict[str, pd.Series] = {}
    problems: list[CellProblem] = []
    for name in raw.columns:
        column = sheet.column_by_name[name]
        values, reasons = parse_column(raw[name], column, options)
        parsed[name] = values
        for row_number in reasons.index[reasons.notna()]:
            problems.append(CellProblem(int(row_number), name, raw.at[row_number, name], reasons[row_number]))
    frame = pd.DataFrame(parsed, index=raw.index)
    problems.extend(_domain_problems(frame, sheet, raw))
    return frame, problems


def parse_column(raw: pd.Series, column: Column, options: ParseOptions) -> tuple[pd.Series, pd.Series]:
    """Typed values and a reason per bad cell (None where the cell is fine).

    Parsers see only the non-blank cells; blanks then take the column's default, or are
    rejected when the column is required.
    """
    blank = blank_mask(raw)
    present = raw[~blank]
    parsed, present_reasons = _PARSERS[column.kind](present, options)
    values = parsed.reindex(raw.index)
    reasons = present_reasons.reindex(raw.index).astype(object)
    reasons = reasons.where(reasons.notna(), None)
    # A cell of only spaces parses to nothing without a reason: it is blank too.
    blank |= values.isna() & reasons.isna()
    if column.default is not None:
        values = values.astype(object).where(~blank, column.default)
        values = values.astype(parsed.dtype) if parsed.dtype != object else values
    elif column.required:
        reasons = reasons.where(~blank, REQUIRED)
    return values, reasons


def blank_mask(raw: pd.Series) -> pd.Series:
    """Empty cells: missing or empty text (parsers turn cells of only spaces into blanks as well)."""
    return (raw.isna() | raw.eq("")).astype(bool)


def _no_problems(cells: pd.Series) -> pd.Series:
    return pd.Series(None, index=cells.index, dtype=object)


def cell_text(value: object) -> str | None:
    """A cell as text: trimmed, inner runs of spaces and line breaks folded, invisible characters removed,
    1001.0 as 1001."""
    if is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a code or a count typed as a number
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return " ".join(_INVISIBLE.sub("", str(value)).split())


def _text(cells: pd.Series, options: ParseOptions) -> tuple[pd.Series, pd.Series]:
    if infer_dtype(cells, skipna=True) != "string":
        return cells.map(cell_text).astype(object), _no_problems(cells)
    # All text, the usual case: each distinct text is cleaned once (a column of store codes holds a handful),
    # str.split folding spaces fastest, in a plain loop; invisible characters are rare, so one search over
    # the distinct texts tells whether any needs more.
    codes, strings = pd.factorize(cells.to_numpy())
    if _INVISIBLE.search("\n".join(strings)):
        strings = [_INVISIBLE.sub("", value) for value in strings]
    # A text already clean keeps its string object: a million codes are not held twice.
    folded = [(value if (text := " ".join(value.split())) == value else text) or None for value in strings]
    text = pd.Series(np.asarray([*folded, None], dtype=object)[codes], index=cells.index, dtype=object)  # -1: blank
    return text, _no_problems(cells)


def _number_or_reason(value: object, kind: str) -> float | str | None:
    """A float, or a reason string when the cell cannot be read as a number."""
    if isinstance(value, bool):
        return "a yes/no value where a number is expected"
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.date | dt.timedelta):
        return "a date or time where a number is expected"
    text = _NUMBER_NOISE.sub("", str(value))
    if not text:
        return None  # only spaces: a blank cell
    percent = text.endswith("%")
    text = text.removesuffix("%")
    if "," in text and "." in text:  # 1,250.00 or 1.250,00: the last separator marks the decimals
        thousands = "," if text.rfind(",") < text.rfind(".") else "."
        text = text.replace(thousands, "").replace(",", ".")
    elif "," in text:
        if _THOUSANDS_ONLY.match(text):
            return "ambiguous: 1,500 may be 1500 or 1.5; write it without the comma, or with a dot for decimals"
        text = text.replace(",", ".")  # a decimal comma: 12,50
    try:
        number = float(text)
    except ValueError:
        return "not a number"
    if not np.isfinite(number):  # "nan", "inf": Python reads them, a sender never means them
        return "not a number"
    if percent:
        if kind != "rate":
            return "a percentage where a plain number is expected"
        number /= 100
    return number


def _per_cell(cells: pd.Series, parse: Callable[[object], object], dtype: str | None) -> tuple[pd.Series, pd.Series]:
    """The slow path: one call per cell, returning a value or a reason string."""
    results = cells.map(parse)
    is_reason = results.map(lambda r: isinstance(r, str)).astype(bool)
    values = results.where(~is_reason, None)
    reasons = results.where(is_reason, None).astype(object)
    return (values.astype(dtype) if dtype else values.astype(object)), reasons


def _numbers(cells: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    if infer_dtype(cells, skipna=True) in _PLAIN_NUMBERS:
        return cells.astype(float), _no_problems(cells)  # the usual case: real numbers, vectorised
    values, reasons = _per_cell(cells, lambda v: _number_or_reason(v, kind), None)
    return pd.to_numeric(values, errors="coerce").astype(float), reasons


def _within(values: pd.Series, reasons: pd.Series, largest: float) -> tuple[pd.Series, pd.Series]:
    too_large = values.abs() > largest
    return values.where(~too_large), reasons.where(~too_large, f"too large (the most is {largest:,.0f})")


def _whole(cells: pd.Series, options: ParseOptions) -> tuple[pd.Series, pd.Series]:
    values, reasons = _within(*_numbers(cells, "whole"), LARGEST_WHOLE)
    fractional = values.notna() & (values != values.round())
    reasons = reasons.where(~fractional, "not a whole number")
    return values.where(~fractional).round().astype("Int64"), reasons


def _decimal(cells: pd.Series, options: ParseOptions) -> tuple[pd.Series, pd.Series]:
    values, reasons = _within(*_numbers(cells, "decimal"), LARGEST_DECIMAL)
    return excel_precision(values), reasons


def excel_precision(values: pd.Series) -> pd.Series:
    """Each number to the 15 significant digits Excel shows: the amount the sender sees, without the
    binary noise of its double (the warehouse keeps amounts exactly, noise included, if given any)."""
    array = values.to_numpy(dtype=float, copy=True)
    rounded = np.isfinite(array) & (np.abs(array) > 1e-300)  # not 0, nor so small that 10**places overflows
    places = EXCEL_DIGITS - 1 - np.floor(np.log10(np.abs(array[rounded]))).astype(int)
    numbers = array[rounded]
    for count in np.unique(places):  # np.round takes one count of places: one pass per magnitude
        same = places == count
        numbers[same] = np.round(numbers[same], count)
    array[rounded] = numbers
    return pd.Series(array, index=values.index)


def _rate(cells: pd.Series, options: ParseOptions) -> tuple[pd.Series, pd.Series]:
    return _numbers(cells, "rate")


def _flag_or_reason(value: object) -> bool | str | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = _INVISIBLE.sub("", str(value)).strip().lower()
    if not text:
        return None  # only spaces: a blank cell
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return "not yes or no"


def _flag(cells: pd.Series, options: ParseOptions) -> tuple[pd.Series, pd.Series]:
    inferred = infer_dtype(cells, skipna=True)
    if inferred == "boolean":
        return cells.astype(object), _no_problems(cells)
    if inferred == "string":  # yes/no words: one vectorised lookup
        words = cells.str.strip().str.lower()
        values = words.map(_FLAG_WORDS).astype(object)
        unknown = values.isna() & words.ne("")
        values = values.where(values.notna(), None)
        return values, pd.Series(None, index=cells.index, dtype=object).where(~unknown, "not yes or no")
    return _per_cell(cells, _flag_or_reason, None)


def _timestamp_or_reason(value: object, options: ParseOptions) -> pd.Timestamp | str | None:
    if isinstance(value, dt.datetime | dt.date):
        return pd.Timestamp(value)
    if isinstance(value, bool):
        return "a yes/no value where a date is expected"
    if isinstance(value, int | float):
        if not 1 <= value < 2_958_466:  # Excel's calendar ends on 9999-12-31
            return "not a date (number out of Excel's date range)"
        epoch = EXCEL_EPOCH_1904 if options.date1904 else EXCEL_EPOCH_1900
        return (epoch + pd.to_timedelta(value, unit="D")).round("s")
    if isinstance(value, dt.timedelta | dt.time):
        return "a time without a date"
    text = _INVISIBLE.sub("", str(value)).strip()
    if not text:
        return None  # only spaces: a blank cell
    if _TIME_ONLY.match(text):
        return "a time without a date"
    if text.lower() in _RELATIVE_DAYS:
        return "not a date (write the date itself)"
    try:
        if options.date_format:
            return pd.Timestamp(dt.datetime.strptime(text, options.date_format))
        if _ISO_DATE.match(text):
            return pd.Timestamp(text)
        return pd.Timestamp(pd.to_datetime(text, dayfirst=options.dayfirst))
    except (ValueError, OverflowError):
        expected = f" (expected {options.date_format})" if options.date_format else ""
        return f"not a date{expected}"


def column_reading(cells: pd.Series, options: ParseOptions) -> tuple[bool, pd.Series]:
    """Whether a column's text dates such as 03/04/2026 read day first, and a reason for each cell that can
    only be read the other way (None elsewhere).

    One reading per column: the one its unambiguous cells show (13/04/2026 is day first, 04/13/2026 month
    first), the most common when they disagree, else the setting (`options.dayfirst`). Two readings in one
    column would turn 10/05 into May and 10/15 into October without a word.
    """
    reasons = _no_problems(cells)
    if options.date_format:
        return options.dayfirst, reasons
    texts = cells[cells.map(lambda value: isinstance(value, str)).astype(bool)]
    parts = texts.str.extract(_NUMERIC_DATE).astype(float)
    if parts.empty or parts[0].isna().all():
        return options.dayfirst, reasons
    only_day_first = (parts[0] > 12) & (parts[1] <= 12)
    only_month_first = (parts[1] > 12) & (parts[0] <= 12)
    day_first, month_first = int(only_day_first.sum()), int(only_month_first.sum())
    reading = day_first > month_first if day_first != month_first else options.dayfirst
    contradicting, shown = (only_month_first, only_day_first) if reading else (only_day_first, only_month_first)
    if contradicting.any():
        words = ("day first", "month first") if reading else ("month first", "day first")
        example = f" (as {texts[shown.idxmax()]!r} in row {shown.idxmax()} does)" if shown.any() else " (the setting)"
        reason = (
            f"can only be read {words[1]}, but this column's dates read {words[0]}{example}: write it as yyyy-mm-dd"
        )
        reasons[contradicting[contradicting].index] = reason
    return reading, reasons


def _timestamps(cells: pd.Series, options: ParseOptions) -> tuple[pd.Series, pd.Series]:
    if infer_dtype(cells, skipna=True) in ("datetime", "date", "datetime64"):
        return pd.to_datetime(cells), _no_problems(cells)  # real Excel dates: the usual case, vectorised
    dayfirst, contradicting = column_reading(cells, options)
    options = replace(options, dayfirst=dayfirst)
    readable = contradicting.isna()
    values, reasons = _per_cell(cells[readable], lambda v: _timestamp_or_reason(v, options), None)
    values, reasons = values.reindex(cells.index), reasons.reindex(cells.index).where(readable, contradicting)
    aware = values.map(lambda t: isinstance(t, pd.Timestamp) and t.tzinfo is not None).astype(bool)
    # Text with an explicit offset names an instant: keep it as UTC wall time.
    values[aware] = values[aware].map(lambda t: t.tz_convert("UTC").tz_localize(None))
    return pd.to_datetime(values), reasons


def _datetime(cells: pd.Series, options: ParseOptions) -> tuple[pd.Series, pd.Series]:
    return _timestamps(cells, options)


def gives_time_of_day(values: pd.Series) -> pd.Series:
    """Whether each parsed date-and-time carries a time of day (False for a bare date).

    A date cell or a date written without a time parses to midnight; a time of exactly 00:00:00 counts
    as none too, since that is how most tools (pandas, CSV conversions) write a bare date as a datetime.
    Taking a real midnight sale for a date costs nothing: it counts on the day the sender wrote.
    """
    return values.ne(values.dt.normalize()).astype(bool)


def _date(cells: pd.Series, options: ParseOptions) -> tuple[pd.Series, pd.Series]:
    values, reasons = _timestamps(cells, options)
    return values.dt.normalize(), reasons


_PARSERS = {
    "text": _text,
    "whole": _whole,
    "decimal": _decimal,
    "rate": _rate,
    "flag": _flag,
    "date": _date,
    "datetime": _datetime,
}


def domain_schema(sheet: Sheet, present: list[str]) -> pa.DataFrameSchema:
    """The pandera schema of a sheet's parsed values: ranges and allowed values."""
    columns = {}
    for name in present:
        column = sheet.column_by_name[name]
        checks = []
        if column.minimum is not None:
            checks.append(pa.Check.ge(column.minimum, error=column.range_reason))
        if column.maximum is not None:
            checks.append(pa.Check.le(column.maximum, error=column.range_reason))
        if column.plausible_max is not None:
            checks.append(pa.Check.le(column.plausible_max, error=column.implausible_reason))
        if column.choices:
            checks.append(pa.Check.isin(column.choices, error="must be one of " + ", ".join(column.choices)))
        if checks:
            columns[name] = pa.Column(None, checks, nullable=True)
    return pa.DataFrameSchema(columns)


def _domain_problems(frame: pd.DataFrame, sheet: Sheet, raw: pd.DataFrame) -> list[CellProblem]:
    schema = domain_schema(sheet, list(frame.columns))
    if not schema.columns:
        return []
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"]).drop_duplicates(["index", "column", "check"])
        return [
            CellProblem(int(case.index), case.column, raw.at[case.index, case.column], case.check)
            for case in cases.itertuples()
        ]
    return []
