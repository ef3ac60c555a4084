"""The import template and the feedback workbook, written to real files and read back with openpyxl."""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile
from pathlib import Path

import openpyxl
import pytest
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sales_pipeline.excel.feedback import (
    BAD_CELL_COLOUR,
    BAD_ROW_COLOUR,
    RejectedCell,
    SheetRows,
    write_feedback_workbook,
)
from sales_pipeline.excel.layout import SHEETS
from sales_pipeline.excel.template import OPTIONAL_COLOUR, REQUIRED_COLOUR, write_template

COMMITTED_TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "templates" / "sales_import_template.xlsx"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> openpyxl.Workbook:
    return openpyxl.load_workbook(write_template(tmp_path_factory.mktemp("template") / "template.xlsx"))


def validations_by_header(ws: Worksheet) -> dict[str, DataValidation]:
    headers = {cell.column_letter: cell.value for cell in ws[1]}
    found: dict[str, DataValidation] = {}
    for validation in ws.data_validations.dataValidation:
        (cell_range,) = validation.sqref.ranges
        assert cell_range.min_col == cell_range.max_col
        assert (cell_range.min_row, cell_range.max_row) == (2, 10_000)
        found[headers[openpyxl.utils.get_column_letter(cell_range.min_col)]] = validation
    return found


def test_template_has_read_me_and_the_layout_sheets_with_exact_headers(template: openpyxl.Workbook) -> None:
    assert template.sheetnames == ["Read me", *(sheet.name for sheet in SHEETS)]
    for sheet in SHEETS:
        ws = template[sheet.name]
        assert [cell.value for cell in ws[1]] == [column.header for column in sheet.columns]
        assert ws.freeze_panes == "A2"
    read_me = " ".join(str(row[0]) for row in template["Read me"].iter_rows(values_only=True) if row[0])
    assert "optional" in read_me and "dark red" in read_me and "feedback workbook" in read_me


def test_every_header_has_a_comment_and_required_headers_their_own_fill(template: openpyxl.Workbook) -> None:
    for sheet in SHEETS:
        for column, cell in zip(sheet.columns, template[sheet.name][1], strict=True):
            assert cell.comment is not None, f"{sheet.name}.{column.header}"
            assert column.description in cell.comment.text
            assert ("Required." if column.required else "Optional") in cell.comment.text
            assert cell.font.bold
            colour = REQUIRED_COLOUR if column.required else OPTIONAL_COLOUR
            assert cell.fill.fgColor.rgb.endswith(colour)
    segment = template["Customers"]["C1"].comment.text
    assert "Consumer, Corporate, Home Office" in segment


def test_data_validations_follow_the_column_kinds(template: openpyxl.Workbook) -> None:
    for sheet in SHEETS:
        validations = validations_by_header(template[sheet.name])
        assert set(validations) == {column.header for column in sheet.columns}
        for column in sheet.columns:
            validation = validations[column.header]
            expected = {
                "text": None,
                "whole": "whole",
                "decimal": "decimal",
                "rate": "decimal",
                "date": "date",
                "datetime": "date",
                "flag": "list",
            }[column.kind]
            assert validation.type == ("list" if column.choices else expected), column.header
            if validation.type is not None:
                assert validation.showErrorMessage and validation.allow_blank
                assert column.header in validation.error and validation.errorTitle
                assert validation.prompt

    sales = validations_by_header(template["Sales"])
    quantity = sales["Quantity"]
    assert (quantity.type, quantity.operator, quantity.formula1) == ("whole", "greaterThanOrEqual", "1")
    discount = sales["Discount"]
    assert (discount.type, discount.operator, discount.formula1, discount.formula2) == (
        "decimal",
        "between",
        "0",
        "1",
    )
    assert sales["Promotion"].formula1 == '"yes,no"'
    assert sales["Sold At"].operator == "greaterThan" and sales["Sold At"].formula1 == "DATE(1900,1,1)"
    lead_time = validations_by_header(template["Products"])["Lead Time Days"]
    assert (lead_time.operator, lead_time.formula1, lead_time.formula2) == ("between", "0", "365")
    segment = validations_by_header(template["Customers"])["Segment"]
    assert (segment.type, segment.formula1) == ("list", '"Consumer,Corporate,Home Office"')


