"""Which sheets and columns of a workbook feed which template sheet.

The template itself is the default mapping: a sheet named like a template sheet, whose headers
are the template's headers (case, spacing and punctuation do not matter). A YAML mapping file
describes any other layout; see data/mappings/superstore.yaml and the README.

Repeated keys
-------------
A sheet of order lines repeats its products, customers and stores on every line. With
``repeated_keys: last`` each key loads once, from its latest row: the row with the latest date in the
sheet's date column, ties (and rows without a readable date, which count as the oldest) going to the
later row in sheet order. The date column is ``latest_by`` (a header of that sheet) when the entry
names one, else the header the mapping reads a sale's ``sold_at`` (or a stock count's ``as_of``) from
in the same sheet. A sheet with neither has no dates: the last row in sheet order wins. (Sheet order
alone is not enough: exports are often sorted by region or id, not by date, and the last row would
then carry a stale name.) ``repeated_keys: reject`` (the default) rejects a key seen twice with other
values, as a catalogue sheet should.

Row filters
-----------
``where`` (an expression over backticked source headers, like ``computed``, e.g. ``"`Open` == 0"``)
keeps the rows an entry reads: one table may hold several things, such as Rossmann's daily store
totals, whose closed days (Open = 0) are calendar rows and whose promotion days (Promo = 1) are
promotions. A row the expression is not true for (including one whose operands are not numbers)
is not read by that entry.

CSV files
---------
``format: csv`` (default ``workbook``) reads CSV files (``.csv``): the file is one table, which every
entry reads (an entry's ``sheet`` is then optional); ``delimiter`` fixes the delimiter, else it is
found from the header line (``sales_pipeline/excel/csv_read.py``). See data/mappings/rossmann.yaml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from sales_pipeline.excel.layout import SHEET_BY_TARGET, SHEETS, Sheet, normalise_header
from sales_pipeline.excel.parse import ParseOptions


class MappingError(ValueError):
    """The mapping file itself is wrong; the message names the file and the entry."""


@dataclass(frozen=True)
class SheetMapping:
    """One source sheet feeding one template sheet (the target)."""

    source: str | None  # sheet name in the workbook; None: any sheet named like the target
    target: Sheet
    columns: dict[str, str] = field(default_factory=dict)  # canonical column -> source header
    constants: dict[str, object] = field(default_factory=dict)  # canonical column -> value
    computed: dict[str, str] = field(default_factory=dict)  # canonical column -> pandas expression
    # "reject": a key seen twice with other values is an error (a catalogue sheet);
    # "last": the sheet repeats master data on every order line, a key's latest row wins (module doc).
    repeated_keys: str = "reject"
    latest_by: str | None = None  # with "last": the source header that dates a row; None: sheet order
    where: str | None = None  # the rows read: an expression over backticked source headers (module doc)


@dataclass(frozen=True)
class Mapping:
    name: str
    sheets: tuple[SheetMapping, ...]
    dayfirst: bool | None = None  # None: the pipeline's setting
    date_format: str | None = None
    format: str = "workbook"  # or "csv": the file is one CSV table every entry reads
    delimiter: str | None = None  # CSV only; None: found from the header line

    @property
    def is_template(self) -> bool:
        return self.name == "template"

    def parse_options(self, dayfirst: bool, date1904: bool) -> ParseOptions:
        return ParseOptions(
            dayfirst=dayfirst if self.dayfirst is None else self.dayfirst,
            date_format=self.date_format,
            date1904=date1904,
        )


TEMPLATE = Mapping(name="template", sheets=tuple(SheetMapping(None, sheet) for sheet in SHEETS))
FORMATS = ("workbook", "csv")
CSV_SHEET = "csv"  # the sheet name of a CSV mapping's entries that name none
BACKTICKED = re.compile(r"`([^`]+)`")


def header_aliases(sheet: Sheet) -> dict[str, str]:
    """Normalised header text -> canonical column, for both the template header and the name."""
    aliases = {}
    for column in sheet.columns:
        aliases[normalise_header(column.header)] = column.name
        aliases[column.name] = column.name
    return aliases


# The template columns that date an order line or a stock count: what "latest" means in a sheet.
_ROW_DATES = {"sales": "sold_at", "stock": "as_of"}


def _date_repeated_keys(sheets: list[SheetMapping]) -> list[SheetMapping]:
    """Give each `repeated_keys: last` entry without `latest_by` its sheet's date column, if any."""
    dates: dict[str, str] = {}  # source sheet -> the header its lines are dated by
    for sheet in sheets:
        column = _ROW_DATES.get(sheet.target.target)
        if column in sheet.columns:
            dates.setdefault(normalise_header(sheet.source), sheet.columns[column])
    return [
        replace(s, latest_by=dates.get(normalise_header(s.source)))
        if s.repeated_keys == "last" and s.latest_by is None
        else s
        for s in sheets
    ]


