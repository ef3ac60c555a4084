"""Cell parsing and validation (sales_pipeline.excel.parse): pure functions, no database."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from sales_pipeline.excel.layout import CUSTOMERS, PRODUCTS, SALES, STOCK, Sheet
from sales_pipeline.excel.parse import CellProblem, ParseOptions, cell_text, parse_column, parse_sheet
from sales_pipeline.excel.read import read_workbook, uses_1904_dates
from sales_pipeline_tests.conftest import XLSX_CORPUS

FIRST_ROW = 2  # Excel row of the first data row under a header in row 1


def parse(sheet: Sheet, column: str, cells: list[object], **options: object) -> tuple[list[object], list[str | None]]:
    """Parse one column of cells; values with blanks as None, and the reason per cell (None when fine)."""
    raw = pd.Series(cells, index=range(FIRST_ROW, FIRST_ROW + len(cells)), dtype=object)
    values, reasons = parse_column(raw, sheet.column_by_name[column], ParseOptions(**options))
    assert list(values.index) == list(raw.index) == list(reasons.index)
    return (
        [None if pd.isna(v) else v for v in values],
        [r if isinstance(r, str) else None for r in reasons],
    )


def one(sheet: Sheet, column: str, cell: object, **options: object) -> tuple[object, str | None]:
    values, reasons = parse(sheet, column, [cell], **options)
    return values[0], reasons[0]


# --- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("  12 ", 12.0),
        ("12,50", 12.5),  # decimal comma
        ("1,250.00", 1250.0),  # thousands comma
        ("€ 3.20", 3.2),
        ("3.20 €", 3.2),
        ("$1,000.00", 1000.0),
        ("1\u202f000,5", 1000.5),  # narrow no-break space between thousands, as French Excel writes it
        (12, 12.0),
        (7.25, 7.25),
    ],
)
def test_numbers_stored_as_text_are_read(cell, expected):
    assert one(SALES, "unit_price", cell) == (pytest.approx(expected), None)


@pytest.mark.parametrize(
    ("cell", "shown"),
    [(22.368000000000002, "22.368"), (731.9399999999999, "731.94"), (0.1 + 0.2, "0.3"), (957.5775, "957.5775")],
)
def test_an_amount_reads_as_excel_shows_it(cell, shown):
    # The double a cell stores can read back with binary noise; the warehouse keeps amounts exactly, so
    # they are read to Excel's 15 significant digits, as the sender sees them.
    assert repr(one(SALES, "revenue", cell)[0]) == shown


@pytest.mark.parametrize(("cell", "expected"), [("15%", 0.15), ("15 %", 0.15), ("12,5%", 0.125), (0.2, 0.2)])
def test_a_percentage_is_a_rate(cell, expected):
    assert one(SALES, "discount", cell) == (pytest.approx(expected), None)


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("15%", "a percentage where a plain number is expected"),
        ("abc", "not a number"),
        ("12 apples", "not a number"),
        (True, "a yes/no value where a number is expected"),
        (dt.date(2026, 11, 2), "a date or time where a number is expected"),
        (dt.timedelta(hours=2), "a date or time where a number is expected"),
        # Python's float() reads these; no sender means them, and letting them through broke the load.
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("-Infinity", "not a number"),
    ],
)
def test_what_is_not_a_price_is_rejected_with_its_reason(cell, reason):
    assert one(SALES, "unit_price", cell) == (None, reason)


@pytest.mark.parametrize(("cell", "expected"), [("2.0", 2), (2.0, 2), (" 3 ", 3), ("1,000.00", 1000), (40, 40)])
def test_whole_numbers(cell, expected):
    value, reason = one(SALES, "quantity", cell)
    assert (value, reason) == (expected, None)
    assert isinstance(value, int | pd.Int64Dtype().type)


@pytest.mark.parametrize(("cell", "reason"), [(2.5, "not a whole number"), ("2,5", "not a whole number"),
                                              ("two", "not a number"), ("nan", "not a number")])  # fmt: skip
def test_fractions_and_words_are_not_whole_numbers(cell, reason):
    assert one(SALES, "quantity", cell) == (None, reason)


def test_whole_number_column_is_nullable_integers_with_the_bad_cells_left_out():
    values, reasons = parse(SALES, "quantity", [1, "2", 2.5, None, 4.0])
    assert values == [1, 2, None, None, 4]
    assert reasons == [None, None, "not a whole number", "a value is required here", None]


@pytest.mark.parametrize("cell", [3e9, 1e30])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_quantity_too_large_for_the_warehouse_is_rejected(cell):
    # 3e9 parses but fails the whole load (PostgreSQL integer); 1e30 raises TypeError in the Int64 cast.
    value, reason = one(SALES, "quantity", cell)
    assert value is None and reason


def test_a_european_amount_with_thousands_dots_is_read():
    assert one(SALES, "unit_price", "1.250,00") == (1250.0, None)
    assert one(SALES, "unit_price", "1,250.00") == (1250.0, None)


def test_a_lone_thousands_comma_is_ambiguous_and_rejected():
    value, reason = one(SALES, "quantity", "1,000")
    assert value is None and reason.startswith("ambiguous: 1,500 may be 1500 or 1.5")


# --- flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("yes", True), ("no", False), ("Oui", True), ("non", False), (" YES ", True), ("y", True), ("x", True),
     (1, True), (0, False), (1.0, True), ("1", True), ("0", False), (True, True), (False, False),
     ("True", True), ("false", False), ("vrai", True), ("faux", False)],
)  # fmt: skip
def test_flags(cell, expected):
    assert one(PRODUCTS, "active", cell) == (expected, None)


@pytest.mark.parametrize("cell", ["maybe", 2, "si", 0.5])
def test_what_is_not_yes_or_no_is_rejected(cell):
    assert one(PRODUCTS, "active", cell) == (None, "not yes or no")


# --- dates -----------------------------------------------------------------------------------


def test_real_date_cells_are_kept_and_a_date_column_drops_the_time():
    cells = [dt.datetime(2026, 11, 2, 10, 15), dt.date(2026, 11, 3), None]
    assert parse(SALES, "sold_at", cells) == (
        [pd.Timestamp("2026-11-02 10:15"), pd.Timestamp("2026-11-03"), None],
        [None, None, "a value is required here"],
    )
    assert parse(STOCK, "as_of", cells[:2]) == ([pd.Timestamp("2026-11-02"), pd.Timestamp("2026-11-03")], [None, None])


@pytest.mark.parametrize(
    ("serial", "date1904", "expected"),
    [
        (46328, False, "2026-11-02"),
        (46328.5, False, "2026-11-02 12:00"),
        (46328.75, False, "2026-11-02 18:00"),
        (44866.5, True, "2026-11-02 12:00"),  # the same instant counted from 1904: 1,462 days fewer
        (46328.5, True, "2030-11-03 12:00"),
        (1, False, "1899-12-31"),
        (0, True, None),  # 1904-01-01 is serial 0, but a 0 in a date column is far likelier a blank
    ],
)
def test_excel_serial_numbers_in_both_date_systems(serial, date1904, expected):
    value, reason = one(SALES, "sold_at", serial, date1904=date1904)
    if expected is None:
        assert (value, reason) == (None, "not a date (number out of Excel's date range)")
    else:
        assert (value, reason) == (pd.Timestamp(expected), None)


@pytest.mark.parametrize("dayfirst", [True, False])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-04", "2026-11-04"),
        ("2026-11-04 14:05", "2026-11-04 14:05"),
        ("2026-11-04T14:05:30", "2026-11-04 14:05:30"),
        ("2026-11-04 14:05:30.250", "2026-11-04 14:05:30.250"),
        # An explicit offset names an instant: kept as UTC wall time, month still the middle field.
        ("2026-11-02T10:15:00+01:00", "2026-11-02 09:15"),
        ("2026-11-02T10:15:00Z", "2026-11-02 10:15"),
    ],
)
def test_iso_text_dates_are_year_month_day_whatever_the_day_order(text, expected, dayfirst):
    assert one(SALES, "sold_at", text, dayfirst=dayfirst) == (pd.Timestamp(expected), None)


@pytest.mark.parametrize(
    ("text", "dayfirst", "expected"),
    [
        ("03/04/2026", True, "2026-04-03"),
        ("03/04/2026", False, "2026-03-04"),
        ("03/11/2026 14:05", True, "2026-11-03 14:05"),
        ("11/03/2026 14:05", False, "2026-11-03 14:05"),
        ("3 November 2026", True, "2026-11-03"),
        ("Nov 3, 2026", False, "2026-11-03"),
    ],
)
def test_text_dates_follow_the_day_order_setting(text, dayfirst, expected):
    assert one(SALES, "sold_at", text, dayfirst=dayfirst) == (pd.Timestamp(expected), None)


def test_a_mappings_date_format_is_applied_exactly():
    values, reasons = parse(SALES, "sold_at", ["02.11.2026", "2026-11-02", dt.datetime(2026, 11, 5, 8)],
                            date_format="%d.%m.%Y")  # fmt: skip
    assert values == [pd.Timestamp("2026-11-02"), None, pd.Timestamp("2026-11-05 08:00")]
    assert reasons == [None, "not a date (expected %d.%m.%Y)", None]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        (dt.timedelta(hours=10, minutes=30), "a time without a date"),  # a duration cell, [h]:mm
        (dt.time(10, 30), "a time without a date"),  # a time-of-day cell; used to become today's date
        ("31/02/2026", "not a date"),
        ("soon", "not a date"),
        ("11", "not a date"),
        (0.5, "not a date (number out of Excel's date range)"),
        (3_000_000, "not a date (number out of Excel's date range)"),
        (True, "a yes/no value where a date is expected"),
    ],
)
def test_what_is_not_a_date_is_rejected_with_its_reason(cell, reason):
    assert one(SALES, "sold_at", cell) == (None, reason)
    assert one(STOCK, "as_of", cell) == (None, reason)


def test_a_date_column_where_every_cell_is_bad_reports_every_cell():
    # Every cell failing (a wrong date_format, say) used to crash with AttributeError instead.
    assert parse(SALES, "sold_at", ["32/13/2026", None, "soon"]) == (
        [None, None, None],
        ["not a date", "a value is required here", "not a date"],
    )
    assert parse(SALES, "sold_at", ["2.11.2026"], date_format="%Y-%m-%d") == (
        [None],
        ["not a date (expected %Y-%m-%d)"],
    )


@pytest.mark.parametrize("text", ["12:30", "today", "now"])
def test_text_without_a_date_is_not_a_date(text):
    value, reason = one(SALES, "sold_at", text)
    assert value is None and reason


# --- blanks, defaults and text ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sheet", "column", "default"),
    [(SALES, "discount", 0), (SALES, "promotion", False), (PRODUCTS, "active", True), (STOCK, "on_order", 0)],
)
def test_blanks_take_the_columns_default(sheet, column, default):
    values, reasons = parse(sheet, column, [None, "   ", float("nan")])
    assert values == [default] * 3
    assert reasons == [None] * 3


@pytest.mark.parametrize(
    ("sheet", "column"),
    [(SALES, "order_id"), (SALES, "quantity"), (SALES, "unit_price"), (SALES, "sold_at"), (STOCK, "as_of"),
     (PRODUCTS, "name")],
)  # fmt: skip
def test_required_blanks_are_rejected(sheet, column):
    assert parse(sheet, column, [None, " \n ", ""])[1] == ["a value is required here"] * 3


def test_optional_blanks_stay_blank():
    assert parse(SALES, "customer_id", [None, "  ", "C1"]) == ([None, None, "C1"], [None, None, None])
    assert parse(STOCK, "on_hand", [None])[1] == ["a value is required here"]
    assert parse(PRODUCTS, "unit_cost", [None, ""]) == ([None, None], [None, None])


@pytest.mark.parametrize(
    ("cell", "text"),
    [("  Espresso   beans\n1kg ", "Espresso beans 1kg"), (1001.0, "1001"), (12.5, "12.5"), (7, "7"),
     (dt.date(2026, 11, 2), "2026-11-02"), ("   ", None), (None, None)],
)  # fmt: skip
def test_text_cells_are_trimmed_and_codes_typed_as_numbers_read_back(cell, text):
    assert cell_text(cell) == text
    assert one(PRODUCTS, "product_id", cell)[0] == text


# --- ranges and allowed values (pandera) -----------------------------------------------------


def frame(rows: dict[int, dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index").astype(object)


def test_ranges_are_checked_and_every_problem_of_a_row_is_reported():
    base = {"order_id": "O1", "line_number": 1, "sold_at": "2026-11-02", "store_id": "S1", "product_id": "P1",
            "quantity": 2, "unit_price": 10, "discount": 0}  # fmt: skip
    raw = frame({
        2: base,
        3: base | {"quantity": 0},
        4: base | {"discount": 1.5, "unit_price": -3},  # two problems in one row: both reported
        5: base | {"discount": "150%", "line_number": 0},
        6: base | {"quantity": "abc", "discount": -0.1},  # a parse problem and a range problem
    })  # fmt: skip

    typed, problems = parse_sheet(raw, SALES, ParseOptions())

    assert sorted(problems, key=lambda p: (p.row_number, p.column)) == [
        CellProblem(3, "quantity", 0, "must be 1 or more"),
        CellProblem(4, "discount", 1.5, "must be between 0 and 1"),
        CellProblem(4, "unit_price", -3, "must be 0 or more"),
        CellProblem(5, "discount", "150%", "must be between 0 and 1"),
        CellProblem(5, "line_number", 0, "must be 1 or more"),
        CellProblem(6, "discount", -0.1, "must be between 0 and 1"),
        CellProblem(6, "quantity", "abc", "not a number"),
    ]
    assert list(typed.index) == [2, 3, 4, 5, 6]
    assert typed.loc[2].to_dict() == {
        "order_id": "O1", "line_number": 1, "sold_at": pd.Timestamp("2026-11-02"), "store_id": "S1",
        "product_id": "P1", "quantity": 2, "unit_price": 10.0, "discount": 0.0,
    }  # fmt: skip


def test_lead_time_must_be_between_0_and_365():
    raw = frame({2: {"product_id": "P1", "name": "A", "category": "C", "lead_time_days": 400},
                 3: {"product_id": "P2", "name": "B", "category": "C", "lead_time_days": "14"}})  # fmt: skip
    _, problems = parse_sheet(raw, PRODUCTS, ParseOptions())
    assert problems == [CellProblem(2, "lead_time_days", 400, "must be between 0 and 365")]


def test_a_value_outside_the_choices_is_rejected_with_the_choices():
    raw = frame({2: {"customer_id": "C1", "segment": "VIP"}, 3: {"customer_id": "C2", "segment": "Corporate"},
                 4: {"customer_id": "C3", "segment": None}})  # fmt: skip
    _, problems = parse_sheet(raw, CUSTOMERS, ParseOptions())
    assert problems == [CellProblem(2, "segment", "VIP", "must be one of Consumer, Corporate, Home Office")]


# --- real workbooks: the 1904 date system -----------------------------------------------------

needs_corpus = pytest.mark.skipif(not XLSX_CORPUS.is_dir(), reason=f"{XLSX_CORPUS} is absent")


def first_column_serials(path: Path) -> list[str]:
    """The stored numbers of column A, straight from the sheet's XML (what a date cell really holds)."""
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    return re.findall(r'<c r="A\d+"[^>]*><v>([^<]*)</v>', xml)