def test_one_typed_example_row_per_sheet(template: openpyxl.Workbook) -> None:
    for sheet in SHEETS:
        assert template[sheet.name].max_row == 2
    stores, sales, products = template["Stores"], template["Sales"], template["Products"]
    assert stores["F2"].value == dt.datetime(2019, 3, 1) and stores["F2"].number_format == "yyyy-mm-dd"
    assert sales["C2"].value == dt.datetime(2026, 11, 2, 10, 15)
    assert sales["C2"].number_format == "yyyy-mm-dd hh:mm"
    assert sales["G2"].value == 2 and sales["H2"].value == 18.5 and sales["I2"].value == 0.1
    assert sales["J2"].value == "no" and products["J2"].value == "yes"


def test_template_bytes_are_reproducible(tmp_path: Path) -> None:
    first = write_template(tmp_path / "first.xlsx").read_bytes()
    second = write_template(tmp_path / "second.xlsx").read_bytes()
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()


def test_committed_template_is_up_to_date(tmp_path: Path) -> None:
    # Compare the unzipped parts: another zlib may compress the same parts to other bytes.
    fresh = write_template(tmp_path / "fresh.xlsx")
    with zipfile.ZipFile(fresh) as new, zipfile.ZipFile(COMMITTED_TEMPLATE) as committed:
        assert new.namelist() == committed.namelist()
        assert [i.date_time for i in new.infolist()] == [i.date_time for i in committed.infolist()]
        for name in new.namelist():
            assert new.read(name) == committed.read(name), (
                f"{name} differs: regenerate with `python -m sales_pipeline.excel.template`"
            )


SALES_HEADER = ["Order ID", "Sold At", "Quantity", "Unit Price", "Note"]


@pytest.fixture
def feedback(tmp_path: Path) -> openpyxl.Workbook:
    sheets = {
        "Sales": SheetRows(
            SALES_HEADER,
            {
                3: ["O-1", dt.date(2026, 11, 2), "abc", "42", "=1+1"],
                4: ["O-2", dt.datetime(2026, 11, 2, 10, 15), None, 12.5, "fine\x07 text"],
                7: ["O-2", dt.date(2026, 11, 3), 1, 2.0, dt.timedelta(hours=26)],
            },
        ),
        "Stock": SheetRows(["Product ID", "On Hand"], {5: ["P1", -3]}),
        "Unused": SheetRows(["A"], {}),
    }
    rejects = [
        RejectedCell("Sales", 3, "Quantity", "abc", "not a whole number"),
        RejectedCell("Sales", 3, "Unit Price", "42", "a number stored as text"),
        RejectedCell("Sales", 4, "Quantity", None, "required"),
        RejectedCell("Sales", 7, None, None, "duplicate key (Order ID O-2 is also in row 4)"),
        RejectedCell("Stock", 5, "On Hand", -3, "must be 0 or more"),
    ]
    path = write_feedback_workbook(tmp_path / "shop.feedback.xlsx", "shop.xlsx", sheets, rejects)
    return openpyxl.load_workbook(path)


def fill_colour(cell: openpyxl.cell.Cell) -> str | None:
    return cell.fill.fgColor.rgb[-6:] if cell.fill.fill_type == "solid" else None


