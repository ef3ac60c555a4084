"""The import template workbook, written from the layout so that it never drifts from the importer."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.xml.constants import ARC_CORE
from openpyxl.xml.functions import tostring

from sales_pipeline.excel.layout import SHEETS, Column, Sheet

AUTHOR = "sales_pipeline"
# Fixed so that regenerating the committed template only changes it when the layout changes.
FIXED_TIMESTAMP = dt.datetime(2026, 1, 1)
_ZIP_TIMESTAMP = (2026, 1, 1, 0, 0, 0)

VALIDATED_ROWS = 10_000
EARLIEST_DATE = dt.date(1900, 1, 1)  # stores opened and customers joined long ago

HEADER_FONT = Font(bold=True, color="FFFFFF")
OPTIONAL_COLOUR = "1F4E78"  # dark blue
REQUIRED_COLOUR = "9C0006"  # dark red
OPTIONAL_FILL = PatternFill("solid", fgColor=OPTIONAL_COLOUR)
REQUIRED_FILL = PatternFill("solid", fgColor=REQUIRED_COLOUR)
README_SHEET = "Read me"

_KIND_LABEL = {
    "text": "text",
    "whole": "a whole number",
    "decimal": "a number",
    "rate": "a rate (0.1 or 10%)",
    "date": "a date (yyyy-mm-dd)",
    "datetime": "a date, or a date and time (yyyy-mm-dd hh:mm)",
    "flag": "yes or no",
}
NUMBER_FORMATS = {
    "text": "@",  # keeps codes such as 00123 as typed
    "whole": "0",
    "decimal": "0.00",
    "rate": "0%",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
    "flag": "General",
}
# Excel refuses longer titles and messages in a data validation.
_MAX_TITLE, _MAX_PROMPT, _MAX_ERROR = 32, 255, 225


def write_template(path: Path) -> Path:
    """Write the import template workbook to `path`; the same layout always gives the same bytes."""
    wb = Workbook()
    _write_readme(wb.active)
    for sheet in SHEETS:
        _write_sheet(wb.create_sheet(sheet.name), sheet)
    wb.properties.creator = AUTHOR
    wb.properties.created = FIXED_TIMESTAMP
    path.parent.mkdir(parents=True, exist_ok=True)
    save_reproducibly(wb, path)
    return path


def save_reproducibly(wb: Workbook, path: Path) -> None:
    """Save `wb` with no wall-clock time in it: openpyxl stamps the modified time and zip entry times."""
    buffer = io.BytesIO()
    wb.save(buffer)
    wb.properties.modified = FIXED_TIMESTAMP
    core = tostring(wb.properties.to_tree())
    with ZipFile(buffer) as source, ZipFile(path, "w", ZIP_DEFLATED) as target:
        for entry in source.infolist():
            info = ZipInfo(entry.filename, date_time=_ZIP_TIMESTAMP)
            info.create_system = 0  # same bytes whichever OS writes it
            data = core if entry.filename == ARC_CORE else source.read(entry)
            target.writestr(info, data, compress_type=ZIP_DEFLATED)


def _write_readme(ws: Worksheet) -> None:
    ws.title = README_SHEET
    lines = [
        "How to fill this workbook",
        "Each sheet holds one kind of data. Every sheet is optional: fill the ones you have, delete the others.",
        "Keep the sheet names and the header texts exactly as they are. The order of sheets and columns "
        "does not matter.",
        "Headers on a dark red fill are required: every row needs a value there. Headers on a dark blue "
        "fill are optional and may be left blank.",
        "Hover over a header to see what the column holds. Excel warns when a typed value breaks a column's rule.",
        "Dates: type real Excel dates, or text such as 2026-11-02 (with a time: 2026-11-02 10:15).",
        "One row per key (see the table below): a key repeated in a sheet is rejected.",
        "Row 2 of each sheet is an example: overwrite it or delete it.",
        "Save as .xlsx and drop the workbook into the inbox. Rows that are fine are loaded; rows with "
        "problems come back to you in a feedback workbook with the bad cells highlighted. Fix them there "
        "and drop that workbook into the inbox again.",
    ]
    ws.append([lines[0]])
    ws["A1"].font = Font(bold=True, size=14)
    for line in lines[1:]:
        ws.append([line])
    ws.append([])
    ws.append(["Sheet", "What it holds", "One row per", "Required columns"])
    table_header = ws.max_row
    for cell in ws[table_header]:
        cell.font = HEADER_FONT
        cell.fill = OPTIONAL_FILL
    for sheet in SHEETS:
        key = " + ".join(sheet.column_by_name[name].header for name in sheet.key)
        required = ", ".join(c.header for c in sheet.columns if c.required)
        ws.append([sheet.name, sheet.description, key, required])
        for cell in ws[ws.max_row]:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for letter, width in zip("ABCD", (14, 45, 30, 50), strict=True):
        ws.column_dimensions[letter].width = width


def _write_sheet(ws: Worksheet, sheet: Sheet) -> None:
    ws.append([c.header for c in sheet.columns])
    ws.append([_example_value(c) for c in sheet.columns])
    for index, column in enumerate(sheet.columns, start=1):
        letter = get_column_letter(index)
        header = ws.cell(row=1, column=index)
        header.font = HEADER_FONT
        header.fill = REQUIRED_FILL if column.required else OPTIONAL_FILL
        header.comment = _header_comment(column)
        # The column style formats what users type below the example, not just the example itself.
        ws.column_dimensions[letter].number_format = NUMBER_FORMATS[column.kind]
        ws.column_dimensions[letter].width = max(12, len(column.header), len(str(column.example))) + 4
        ws.cell(row=2, column=index).number_format = NUMBER_FORMATS[column.kind]
        validation = _validation(column)
        validation.add(f"{letter}2:{letter}{VALIDATED_ROWS}")
        ws.add_data_validation(validation)
    ws.freeze_panes = "A2"


def _example_value(column: Column) -> object:
    example = column.example
    if isinstance(example, str) and column.kind == "date":
        return dt.date.fromisoformat(example)
    if isinstance(example, str) and column.kind == "datetime":
        return dt.datetime.fromisoformat(example)
    if isinstance(example, bool) and column.kind == "flag":
        return "yes" if example else "no"
    return example


def _number(value: float) -> str:
    return f"{value:g}"


def _bounds(column: Column) -> tuple[float | None, float | None]:
    if column.kind == "rate":
        return (
            0 if column.minimum is None else column.minimum,
            1 if column.maximum is None else column.maximum,
        )
    return column.minimum, column.maximum


def _rule(column: Column) -> str:
    """The column's rule in plain words, shared by the header comment and the validation messages."""
    if column.choices:
        return "one of: " + ", ".join(column.choices)
    if column.kind == "flag":
        return "yes or no"
    if column.kind in ("date", "datetime"):
        return f"{_KIND_LABEL[column.kind]}, after {EARLIEST_DATE.isoformat()}"
    label = _KIND_LABEL[column.kind]
    low, high = _bounds(column)
    if low is not None and high is not None:
        return f"{label} between {_number(low)} and {_number(high)}"
    if low is not None:
        return f"{label}, {_number(low)} or more"
    if high is not None:
        return f"{label}, {_number(high)} or less"
    return label