def load_mapping(path: Path) -> Mapping:
    """Read and check a YAML mapping; every mistake names the file and the entry."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise MappingError(f"{path}: cannot read the mapping: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("sheets"), list) or not document["sheets"]:
        raise MappingError(f"{path}: a mapping needs a non-empty 'sheets' list")
    file_format = str(document.get("format", "workbook"))
    if file_format not in FORMATS:
        raise MappingError(f"{path}: format must be one of {', '.join(FORMATS)}, not {file_format!r}")
    delimiter = document.get("delimiter")
    if delimiter is not None and (file_format != "csv" or not isinstance(delimiter, str) or len(delimiter) != 1):
        raise MappingError(f"{path}: delimiter is one character, and only for format: csv")
    sheets = [_sheet_entry(f"{path}: sheets[{number}]", entry, file_format)
              for number, entry in enumerate(document["sheets"], start=1)]  # fmt: skip
    sheets = _date_repeated_keys(sheets)
    dayfirst = document.get("dayfirst")
    if dayfirst is not None and not isinstance(dayfirst, bool):
        raise MappingError(f"{path}: dayfirst must be true or false")
    return Mapping(
        name=str(document.get("name") or path.stem),
        sheets=tuple(sheets),
        dayfirst=dayfirst,
        date_format=document.get("date_format"),
        format=file_format,
        delimiter=delimiter,
    )


def _sheet_entry(where: str, entry: object, file_format: str) -> SheetMapping:
    """One entry of a mapping's sheets, checked; every mistake names the file and the entry."""
    if not isinstance(entry, dict):
        raise MappingError(f"{where}: each entry must be a mapping with sheet, target and columns")
    target = SHEET_BY_TARGET.get(str(entry.get("target", "")).lower())
    if target is None:
        raise MappingError(f"{where}: target must be one of {', '.join(SHEET_BY_TARGET)}")
    if not entry.get("sheet") and file_format != "csv":
        raise MappingError(f"{where}: 'sheet' (the sheet name in the workbook) is missing")
    columns = {str(k): str(v) for k, v in (entry.get("columns") or {}).items()}
    constants = dict(entry.get("constants") or {})
    computed = {str(k): str(v) for k, v in (entry.get("computed") or {}).items()}
    for name in [*columns, *constants, *computed]:
        if name not in target.column_by_name:
            raise MappingError(
                f"{where}: '{name}' is not a column of {target.name} (columns: {', '.join(target.column_by_name)})"
            )
    provided = set(columns) | set(constants) | set(computed)
    missing = [c.name for c in target.columns if c.required and c.name not in provided and c.name != "line_number"]
    if missing:
        raise MappingError(f"{where}: required columns of {target.name} not mapped: {', '.join(missing)}")
    repeated_keys = str(entry.get("repeated_keys", "reject"))
    if repeated_keys not in ("reject", "last"):
        raise MappingError(f"{where}: repeated_keys must be 'reject' or 'last', not {repeated_keys!r}")
    latest_by = entry.get("latest_by")
    if latest_by is not None and repeated_keys != "last":
        raise MappingError(f"{where}: latest_by only applies with repeated_keys: last")
    row_filter = entry.get("where")
    if row_filter is not None and not BACKTICKED.search(str(row_filter)):
        raise MappingError(f'{where}: where must name the source headers it reads in backticks, e.g. "`Open` == 1"')
    return SheetMapping(
        str(entry.get("sheet") or CSV_SHEET), target, columns, constants, computed, repeated_keys,
        None if latest_by is None else str(latest_by), None if row_filter is None else str(row_filter),
    )  # fmt: skip
