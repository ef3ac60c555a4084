"""Workbooks as stores and suppliers really send them (issue 11): minimal sheets, leftovers of the template,
error cells, totals, copies of a sheet, ERP exports, ambiguous dates, invisible characters, repeated keys,
and an import that crashes. Real workbooks, the real embedded PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import openpyxl
import psycopg2
import pytest

from sales_pipeline.excel.importer import import_workbook
from sales_pipeline.excel.template import write_template
from sales_pipeline.warehouse import db
from sales_pipeline.warehouse.quality import NOT_IN_THE_FUTURE, RULES, check_rule
from sales_pipeline_tests.conftest import query, table_counts
from sales_pipeline_tests.workbooks import (
    SALES_HEADER,
    products,
    sales,
    write_html_export,
    write_workbook,
    write_xml_spreadsheet_2003,
)

REQUIRED_ONLY = ["Order ID", "Line", "Sold At", "Store ID", "Product ID", "Quantity", "Unit Price"]


def rejects(url: str) -> list[tuple]:
    return query(url, "SELECT sheet, row_number, column_name, value, reason FROM ops.import_rejects ORDER BY 1, 2, 3")


def by_target(result) -> dict:
    return {sheet.target: sheet for sheet in result.sheets}


def feedback_problems(result, sheet: str) -> dict[int, str]:
    """Source row -> the Problems text of each row of a feedback workbook's sheet."""
    feedback = openpyxl.load_workbook(result.feedback_path)[sheet]
    header = [cell.value for cell in feedback[1]]
    return {
        row[header.index("Source Row")]: row[header.index("Problems")]
        for row in feedback.iter_rows(min_row=2, values_only=True)
    }


# --- 1. optional columns left out --------------------------------------------------------------------------