def _presence(column: Column) -> str:
    if column.required:
        return "Required."
    if column.default is None:
        return "Optional."
    default = ("yes" if column.default else "no") if isinstance(column.default, bool) else column.default
    return f"Optional; blank means {default}."


def _header_comment(column: Column) -> Comment:
    text = "\n".join(
        [
            column.description,
            _presence(column),
            f"Must be {_rule(column)}.",
        ]
    )
    comment = Comment(text, AUTHOR)
    comment.width, comment.height = 260, 130
    return comment


def _validation(column: Column) -> DataValidation:
    """The Excel data validation for one column: the importer checks again, this only helps typing."""
    rule = _rule(column)
    messages = {
        "allow_blank": True,
        "showInputMessage": True,
        "promptTitle": column.header[:_MAX_TITLE],
        "prompt": f"{column.description} {_presence(column)} Must be {rule}."[:_MAX_PROMPT],
        "showErrorMessage": True,
        "errorTitle": f"Invalid {column.header}"[:_MAX_TITLE],
        "error": f"{column.header} must be {rule}."[:_MAX_ERROR],
    }
    if column.choices or column.kind == "flag":
        choices = column.choices or ("yes", "no")
        return DataValidation(type="list", formula1=f'"{",".join(choices)}"', **messages)
    if column.kind in ("date", "datetime"):
        start = f"DATE({EARLIEST_DATE.year},{EARLIEST_DATE.month},{EARLIEST_DATE.day})"
        return DataValidation(type="date", operator="greaterThan", formula1=start, **messages)
    if column.kind in ("whole", "decimal", "rate"):
        kind = "whole" if column.kind == "whole" else "decimal"
        low, high = _bounds(column)
        if low is not None and high is not None:
            bounds = {"operator": "between", "formula1": _number(low), "formula2": _number(high)}
        elif low is not None:
            bounds = {"operator": "greaterThanOrEqual", "formula1": _number(low)}
        elif high is not None:
            bounds = {"operator": "lessThanOrEqual", "formula1": _number(high)}
        else:
            # Excel needs a bound to check the type at all; 15 digits is all it keeps exactly.
            bounds = {"operator": "between", "formula1": "-999999999999999", "formula2": "999999999999999"}
        return DataValidation(type=kind, **bounds, **messages)
    # Text: nothing Excel can check, but the input prompt still explains the column.
    return DataValidation(**messages)


if __name__ == "__main__":  # python -m sales_pipeline.excel.template: regenerate the committed copy
    write_template(Path(__file__).resolve().parents[2] / "data" / "templates" / "sales_import_template.xlsx")
