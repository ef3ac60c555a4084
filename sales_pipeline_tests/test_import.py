"""The workbook importer end to end: real workbooks, the real embedded PostgreSQL."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openpyxl
import psycopg2
import pytest

from sales_pipeline.excel.feedback import RejectedCell, SheetRows, write_feedback_workbook
from sales_pipeline.excel.importer import OutsideTheInbox, import_workbook
from sales_pipeline.excel.read import read_workbook
from sales_pipeline_tests.conftest import query, table_counts
from sales_pipeline_tests.workbooks import SALES_HEADER, products, sales, write_workbook


def test_bad_cells_are_rejected_and_marked_in_the_feedback_workbook(
    import_settings, folders, warehouse, empty_warehouse
):
    rows = sales(1000)
    rows[100][SALES_HEADER.index("Quantity")] = "abc"  # Excel row 101
    rows[501][SALES_HEADER.index("Unit Price")] = -3  # Excel row 502
    rows[899][SALES_HEADER.index("Sold At")] = "31/02/2026"  # Excel row 900: no 31 February
    path = write_workbook(folders["inbox"] / "november.xlsx", {"Products": products(), "Sales": rows})
    original = path.read_bytes()

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "loaded_with_rejects"
    sales_result = next(s for s in result.sheets if s.target == "Sales")
    assert (sales_result.rows_read, sales_result.rows_loaded, sales_result.rows_rejected) == (1000, 997, 3)
    assert query(empty_warehouse, "SELECT count(*) FROM core.sales")[0][0] == 997
    rejects = query(
        empty_warehouse,
        "SELECT sheet, row_number, column_name, value, reason FROM ops.import_rejects ORDER BY row_number",
    )
    assert rejects == [
        ("Sales", 101, "Quantity", "abc", "not a number"),
        ("Sales", 502, "Unit Price", "-3", "must be 0 or more"),
        ("Sales", 900, "Sold At", "31/02/2026", "not a date"),
    ]

    feedback = openpyxl.load_workbook(result.feedback_path)
    sheet = feedback["Sales"]
    header = [cell.value for cell in sheet[1]]
    assert header[: len(SALES_HEADER)] == SALES_HEADER
    assert "Problems" in header and "Source Row" in header
    source_rows = [row[header.index("Source Row")].value for row in sheet.iter_rows(min_row=2)]
    assert source_rows == [101, 502, 900]
    marked = {
        (row[header.index("Source Row")].value, header[cell.column - 1])
        for row in sheet.iter_rows(min_row=2)
        for cell in row
        if cell.comment is not None
    }
    assert marked == {(101, "Quantity"), (502, "Unit Price"), (900, "Sold At")}
    assert Path(result.archived_path).read_bytes() == original
    assert not path.exists()  # moved to the archive, not copied and not deleted


def test_same_bytes_twice_and_renamed_load_nothing_new(import_settings, folders, warehouse, empty_warehouse):
    path = write_workbook(folders["inbox"] / "week.xlsx", {"Products": products(), "Sales": sales(50)})
    spare = folders["inbox"].parent / "spare.xlsx"
    shutil.copy(path, spare)

    first = import_workbook(warehouse.transaction, path, import_settings)
    counts = table_counts(empty_warehouse)
    shutil.copy(spare, folders["inbox"] / "week.xlsx")
    again = import_workbook(warehouse.transaction, folders["inbox"] / "week.xlsx", import_settings)
    shutil.copy(spare, folders["inbox"] / "week (copy).xlsx")
    renamed = import_workbook(warehouse.transaction, folders["inbox"] / "week (copy).xlsx", import_settings)

    assert first.status == "loaded" and first.rows_loaded == 55
    assert again.status == renamed.status == "duplicate"
    after = table_counts(empty_warehouse)
    assert after["core.sales"] == counts["core.sales"] == 50
    assert after["ops.import_ledger"] == 3  # every drop is on the ledger
    kept = sorted(p.name for p in Path(first.archived_path).parent.iterdir())
    assert kept == ["week (copy).xlsx", "week.xlsx"]  # every dropped file is kept


def test_a_changed_row_in_a_re_export_updates_that_row_only(import_settings, folders, warehouse, empty_warehouse):
    rows = sales(40)
    write_workbook(folders["inbox"] / "export.xlsx", {"Products": products(), "Sales": rows})
    import_workbook(warehouse.transaction, folders["inbox"] / "export.xlsx", import_settings)
    before = dict(query(empty_warehouse, "SELECT order_id || '/' || line_number, updated_at FROM core.sales"))

    rows[8][SALES_HEADER.index("Quantity")] = 9  # the 8th line: order O00003, line 2
    write_workbook(folders["inbox"] / "export.xlsx", {"Products": products(), "Sales": rows})
    result = import_workbook(warehouse.transaction, folders["inbox"] / "export.xlsx", import_settings)

    sales_result = next(s for s in result.sheets if s.target == "Sales")
    assert (sales_result.inserted, sales_result.updated, sales_result.unchanged) == (0, 1, 39)
    # The ledger says which sales changed, so the marts recompute that day only.
    changed = query(
        empty_warehouse,
        "SELECT sales_changed_from = sales_changed_to, sales_changed_from AT TIME ZONE 'UTC'"
        " FROM ops.import_ledger WHERE import_id = %s",
        (result.import_id,),
    )
    assert changed == [(True, rows[8][SALES_HEADER.index("Sold At")])]
    after = dict(query(empty_warehouse, "SELECT order_id || '/' || line_number, updated_at FROM core.sales"))
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {"O00003/2"}
    assert query(empty_warehouse, "SELECT quantity FROM core.sales WHERE order_id = 'O00003' AND line_number = 2") == [
        (9,)
    ]


def test_a_load_cut_midway_leaves_every_table_as_it_was(import_settings, folders, warehouse, empty_warehouse):
    write_workbook(folders["inbox"] / "first.xlsx", {"Products": products(), "Sales": sales(20)})
    import_workbook(warehouse.transaction, folders["inbox"] / "first.xlsx", import_settings)
    before = table_counts(empty_warehouse)
    url = empty_warehouse
    # The connection is cut by the server while the sales merge runs, after products were merged.
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION pg_temp_cut() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$".replace(
                "pg_temp_cut", "public.cut_connection"
            )
        )
        cursor.execute(
            "CREATE TRIGGER cut_connection AFTER INSERT ON core.sales"
            " FOR EACH STATEMENT EXECUTE FUNCTION public.cut_connection()"
        )
    try:
        rows = sales(30)
        rows[5][SALES_HEADER.index("Quantity")] = "bad"
        path = write_workbook(folders["inbox"] / "second.xlsx", {"Products": products(8), "Sales": rows})
        with pytest.raises(psycopg2.OperationalError):
            import_workbook(warehouse.transaction, path, import_settings)
    finally:
        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER cut_connection ON core.sales; DROP FUNCTION public.cut_connection()")

    assert table_counts(url) == before
    assert path.exists()  # still in the inbox, to be imported again
    assert not list(folders["archive"].rglob("second*"))  # no feedback workbook left behind


def test_a_file_that_is_not_a_workbook_is_rejected_and_kept(import_settings, folders, warehouse, empty_warehouse):
    path = folders["inbox"] / "notes.xlsx"
    path.write_text("this is not a workbook")

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "rejected"
    assert result.reason == "the file is not a .xlsx workbook (it is not a zip archive)"
    assert Path(result.archived_path).read_text() == "this is not a workbook"
    assert Path(result.archived_path).is_relative_to(folders["rejected"])
    ledger = query(empty_warehouse, "SELECT file_name, status, reason FROM ops.import_ledger")
    assert ledger == [("notes.xlsx", "rejected", result.reason)]


def test_a_template_sheet_missing_a_required_column_names_it(import_settings, folders, warehouse, empty_warehouse):
    rows = [[cell for i, cell in enumerate(row) if i != SALES_HEADER.index("Quantity")] for row in sales(3)]
    path = write_workbook(folders["inbox"] / "short.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "rejected"
    assert result.reason.startswith("sheet 'Sales': required column(s) missing: Quantity")
    assert table_counts(empty_warehouse)["core.products"] == 0  # nothing half-written


def test_sales_of_an_unknown_product_are_rejected(import_settings, folders, warehouse, empty_warehouse):
    rows = sales(10)
    rows[3][SALES_HEADER.index("Product ID")] = "P404"
    path = write_workbook(folders["inbox"] / "orphans.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.rows_rejected == 1
    assert query(empty_warehouse, "SELECT row_number, column_name, value FROM ops.import_rejects") == [
        (4, "Product ID", "P404")
    ]
    feedback = openpyxl.load_workbook(result.feedback_path)["Sales"]
    header = [cell.value for cell in feedback[1]]
    (row,) = feedback.iter_rows(min_row=2, values_only=True)
    assert row[header.index("Source Row")] == 4
    assert "unknown product" in row[header.index("Problems")]


def test_a_workbook_whose_every_row_is_rejected_is_not_a_success(import_settings, folders, warehouse):
    rows = sales(3)
    for row in rows[1:]:
        row[SALES_HEADER.index("Quantity")] = 0
    path = write_workbook(folders["inbox"] / "zeros.xlsx", {"Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert (result.status, result.rows_loaded, result.rows_rejected) == ("rejected", 0, 3)
    assert result.reason == "no row could be loaded: 3 rows rejected, see the feedback workbook"
    assert Path(result.feedback_path).exists()


def test_headers_below_a_title_and_messy_cells_are_cleaned(import_settings, folders, warehouse, empty_warehouse):
    rows = [
        ["November sales, shop 1"],
        [],
        ["  order id ", "LINE", "sold at", "Store ID", "Product ID", "Quantity", "Unit Price", "Discount", "Note"],
        ["A-1", 1, "03/11/2026 14:05", " S1 ", "P1", " 2 ", "12,50", "10%", "first"],
        ["A-1", 2, 46328.5, "S1", "P2", 1.0, "1,250.00", None, ""],  # an Excel serial number: 2 Nov, noon
        [None, None, None, None, None, None, None, None, None],
        ["A-2", 1, "2026-11-04", "S1", "P1", 3, 8, 0, ""],
    ]
    path = write_workbook(folders["inbox"] / "messy.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "loaded", result
    assert next(s for s in result.sheets if s.target == "Sales").ignored_columns == ("Note",)
    loaded = query(
        empty_warehouse,
        "SELECT order_id, line_number, sale_date::text, store_id, quantity, unit_price::float, discount::float"
        " FROM core.sales ORDER BY order_id, line_number",
    )
    assert loaded == [
        ("A-1", 1, "2026-11-03", "S1", 2, 12.5, 0.1),  # day first: 3 November
        ("A-1", 2, "2026-11-02", "S1", 1, 1250.0, 0.0),
        ("A-2", 1, "2026-11-04", "S1", 3, 8.0, 0.0),
    ]
    assert query(empty_warehouse, "SELECT min(row_number) FROM raw.excel_rows WHERE sheet = 'Sales'") == [(4,)]


def test_sale_date_is_the_stores_local_day(import_settings, folders, warehouse, empty_warehouse):
    stores = [["Store ID", "Name", "Timezone"], ["NY", "New York", "America/New_York"], ["PA", "Paris", "Europe/Paris"]]
    rows = [SALES_HEADER, ["X1", 1, "2026-11-02 23:30", "NY", None, "P1", 1, 10, 0],
            ["X2", 1, "2026-11-02 23:30", "PA", None, "P1", 1, 10, 0]]  # fmt: skip
    path = write_workbook(folders["inbox"] / "zones.xlsx", {"Products": products(), "Stores": stores, "Sales": rows})

    import_workbook(warehouse.transaction, path, import_settings)

    assert query(
        empty_warehouse,
        "SELECT order_id, sale_date::text, to_char(sold_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM core.sales"
        " ORDER BY order_id",
    ) == [("X1", "2026-11-02", "2026-11-03 04:30"), ("X2", "2026-11-02", "2026-11-02 22:30")]


def test_a_formula_nobody_calculated_is_reported_as_such(import_settings, folders, warehouse, empty_warehouse):
    rows = sales(4)
    rows[2][SALES_HEADER.index("Quantity")] = "=1+1"  # openpyxl saves the formula with no result
    path = write_workbook(folders["inbox"] / "formulas.xlsx", {"Products": products(), "Sales": rows})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.rows_rejected == 1
    assert query(empty_warehouse, "SELECT row_number, column_name, reason FROM ops.import_rejects") == [
        (3, "Quantity", "a formula without a saved result: open the workbook in Excel, save it, and drop it again")
    ]


def test_a_255_byte_name_with_a_rejected_row_imports_and_gets_a_shortened_feedback_name(
    import_settings, folders, warehouse, empty_warehouse
):
    rows = sales(10)
    rows[3][SALES_HEADER.index("Quantity")] = "abc"
    name = "é" * 125 + ".xlsx"  # 255 bytes in UTF-8: the longest name ext4 takes
    path = write_workbook(folders["inbox"] / name, {"Products": products(), "Sales": rows})
    original = path.read_bytes()

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "loaded_with_rejects" and result.rows_rejected == 1
    assert Path(result.archived_path).name == name and Path(result.archived_path).read_bytes() == original
    feedback = Path(result.feedback_path)
    assert feedback.name == "é" * 120 + ".feedback.xlsx" and len(feedback.name.encode()) <= 255
    assert openpyxl.load_workbook(feedback)["Sales"].max_row == 2  # its header and the one rejected row
    ledger = query(empty_warehouse, "SELECT file_name, status, rows_rejected FROM ops.import_ledger")
    assert ledger == [(name, "loaded_with_rejects", 1)]


def test_a_dot_name_imports_like_any_workbook(import_settings, folders, warehouse, empty_warehouse):
    path = write_workbook(folders["inbox"] / "..xlsx", {"Products": products(), "Sales": sales(5)})

    result = import_workbook(warehouse.transaction, path, import_settings)

    assert result.status == "loaded" and Path(result.archived_path).name == "..xlsx"
    assert query(empty_warehouse, "SELECT file_name, status FROM ops.import_ledger") == [("..xlsx", "loaded")]


def test_the_same_bytes_imported_at_once_under_two_names_load_once(
    import_settings, folders, warehouse, empty_warehouse
):
    first = write_workbook(folders["inbox"] / "monday.xlsx", {"Products": products(), "Sales": sales(400)})
    second = Path(shutil.copy(first, folders["inbox"] / "monday (copy).xlsx"))
    original = first.read_bytes()

    with ThreadPoolExecutor(2) as pool:  # two imports, two connections, at the same moment
        results = list(
            pool.map(lambda path: import_workbook(warehouse.transaction, path, import_settings), [first, second])
        )

    assert sorted(r.status for r in results) == ["duplicate", "loaded"]
    ledger = query(empty_warehouse, "SELECT status, count(*) FROM ops.import_ledger GROUP BY 1")
    assert sorted(ledger) == [("duplicate", 1), ("loaded", 1)]
    assert query(empty_warehouse, "SELECT count(*) FROM core.sales") == [(400,)]
    assert all(Path(r.archived_path).read_bytes() == original for r in results)  # both files kept


def test_a_link_in_the_inbox_is_refused_and_its_target_left_alone(
    import_settings, folders, tmp_path, warehouse, empty_warehouse
):
    elsewhere = tmp_path / "elsewhere"
    target = write_workbook(elsewhere / "orders.xlsx", {"Products": products(), "Sales": sales(5)})
    original = target.read_bytes()
    (folders["inbox"] / "orders.xlsx").symlink_to(target)
    (folders["inbox"] / "superstore").symlink_to(elsewhere, target_is_directory=True)

    for path in (folders["inbox"] / "orders.xlsx", folders["inbox"] / "superstore" / "orders.xlsx"):
        with pytest.raises(OutsideTheInbox, match="link"):
            import_workbook(warehouse.transaction, path, import_settings)

    assert target.read_bytes() == original  # not moved, not changed
    assert query(empty_warehouse, "SELECT count(*) FROM ops.import_ledger") == [(0,)]


def test_sender_text_that_excel_would_take_for_a_formula_stays_text_in_the_feedback(
    import_settings, folders, warehouse
):
    typed = ['=HYPERLINK("http://x")', "+33 6 12 34 56 78", "-15% promo", "@SUM(A1:A9)", "\tindented"]
    rows = sales(len(typed))
    for row, text in zip(rows[1:], typed, strict=True):
        row[SALES_HEADER.index("Customer ID")] = text
        row[SALES_HEADER.index("Quantity")] = "abc"  # every row rejected, so every text is in the feedback
    path = write_workbook(folders["inbox"] / "customers.xlsx", {"Products": products(), "Sales": rows})
    source = openpyxl.load_workbook(path)["Sales"]
    source["E2"].data_type = "s"  # the sender typed it as text (openpyxl would write a formula)
    source.parent.save(path)

    result = import_workbook(warehouse.transaction, path, import_settings)
    # A carriage return first survives only escaped (Excel writes _x000D_): straight to the feedback writer.
    returned = write_feedback_workbook(
        folders["archive"] / "returned.xlsx", "returned.xlsx", {"Sales": SheetRows(["Note"], {2: ["\rreturn"]})},
        [RejectedCell("Sales", 2, "Note", "\rreturn", "a reason")],
    )  # fmt: skip

    sheet = openpyxl.load_workbook(result.feedback_path)["Sales"]
    cells = [sheet.cell(row, SALES_HEADER.index("Customer ID") + 1) for row in range(2, len(typed) + 2)]
    assert [cell.value for cell in cells] == typed
    cells.append(openpyxl.load_workbook(returned)["Sales"]["A2"])
    assert read_workbook(returned)["Sales"].rows[1][0] == "\rreturn"  # (openpyxl leaves it as _x000D_return)
    assert [(cell.data_type, cell.quotePrefix) for cell in cells] == [("s", True)] * 6  # text, after an edit too
