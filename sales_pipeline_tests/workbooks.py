"""Real workbooks for tests, written with openpyxl the way a person's spreadsheet would be."""

from __future__ import annotations

import datetime as dt
import html
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


def write_html_export(path: Path, title: str, rows: list[list[object]]) -> Path:
    """What an ERP's "Export to Excel" often writes: a web page with one table, saved under an .xls name."""
    cells = "\n".join(
        "<tr>" + "".join(f"<td>{'' if value is None else html.escape(str(value))}</td>" for value in row) + "</tr>"
        for row in rows
    )
    page = (
        '<!DOCTYPE html>\n<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body><table border=1>\n{cells}\n</table></body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(page.encode("utf-8"))
    return path


def write_xml_spreadsheet_2003(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """An XML Spreadsheet 2003 document (Excel's own XML format, also many ERPs'), saved under an .xls name:
    numbers as Number, datetimes as DateTime, text as String, and Excel errors (#N/A...) as Error cells."""

    def cell(value: object) -> str:
        if value is None:
            return "<Cell/>"
        if isinstance(value, bool):
            kind, text = "Boolean", str(int(value))
        elif isinstance(value, int | float):
            kind, text = "Number", repr(value)
        elif isinstance(value, dt.datetime):
            kind, text = "DateTime", value.strftime("%Y-%m-%dT%H:%M:%S.000")
        else:
            kind, text = ("Error" if str(value).startswith("#") else "String"), html.escape(str(value))
        return f'<Cell><Data ss:Type="{kind}">{text}</Data></Cell>'

    worksheets = "".join(
        f'<Worksheet ss:Name="{html.escape(name)}"><Table>'
        + "".join("<Row>" + "".join(cell(value) for value in row) + "</Row>" for row in rows)
        + "</Table></Worksheet>"
        for name, rows in sheets.items()
    )
    document = (
        '<?xml version="1.0"?>\n<?mso-application progid="Excel.Sheet"?>\n'
        '<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"'
        ' xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet">\n'
        f"{worksheets}\n</Workbook>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(document.encode("utf-8"))
    return path
