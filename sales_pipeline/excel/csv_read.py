"""Reading a CSV file as the one sheet a mapping with ``format: csv`` describes.

A CSV file is one table: its first line is the header, every cell is text (the importer's parsers
read numbers and dates from text as they do from a workbook's text cells). Each entry of the mapping
reads that same table, so the file is returned under every sheet name the mapping's entries use.
The delimiter is the mapping's, else the one of ``,`` ``;`` and tab the header line holds most of;
the encoding UTF-8 (with or without a byte-order mark), else Windows-1252, as Excel writes CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

from sales_pipeline.excel.read import RawSheet, UnreadableWorkbook, raw_sheet

CSV_SUFFIX = ".csv"
DELIMITERS = (",", ";", "\t")


def is_csv(path: Path) -> bool:
    return path.suffix.lower() == CSV_SUFFIX


def read_csv_sheets(path: Path, sheet_names: list[str], delimiter: str | None = None) -> dict[str, RawSheet]:
    """The file as one RawSheet (Excel-like row numbers: the header is row 1), under each of `sheet_names`."""
    text = _decoded(path.read_bytes(), path)
    header_line = text.split("\n", 1)[0]
    delimiter = delimiter or max(DELIMITERS, key=header_line.count)
    try:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        rows = [[cell if cell.strip() else None for cell in row] for row in reader]
    except csv.Error as error:
        raise UnreadableWorkbook(f"the CSV file cannot be read: {error}") from error
    sheet = raw_sheet(path.name, rows)
    sheet = replace(sheet, frame=sheet.frame[sheet.frame.notna().any(axis=1)])  # blank lines go, numbers stay
    if sheet.frame.empty:
        raise UnreadableWorkbook("the CSV file is empty")
    return dict.fromkeys(sheet_names, sheet)


def _decoded(data: bytes, path: Path) -> str:
    if not data.strip():
        raise UnreadableWorkbook("the file is empty (0 bytes)" if not data else "the CSV file is empty")
    if b"\x00" in data[:4096]:
        raise UnreadableWorkbook(f"{path.name} is not a text CSV file (it holds binary data)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