@needs_corpus
def test_a_1904_workbook_reads_the_same_dates_as_a_1900_one():
    path_1900, path_1904 = XLSX_CORPUS / "date.xlsx", XLSX_CORPUS / "date_1904.xlsx"
    assert uses_1904_dates(path_1904) is True
    assert uses_1904_dates(path_1900) is False
    # The files store different numbers for the same days...
    assert first_column_serials(path_1900)[:2] == ["44197", "44198"]
    assert first_column_serials(path_1904)[:2] == ["42735", "42736"]

    parsed = {}
    for path in (path_1900, path_1904):
        (sheet,) = read_workbook(path).values()
        cells = [row[0] for row in sheet.rows]
        options = {"date1904": uses_1904_dates(path)}
        parsed[path.name] = (parse(STOCK, "as_of", cells, **options), parse(SALES, "sold_at", cells, **options))
        # ...and the same plain numbers, as a date column without a date format would hold them.
        serials = [float(s) for s in first_column_serials(path)[:2]]
        assert parse(STOCK, "as_of", serials, **options) == ([pd.Timestamp("2021-01-01"), pd.Timestamp("2021-01-02")],
                                                              [None, None])  # fmt: skip

    # ...which read as the same dates; the third cell is a duration (10 days 15:10), not a date.
    assert parsed["date_1904.xlsx"] == parsed["date.xlsx"]
    as_of, sold_at = parsed["date.xlsx"]
    assert as_of == ([pd.Timestamp("2021-01-01"), pd.Timestamp("2021-01-02"), None],
                     [None, None, "a time without a date"])  # fmt: skip
    assert sold_at == as_of


@needs_corpus
def test_an_iso_8601_workbooks_date_and_time_cells():
    (sheet,) = read_workbook(XLSX_CORPUS / "date_iso.xlsx").values()
    cells = [row[0] for row in sheet.rows[:3]]  # a date, a date and time, a time of day
    assert parse(SALES, "sold_at", cells) == (
        [pd.Timestamp("2021-01-01"), pd.Timestamp("2021-01-01 10:10:10"), None],
        [None, None, "a time without a date"],
    )
