"""Real workbooks for tests, written with openpyxl the way a person's spreadsheet would be."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl

PRODUCTS_HEADER = ["Product ID", "Name", "Category", "Unit Price", "Unit Cost", "Reorder Point", "Lead Time Days"]
SALES_HEADER = ["Order ID", "Line", "Sold At", "Store ID", "Customer ID", "Product ID", "Quantity", "Unit Price",
                "Discount"]  # fmt: skip


def write_workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """Write `sheets` (name -> rows, header first) to an .xlsx file."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path


def products(count: int = 5) -> list[list[object]]:
    return [PRODUCTS_HEADER] + [
        [f"P{i}", f"Product {i}", "Coffee" if i % 2 else "Tea", 10.0 + i, 4.0 + i, 10, 7] for i in range(1, count + 1)
    ]


def sales(count: int, start: dt.datetime = dt.datetime(2026, 11, 2, 9, 0)) -> list[list[object]]:
    """`count` order lines, two lines per order, over products P1..P5 and two stores."""
    rows = [SALES_HEADER]
    for i in range(count):
        rows.append([
            f"O{i // 2:05d}", i % 2 + 1, start + dt.timedelta(minutes=7 * i), f"S{i % 2 + 1}", f"C{i % 40:03d}",
            f"P{i % 5 + 1}", 1 + i % 3, 10.0 + i % 5 + 1, 0.0,
        ])  # fmt: skip
    return rows