@pytest.mark.parametrize("line_total", [False, True], ids=["required columns only", "with a Line Total"])
def test_a_sales_sheet_of_only_the_required_columns_loads_with_the_defaults(
    import_settings, folders, line_total, warehouse, empty_warehouse
):
    header = REQUIRED_ONLY + (["Line Total"] if line_total else [])
    rows = [header, ["A1", 1, dt.datetime(2026, 11, 2, 10), "S1", "P1", 3, 2.5] + ([7.5] if line_total else []),
            ["A1", 2, dt.datetime(2026, 11, 2, 10), "S1", "P2", 1, 4] + ([4] if line_total else [])]  # fmt: skip
    path = write_workbook(folders["inbox"] / "minimal.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert (result.status, result.rows_rejected) == ("loaded", 0), result
    assert query(
        empty_warehouse,
        "SELECT order_id, line_number, discount::float, promotion, revenue::float FROM core.sales ORDER BY 2",
    ) == [("A1", 1, 0.0, False, 7.5), ("A1", 2, 0.0, False, 4.0)]
    ledger = query(empty_warehouse, "SELECT file_name, status, rows_loaded FROM ops.import_ledger")
    assert ledger == [("minimal.xlsx", "loaded", 7)]


def test_a_price_list_without_active_leaves_a_products_active_flag_alone(
    import_settings, folders, warehouse, empty_warehouse
):
    catalogue = [["Product ID", "Name", "Category", "Active"], ["P1", "Old tea", "Tea", "no"]]
    import_workbook(
        warehouse.transaction,
        write_workbook(folders["inbox"] / "catalogue.xlsx", {"Products": catalogue}),
        import_settings,
    )
    prices = [["Product ID", "Name", "Category", "Unit Price"], ["P1", "Old tea", "Tea", 9.5]]
    import_workbook(
        warehouse.transaction, write_workbook(folders["inbox"] / "prices.xlsx", {"Products": prices}), import_settings
    )

    assert query(empty_warehouse, "SELECT active, unit_price::float FROM core.products") == [(False, 9.5)]


# --- 2. what the core checks forbid is rejected per cell, with the same rule -----------------------------


def test_what_the_core_checks_forbid_is_rejected_cell_by_cell_with_the_checks_reason(
    import_settings, folders, warehouse, empty_warehouse
):
    rows = sales(6)
    rows[1][SALES_HEADER.index("Quantity")] = 1_000_000_000  # Excel row 2
    rows[2][SALES_HEADER.index("Unit Price")] = 250_000  # row 3
    next_year = dt.datetime.now().replace(microsecond=0) + dt.timedelta(days=365)
    rows[3][SALES_HEADER.index("Sold At")] = next_year  # row 4
    stock = [["Product ID", "Store ID", "As Of", "On Hand"], ["P1", "S1", dt.date(2026, 11, 2), -4],
             ["P404", "S1", dt.date(2026, 11, 2), 5]]  # fmt: skip
    path = write_workbook(folders["inbox"] / "slips.xlsx", {"Products": products(), "Sales": rows, "Stock": stock})

    result = import_workbook(warehouse.transaction, path, import_settings)

    url = empty_warehouse
    assert (result.status, by_target(result)["Sales"].rows_loaded, by_target(result)["Stock"].rows_loaded) == (
        "loaded_with_rejects",
        3,
        0,
    )
    quantity, price = (r for r in RULES["quantities_and_prices_in_range"].cells if r.reason.startswith("more than"))
    assert rejects(url) == [
        ("Sales", 2, "Quantity", "1000000000", quantity.reason),
        ("Sales", 3, "Unit Price", "250000", price.reason),
        ("Sales", 4, "Sold At", next_year.isoformat(), NOT_IN_THE_FUTURE.reason),
        ("Stock", 2, "On Hand", "-4", "must be 0 or more"),
        ("Stock", 3, "Product ID", "P404", "unknown product: not in the Products sheet or the warehouse"),
    ]
    assert quantity.reason == "more than 10,000: surely a typing slip"
    assert NOT_IN_THE_FUTURE.reason.startswith("in the future")
    with db.transaction(url) as cursor:  # the warehouse holds nothing its own checks call wrong
        for rule in RULES:
            assert check_rule(cursor, rule).passed, rule
    assert feedback_problems(result, "Sales")[4] == f"Sold At: {NOT_IN_THE_FUTURE.reason} ({next_year})"


# --- 3. one reading of dates per column -------------------------------------------------------------------


def test_a_column_of_text_dates_reads_one_way_and_contradicting_cells_are_rejected(
    import_settings, folders, warehouse, empty_warehouse
):
    rows = [REQUIRED_ONLY,
            ["A1", 1, "10/05/2026", "S1", "P1", 1, 5],  # day or month first: the column decides
            ["A2", 1, "10/15/2026", "S1", "P1", 1, 5],  # only month first: the column's reading
            ["A3", 1, "11/16/2026", "S1", "P1", 1, 5],
            ["A4", 1, "13/05/2026", "S1", "P1", 1, 5]]  # only day first: contradicts the column  # fmt: skip
    path = write_workbook(folders["inbox"] / "us dates.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)  # the setting says day first

    assert result.status == "loaded_with_rejects"
    assert query(empty_warehouse, "SELECT order_id, sale_date::text FROM core.sales ORDER BY 1") == [
        ("A1", "2026-10-05"), ("A2", "2026-10-15"), ("A3", "2026-11-16")
    ]  # fmt: skip
    assert rejects(empty_warehouse) == [
        ("Sales", 5, "Sold At", "13/05/2026", "can only be read day first, but this column's dates read month first"
         " (as '10/15/2026' in row 3 does): write it as yyyy-mm-dd"),
    ]  # fmt: skip


def test_a_date_typed_past_year_9999_is_rejected_and_the_other_rows_load(
    import_settings, folders, warehouse, empty_warehouse
):
    path = write_workbook(folders["inbox"] / "typo.xlsx", {"Products": products(), "Sales": sales(3)})
    workbook = openpyxl.load_workbook(path)
    typo = workbook["Sales"].cell(3, SALES_HEADER.index("Sold At") + 1)
    typo.value, typo.number_format = 4500100, "yyyy-mm-dd"  # 45001 with two zeros too many
    workbook.save(path)

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "loaded_with_rejects", result.reason
    assert [row[:3] for row in rejects(empty_warehouse)] == [("Sales", 3, "Sold At")]
    assert query(empty_warehouse, "SELECT count(*) FROM core.sales") == [(2,)]


# --- 4. Excel error cells -----------------------------------------------------------------------------------


def test_cells_showing_an_excel_error_are_rejected_with_the_error(import_settings, folders, warehouse, empty_warehouse):
    rows = [[*SALES_HEADER, "Line Total"]] + [[*row, None] for row in sales(4)[1:]]
    rows[1][SALES_HEADER.index("Product ID")] = "#N/A"  # a VLOOKUP that found nothing (openpyxl: an error cell)
    rows[2][SALES_HEADER.index("Store ID")] = "#REF!"
    rows[3][len(SALES_HEADER)] = "#DIV/0!"  # a Line Total computed by a failing formula
    path = write_workbook(folders["inbox"] / "errors.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert (result.status, result.rows_loaded - 5, result.rows_rejected) == ("loaded_with_rejects", 1, 3)
    assert rejects(empty_warehouse) == [
        ("Sales", 2, "Product ID", "#N/A", "the cell shows #N/A: fix the formula or type the value"),
        ("Sales", 3, "Store ID", "#REF!", "the cell shows #REF!: fix the formula or type the value"),
        ("Sales", 4, "Line Total", "#DIV/0!", "the cell shows #DIV/0!: fix the formula or type the value"),
    ]
    assert (
        feedback_problems(result, "Sales")[4]
        == "Line Total: the cell shows #DIV/0!: fix the formula or type the value ('#DIV/0!')"
    )


# --- 5. copies of a sheet, and sheets not read ---------------------------------------------------------------


def test_every_copy_of_a_template_sheet_loads_and_the_sheets_not_read_are_named(
    import_settings, folders, warehouse, empty_warehouse
):
    second = sales(4)
    for row in second[1:]:
        row[0] = "B" + row[0]
    sheets = {"Products": products(), "Sales": sales(6), "Sales (2)": second, "Sales notes": [["call Lyon"]],
              "Pivot": [["Store", "Revenue"], ["S1", 10]]}  # fmt: skip
    path = write_workbook(folders["inbox"] / "two sales sheets.xlsx", sheets)

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "loaded"
    assert [(s.sheet, s.rows_loaded) for s in result.sheets if s.target == "Sales"] == [("Sales", 6), ("Sales (2)", 4)]
    assert query(empty_warehouse, "SELECT count(*) FROM core.sales") == [(10,)]
    assert result.ignored_sheets == {
        "Sales notes": "not read as Sales: sheet 'Sales notes': required column(s) missing: Order ID, Line, Sold At,"
        " Store ID, Product ID, Quantity, Unit Price (headers found in row 1: 'call Lyon')",
        "Pivot": "not a sheet of the template (Products, Stores, Customers, Sales, Stock, Calendar, Promotions)",
    }
    (ledger,) = query(empty_warehouse, "SELECT ignored_sheets FROM ops.import_ledger")
    assert ledger[0] == result.ignored_sheets


def test_a_key_repeated_across_copies_of_a_sheet_is_one_key_space(import_settings, folders, warehouse, empty_warehouse):
    again = [SALES_HEADER, list(sales(2)[1])]
    again[1][SALES_HEADER.index("Quantity")] = 9  # the same line as Sales row 2, with another quantity
    path = write_workbook(
        folders["inbox"] / "again.xlsx", {"Products": products(), "Sales": sales(2), "Sales 2": again}
    )

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert query(empty_warehouse, "SELECT order_id, line_number FROM core.sales") == [("O00000", 2)]
    assert [(sheet, row, reason) for sheet, row, _, _, reason in rejects(empty_warehouse)] == [
        ("Sales", 2, "the key (Order ID O00000, Line 1) is also in row 2 of 'Sales 2' with other values: keep one row"),
        ("Sales 2", 2, "the key (Order ID O00000, Line 1) is also in row 2 of 'Sales' with other values: keep one row"),
    ]
    assert result.status == "loaded_with_rejects"


# --- 6. the template's example rows -------------------------------------------------------------------------


def test_the_templates_example_rows_are_skipped_and_counted(
    import_settings, folders, tmp_path, warehouse, empty_warehouse
):
    url = empty_warehouse
    master = {"Products": [["Product ID", "Name", "Category", "Unit Price"], ["P0001", "House blend", "Coffee", 12]],
              "Stores": [["Store ID", "Name"], ["S01", "Paris Bastille"]],
              "Customers": [["Customer ID", "Name"], ["C00001", "Ada Lovelace"]]}  # fmt: skip
    import_workbook(warehouse.transaction, write_workbook(folders["inbox"] / "master.xlsx", master), import_settings)
    template = openpyxl.load_workbook(write_template(tmp_path / "template.xlsx"))  # example rows left in place
    template["Sales"].append(["T-1", 1, dt.datetime(2026, 11, 3, 9), "S01", "C00001", "P0001", 1, 12, 0, "no"])
    path = folders["inbox"] / "filled template.xlsx"
    template.save(path)

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "loaded", result
    assert {s.target: s.rows_example for s in result.sheets} == dict.fromkeys(
        ["Products", "Stores", "Customers", "Sales", "Stock", "Calendar", "Promotions"], 1
    )
    assert by_target(result)["Sales"].rows_loaded == 1 and result.rows_loaded == 1
    assert query(url, "SELECT name, unit_price::float FROM core.products") == [("House blend", 12.0)]
    assert query(url, "SELECT name FROM core.stores") == [("Paris Bastille",)]
    assert query(url, "SELECT name FROM core.customers") == [("Ada Lovelace",)]
    assert query(url, "SELECT order_id FROM core.sales") == [("T-1",)]
    (sheets,) = query(url, "SELECT sheets FROM ops.import_ledger WHERE file_name = 'filled template.xlsx'")[0]
    assert {s["target"]: s["rows_example"] for s in sheets}["Sales"] == 1


def test_a_template_holding_only_its_examples_is_rejected(
    import_settings, folders, tmp_path, warehouse, empty_warehouse
):
    path = write_template(folders["inbox"] / "untouched.xlsx")

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "rejected"
    assert result.reason == (
        "no data rows: 'Products', 'Stores', 'Customers', 'Sales', 'Stock', 'Calendar', 'Promotions' hold only the"
        " template's example rows"
    )
    assert table_counts(empty_warehouse)["core.products"] == 0


# --- 7. ERP exports: HTML and XML Spreadsheet 2003 named .xls ------------------------------------------------


def test_an_html_table_named_xls_imports_like_a_sheet(import_settings, folders, warehouse, empty_warehouse):
    rows = [[*REQUIRED_ONLY, "Line Total"],
            ["W-1", 1, "02/11/2026 10:15", "S1", "P1", "2", "12,50", "25,00"],
            ["W-1", 2, "02/11/2026 10:15", "S1", "P2", "1", "3,20", "#N/A"]]  # fmt: skip
    write_workbook(folders["inbox"] / "catalogue.xlsx", {"Products": products()})
    import_workbook(warehouse.transaction, folders["inbox"] / "catalogue.xlsx", import_settings)
    path = write_html_export(folders["inbox"] / "export.xls", "Sales", rows)

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert (result.status, by_target(result)["Sales"].rows_loaded) == ("loaded_with_rejects", 1), result
    assert query(empty_warehouse, "SELECT order_id, sale_date::text, revenue::float FROM core.sales") == [
        ("W-1", "2026-11-02", 25.0)
    ]
    assert rejects(empty_warehouse)[0][3:] == (
        "#N/A", "the cell shows #N/A: fix the formula or type the value"
    )  # fmt: skip


def test_an_xml_spreadsheet_2003_named_xls_imports_with_its_sheets_and_types(
    import_settings, folders, warehouse, empty_warehouse
):
    rows = [REQUIRED_ONLY, ["X-1", 1, dt.datetime(2026, 11, 2, 10, 15), "S1", "P1", 2, 12.5],
            ["X-1", 2, dt.datetime(2026, 11, 2, 10, 15), "S1", "P2", 1, "#REF!"]]  # fmt: skip
    path = write_xml_spreadsheet_2003(folders["inbox"] / "erp.xls", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert (result.status, result.rows_loaded) == ("loaded_with_rejects", 6), result
    assert query(empty_warehouse, "SELECT order_id, sold_at AT TIME ZONE 'UTC' FROM core.sales") == [
        ("X-1", dt.datetime(2026, 11, 2, 10, 15))
    ]
    assert rejects(empty_warehouse)[0][2:] == (
        "Unit Price", "#REF!", "the cell shows #REF!: fix the formula or type the value"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"Order ID;Sold At\r\nO1;02/11/2026\r\n", "the file is named .xls but holds text (comma- or tab-separated "
         "values?), not an Excel workbook: open it in Excel and save it as .xlsx"),
        (bytes(range(256)) * 4, "the file is named .xls but holds neither an Excel workbook nor an Excel export "
         "(HTML, XML Spreadsheet 2003): open it in Excel and save it as .xlsx"),
    ],
    ids=["csv text", "binary"],
)  # fmt: skip
def test_an_xls_that_is_nothing_excel_reads_says_what_it_is_without_raw_bytes(
    import_settings, folders, content, reason, warehouse
):
    path = folders["inbox"] / "export.xls"
    path.write_bytes(content)

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert (result.status, result.reason) == ("rejected", reason)
    assert "\\x" not in result.reason


# --- 9. totals and subtotals --------------------------------------------------------------------------------


def test_totals_and_subtotals_are_skipped_and_counted(import_settings, folders, warehouse, empty_warehouse):
    lines = sales(4)[1:]
    quantity = SALES_HEADER.index("Quantity") + 1
    column = openpyxl.utils.get_column_letter(quantity)
    rows = [SALES_HEADER, lines[0], lines[1],
            ["O00000 Total"] + [None] * (quantity - 2) + [f"=SUBTOTAL(9,{column}2:{column}3)"],  # Data > Subtotal
            lines[2], lines[3],
            [None, None, None, "S1 Total", None, None, 4],  # a label and a typed number, no formula
            ["Grand Total"] + [None] * (quantity - 2) + [f"=SUBTOTAL(9,{column}2:{column}7)"],
            ["TOTAL:", None, None, None, None, None, f"=SUM({column}2:{column}7)"]]  # fmt: skip
    path = write_workbook(folders["inbox"] / "with totals.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert (result.status, result.feedback_path) == ("loaded", None), rejects(empty_warehouse)
    sheet = by_target(result)["Sales"]
    assert (sheet.rows_read, sheet.rows_loaded, sheet.rows_summary, sheet.rows_rejected) == (8, 4, 4, 0)
    assert query(empty_warehouse, "SELECT count(*) FROM core.sales") == [(4,)]


# --- 10. invisible characters -------------------------------------------------------------------------------


def test_zero_width_and_no_break_spaces_are_removed_from_keys(import_settings, folders, warehouse, empty_warehouse):
    rows = sales(3)
    rows[1][SALES_HEADER.index("Product ID")] = "P1\u200b"  # pasted from a chat: a zero-width space after it
    rows[2][SALES_HEADER.index("Product ID")] = "\ufeffP2\u00a0"  # a byte-order mark and a no-break space
    rows[3][SALES_HEADER.index("Store ID")] = "S\u200d1"
    path = write_workbook(folders["inbox"] / "pasted.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert (result.status, result.rows_rejected) == ("loaded", 0)
    assert query(empty_warehouse, "SELECT product_id, store_id FROM core.sales ORDER BY 1") == [
        ("P1", "S1"), ("P2", "S2"), ("P3", "S1")
    ]  # fmt: skip


# --- 11. repeated keys ---------------------------------------------------------------------------------------


def test_repeats_load_once_and_a_key_with_other_values_loads_from_none_of_its_rows(
    import_settings, folders, warehouse, empty_warehouse
):
    rows = sales(4)
    rows.append(list(rows[1]))  # row 6: the same line as row 2, the same values: a duplicate
    conflicting = list(rows[3])
    conflicting[SALES_HEADER.index("Quantity")] = 7
    rows.append(conflicting)  # row 7: the same line as row 4 with another quantity
    path = write_workbook(folders["inbox"] / "repeats.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    sheet = by_target(result)["Sales"]
    assert (sheet.rows_loaded, sheet.rows_duplicate, sheet.rows_rejected) == (3, 1, 2)
    key = "the key (Order ID O00001, Line 1)"
    assert [(row, reason) for _, row, _, _, reason in rejects(empty_warehouse)] == [
        (4, f"{key} is also in row 7 with other values: keep one row"),
        (7, f"{key} is also in row 4 with other values: keep one row"),
    ]
    assert query(empty_warehouse, "SELECT count(*) FROM core.sales WHERE order_id = 'O00001'") == [(1,)]


# --- 8. a crash is recorded and the file put away -----------------------------------------------------------


def test_an_import_that_crashes_is_recorded_as_failed_and_its_file_moved_to_rejected(
    import_settings, folders, warehouse, empty_warehouse
):
    url = empty_warehouse
    path = write_workbook(folders["inbox"] / "crash.xlsx", {"Products": products(), "Sales": sales(5)})
    original = path.read_bytes()
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:  # a fault of the pipeline's own
        cursor.execute(
            "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'a bug in a trigger'; END $$;"
            " CREATE TRIGGER refuse BEFORE INSERT ON core.sales FOR EACH STATEMENT EXECUTE FUNCTION public.refuse()"
        )
    try:
        with pytest.raises(psycopg2.errors.RaiseException, match="a bug in a trigger"):
            import_workbook(warehouse.transaction, path, import_settings)
    finally:
        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse ON core.sales; DROP FUNCTION public.refuse()")

    (ledger,) = query(url, "SELECT file_name, status, reason, archived_path FROM ops.import_ledger")
    assert ledger[:2] == ("crash.xlsx", "failed")
    assert ledger[2].startswith("the import failed (RaiseException: a bug in a trigger)")
    assert not path.exists()  # out of the inbox: not retried forever
    kept = Path(ledger[3])
    assert kept.is_relative_to(folders["rejected"]) and kept.read_bytes() == original
    counts = table_counts(url)
    assert (counts["core.products"], counts["core.sales"], counts["raw.excel_rows"]) == (
        0,
        0,
        0,
    )  # nothing half-written
    # Once the fault is fixed, the same bytes dropped again load: a failure is not an import of them.
    path.write_bytes(original)
    assert import_workbook(warehouse.transaction, path, import_settings).status == "loaded"
    assert json.loads(json.dumps(query(url, "SELECT status FROM ops.import_ledger ORDER BY 1"))) == [
        ["failed"], ["loaded"]
    ]  # fmt: skip


# --- 13. a large sheet is read a slice at a time -------------------------------------------------------------


def test_a_sheet_read_in_slices_reads_as_calamine_reads_it_whole(monkeypatch, tmp_path):
    """Large sheets are cut into slices of their XML for calamine (memory); small slices here, so that a few
    thousand rows make many, with an error cell, a blank row, a gap in the row numbers and a first column B."""
    import python_calamine

    from sales_pipeline.excel import read

    rows = sales(3000)
    rows[1500][SALES_HEADER.index("Quantity")] = "#REF!"
    rows[2000] = [None] * len(SALES_HEADER)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Sales"
    for number, row in enumerate(rows, start=1):
        for column, value in enumerate(row, start=2):
            sheet.cell(number if number <= 2900 else number + 99, column, value)  # rows 2901-2999 left out
    path = tmp_path / "large.xlsx"
    workbook.save(path)
    monkeypatch.setattr(read, "SLICE_BYTES", 20_000)

    whole = read._read_whole(python_calamine.CalamineWorkbook.from_path(str(path)), "Sales")
    sliced = read.read_workbook(path)["Sales"]

    with zipfile.ZipFile(path) as archive, archive.open("xl/worksheets/sheet1.xml") as xml:
        assert len(list(read._xml_slices(xml))) > 20  # many slices indeed
    assert sliced.first_column_number == whole.first_column_number == 2
    assert sliced.frame.index[[0, -1]].tolist() == [1, 3100]
    assert sliced.frame.index.is_unique and set(sliced.frame.index) <= set(whole.frame.index)
    expected = whole.frame.loc[sliced.frame.index]
    assert sliced.frame.fillna("").to_numpy().tolist() == expected.fillna("").to_numpy().tolist()