def test_feedback_has_read_me_and_only_the_rejected_sheets_and_rows(feedback: openpyxl.Workbook) -> None:
    assert feedback.sheetnames == ["Read me", "Sales", "Stock"]
    read_me = [row for row in feedback["Read me"].iter_rows(values_only=True) if any(row)]
    assert read_me[0][0] == "Feedback for shop.xlsx"
    assert ("Sales", 3, 4) in read_me and ("Stock", 1, 1) in read_me
    assert any("drop it into the inbox again" in str(row[0]) for row in read_me)

    sales = feedback["Sales"]
    assert [cell.value for cell in sales[1]] == [*SALES_HEADER, "Problems", "Source Row"]
    assert [row[-1] for row in sales.iter_rows(min_row=2, values_only=True)] == [3, 4, 7]
    assert sales.freeze_panes == "A2"
    assert [cell.value for cell in sales[2]][-2] == (
        "Quantity: not a whole number ('abc'); Unit Price: a number stored as text ('42')"
    )
    assert sales["F3"].value == "Quantity: required"
    assert sales["F4"].value == "duplicate key (Order ID O-2 is also in row 4)"
    assert [cell.value for cell in feedback["Stock"][2]] == ["P1", -3, "On Hand: must be 0 or more (-3)", 5]


def test_feedback_marks_exactly_the_rejected_cells(feedback: openpyxl.Workbook) -> None:
    sales = feedback["Sales"]
    bad = {"C2": "not a whole number", "D2": "a number stored as text", "C3": "required"}
    for row in sales.iter_rows(min_row=2):
        for cell in row:
            if cell.coordinate in bad:
                assert fill_colour(cell) == BAD_CELL_COLOUR
                assert cell.comment is not None and cell.comment.text == bad[cell.coordinate]
            else:
                assert cell.comment is None, cell.coordinate
                whole_row_problem = cell.row == 4 and cell.column <= len(SALES_HEADER)
                assert fill_colour(cell) == (BAD_ROW_COLOUR if whole_row_problem else None), cell.coordinate
    assert feedback["Stock"]["B2"].comment.text == "must be 0 or more"


def test_feedback_writes_raw_values_back_as_they_were(feedback: openpyxl.Workbook) -> None:
    sales = feedback["Sales"]
    assert sales["B2"].value == dt.datetime(2026, 11, 2) and sales["B2"].is_date
    assert sales["B3"].value == dt.datetime(2026, 11, 2, 10, 15)
    assert sales["D2"].value == "42" and sales["D2"].data_type == "s"  # a number stored as text stays text
    assert sales["E2"].value == "=1+1" and sales["E2"].data_type == "s"  # never a formula
    assert sales["C3"].value is None and sales["D3"].value == 12.5
    assert sales["E3"].value == "fine text"  # the control character cannot be stored
    assert sales["E4"].value == "1 day, 2:00:00"


def test_feedback_on_a_redropped_feedback_workbook_does_not_stack_columns(tmp_path: Path) -> None:
    header = ["Order ID", "Quantity", "Problems", "Source Row"]
    sheets = {"Sales": SheetRows(header, {2: ["O-1", "abc", "Quantity: not a whole number ('abc')", 3]})}
    rejects = [RejectedCell("Sales", 2, "Quantity", "abc", "not a whole number")]
    path = write_feedback_workbook(tmp_path / "again.xlsx", "again.xlsx", sheets, rejects)
    sales = openpyxl.load_workbook(path)["Sales"]
    assert [cell.value for cell in sales[1]] == ["Order ID", "Quantity", "Problems", "Source Row"]
    assert [cell.value for cell in sales[2]] == ["O-1", "abc", "Quantity: not a whole number ('abc')", 2]


def test_a_reject_without_its_row_is_a_caller_error(tmp_path: Path) -> None:
    sheets = {"Sales": SheetRows(SALES_HEADER, {3: ["O-1", None, None, None, None]})}
    with pytest.raises(ValueError, match="row 9"):
        write_feedback_workbook(
            tmp_path / "x.xlsx", "x.xlsx", sheets, [RejectedCell("Sales", 9, "Quantity", 0, "must be 1 or more")]
        )
