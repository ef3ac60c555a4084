"""The warehouse after importing a fixed set of files equals, row for row, the warehouse the import wrote
before it was made faster (issue 16): every core row, every reject, every raw row landed, every ledger count.

The golden dump `snapshots/import_golden.json` was taken from the import as it was on main before the fast
path (commit 52c99ac). To take it again after a deliberate change of what the import writes:

    SALES_PIPELINE_WRITE_GOLDEN=1 .venv/bin/pytest sales_pipeline_tests/test_import_golden.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from psycopg2 import sql

from sales_pipeline.demo.retailer import generate_retailer, write_sheets_workbook
from sales_pipeline.excel.importer import import_workbook
from sales_pipeline.excel.mapping import load_mapping
from sales_pipeline.warehouse.db import transaction

from .test_calendar_and_csv_import import csv_mapping
from .workbooks import PRODUCTS_HEADER, SALES_HEADER, products, sales, write_workbook, write_xml_spreadsheet_2003

GOLDEN = Path(__file__).parent / "snapshots" / "import_golden.json"
# Columns that differ between two runs of the same import: clocks, temporary folders, run ids, and the
# content hash (openpyxl writes the time of writing into the workbook).
VOLATILE = {"updated_at", "started_at", "finished_at", "archived_path", "feedback_path", "run_id",
            "marts_absorbed_at", "content_hash"}  # fmt: skip
TABLES = {
    "core.products": "product_id",
    "core.stores": "store_id",
    "core.customers": "customer_id",
    "core.sales": "order_id, line_number",
    "core.stock": "product_id, store_id, as_of",
    "ops.import_ledger": "import_id",
    "ops.import_rejects": "import_id, sheet, row_number, column_name, reason",
    "raw.excel_rows": "import_id, sheet, row_number",
}


def _retailer_workbook(folder: Path) -> Path:
    """Products, stock and the first 3,000 lines of a synthetic retailer, as the template's workbook."""
    retailer = generate_retailer(scale=2, seed=11, days=120, end=dt.date(2026, 11, 30))
    return write_sheets_workbook(
        folder / "retailer.xlsx",
        {"Products": retailer.products, "Sales": retailer.sales.head(3000), "Stock": retailer.stock.head(500)},
    )


def _workbook_with_rejects(folder: Path) -> Path:
    """Good lines around every kind of bad cell: text in a number, blanks, out of range, unknown product,
    an error cell, a repeated key, a line in the future, a totals row; and lines changed from the first file."""
    rows = sales(40)
    rows[3][6] = "two"  # Quantity as text
    rows[4][5] = None  # Product ID blank
    rows[5][7] = -3.5  # Unit Price below zero
    rows[6][8] = 1.5  # Discount above 100%
    rows[7][5] = "P99"  # a product nobody sent
    rows[8][7] = "#N/A"  # what a broken lookup shows
    rows[9][2] = "31/02/2026 10:00"  # no such day
    rows[10][2] = dt.datetime(2031, 1, 1, 9, 0)  # in the future
    rows[12] = list(rows[11])  # the same order line twice
    rows[13][6] = 7.5  # a fraction of a unit
    rows.append([None, None, None, "S1 Total", None, None, 99, None, None])
    extra = [PRODUCTS_HEADER[:4], ["P6", "Product 6", "Tea", "abc"]]
    return write_workbook(folder / "rejects.xlsx", {"Products": products(5) + extra[1:], "Sales": rows})


def _changed_workbook(folder: Path) -> Path:
    """The first 30 lines of the rejects file again, some changed: the merge updates only those."""
    rows = sales(30)
    rows[1][6] = 9
    rows[2][8] = 0.1
    rows[20][7] = 42.0
    return write_workbook(folder / "changed.xlsx", {"Sales": rows})


def _xml_spreadsheet(folder: Path) -> Path:
    rows = [SALES_HEADER] + [["X1", i, dt.datetime(2026, 11, 3, 10, i), "S2", None, "P2", i, 3.25, 0.0]
                             for i in range(1, 6)]  # fmt: skip
    return write_xml_spreadsheet_2003(folder / "erp.xls", {"Sales": rows})


def _csv_file(folder: Path) -> Path:
    lines = ["Store;Date;Sales;Open", "1;2015-07-30;5020;1", "2;2015-07-30;0;0", "1;2015-07-31;5263,5;1", "",
             "2;2015-07-31;6064;1", "3;2015-07-31;abc;1"]  # fmt: skip
    path = folder / "daily.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return path


def dump(url: str) -> dict[str, list[list[object]]]:
    """Every row of the tables an import writes, in key order, as JSON values (raw rows as parsed JSON)."""
    tables = {}
    with transaction(url) as cursor:
        for table, order in TABLES.items():
            names = sql.SQL(", ").join(sql.Identifier(c.strip()) for c in order.split(","))
            cursor.execute(sql.SQL("SELECT * FROM {} ORDER BY {}").format(sql.Identifier(*table.split(".")), names))
            names = [d.name for d in cursor.description]
            kept = [i for i, name in enumerate(names) if name not in VOLATILE]
            rows = [[_plain(row[i]) for i in kept] for row in cursor.fetchall()]
            tables[table] = [[names[i] for i in kept], *rows]
    return tables


def _plain(value: object) -> object:
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value, sort_keys=True))
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def test_the_fast_import_writes_what_the_old_import_wrote(warehouse, import_settings, folders, tmp_path):
    mapping = load_mapping(csv_mapping(tmp_path))
    files = [
        (_retailer_workbook(folders["inbox"]), None),
        (_workbook_with_rejects(folders["inbox"]), None),
        (_changed_workbook(folders["inbox"]), None),
        (_xml_spreadsheet(folders["inbox"]), None),
        (_csv_file(folders["inbox"]), mapping),
    ]
    for path, file_mapping in files:
        kwargs = {"mapping": file_mapping} if file_mapping else {}
        import_workbook(warehouse.transaction, path, import_settings, **kwargs)
    got = dump(warehouse.database_url)

    if os.environ.get("SALES_PIPELINE_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=0, sort_keys=True) + "\n")
        pytest.skip(f"wrote {GOLDEN}")
    golden = json.loads(GOLDEN.read_text())
    assert set(got) == set(golden)
    for table, rows in golden.items():
        assert got[table][0] == rows[0], f"{table}: columns"
        assert len(got[table]) == len(rows), f"{table}: row count"
        for expected, actual in zip(rows[1:], got[table][1:], strict=True):
            assert actual == expected, table
