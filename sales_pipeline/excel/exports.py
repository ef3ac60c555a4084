"""The "Excel exports" of ERPs and web tools that are not Excel workbooks: an HTML table, or an XML Spreadsheet
2003 document, saved under an .xls name. Excel opens both; so does the importer, by content rather than name:
each table (HTML) or worksheet (XML) reads as a sheet of text and typed cells, like a workbook's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path

SPREADSHEET_2003 = "urn:schemas-microsoft-com:office:spreadsheet"
_SS = f"{{{SPREADSHEET_2003}}}"
Rows = list[list[object]]
_HTML_START = re.compile(
    rb"^(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|table|meta)\b", re.S
)


def export_kind(head: bytes) -> str | None:
    """'xml2003' or 'html' when the file's first bytes are such an export, else None."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if SPREADSHEET_2003.encode() in text and b"<workbook" in text:
        return "xml2003"
    if _HTML_START.match(text):
        return "html"
    return None


def read_export(path: Path, kind: str) -> dict[str, Rows]:
    """Sheet name -> rows from row 1 and column A; ElementTree.ParseError if an XML export is damaged."""
    if kind == "xml2003":
        return _read_spreadsheet_2003(path)
    return _read_html(path)


# --- XML Spreadsheet 2003 ---------------------------------------------------------------------------


def _read_spreadsheet_2003(path: Path) -> dict[str, Rows]:
    """Worksheets of an XML Spreadsheet 2003 file (ss:Index skips cells and rows, ss:Type types a cell)."""
    sheets: dict[str, Rows] = {}
    for _, element in ElementTree.iterparse(path, events=("end",)):
        if element.tag == f"{_SS}Worksheet":
            sheets[element.get(f"{_SS}Name") or f"Sheet{len(sheets) + 1}"] = _worksheet_rows(element)
            element.clear()  # a large export is not held twice
    return sheets


def _worksheet_rows(worksheet: ElementTree.Element) -> Rows:
    rows: Rows = []
    for row in worksheet.iter(f"{_SS}Row"):
        index = int(row.get(f"{_SS}Index") or len(rows) + 1)
        rows.extend([] for _ in range(index - 1 - len(rows)))  # rows skipped by ss:Index are empty
        cells: list[object] = []
        for cell in row.findall(f"{_SS}Cell"):
            position = int(cell.get(f"{_SS}Index") or len(cells) + 1)
            cells.extend([None] * (position - 1 - len(cells)))
            data = cell.find(f"{_SS}Data")
            cells.append(None if data is None else _typed(data.get(f"{_SS}Type"), "".join(data.itertext())))
            cells.extend([None] * int(cell.get(f"{_SS}MergeAcross") or 0))
        rows.append(cells)
    return rows


def _typed(kind: str | None, text: str) -> object:
    """A Data element's value: Number, DateTime and Boolean typed; String and Error (#N/A...) as text."""
    try:
        if kind == "Number":
            return float(text)
        if kind == "DateTime":
            return dt.datetime.fromisoformat(text.strip())
        if kind == "Boolean":
            return text.strip() in ("1", "true")
    except ValueError:
        pass  # kept as the sender's text: the parsers say what is wrong with it
    return text


# --- HTML tables ------------------------------------------------------------------------------------


class _TableReader(HTMLParser):
    """Collects every <table>'s rows of cell texts; Excel's own HTML names its worksheets in <x:Name>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Rows] = []
        self.names: list[str] = []  # x:Name, else the table's caption
        self.title = ""
        self._open: list[Rows] = []  # the tables being read (nested ones too)
        self._cell: list[str] | None = None
        self._number: str | None = None
        self._span = 1
        self._in: str | None = None  # title, caption or x:name: text to keep
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._open.append([])
        elif tag == "tr" and self._open:
            self._open[-1].append([])
        elif tag in ("td", "th") and self._open:
            if not self._open[-1]:
                self._open[-1].append([])
            self._cell, self._number = [], attributes.get("x:num")
            self._span = int(attributes.get("colspan") or 1) if (attributes.get("colspan") or "1").isdigit() else 1
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")
        elif tag in ("title", "caption", "x:name"):
            self._in, self._text = tag, []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._open:
            text = " ".join("".join(self._cell).split())
            value: object = text or None
            if self._number is not None:  # Excel's HTML keeps a number's value apart from its shown text
                with contextlib.suppress(ValueError):
                    value = float(self._number or text)
            self._open[-1][-1].extend([value] + [None] * (self._span - 1))
            self._cell = None
        elif tag == "table" and self._open:
            self.tables.append(self._open.pop())
        elif tag == self._in:
            text = " ".join("".join(self._text).split())
            if tag == "title":
                self.title = text
            elif tag == "x:name" or (tag == "caption" and len(self.names) <= len(self.tables)):
                self.names.append(text)
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text.append(data)
        elif self._cell is not None:
            self._cell.append(data)


def _read_html(path: Path) -> dict[str, Rows]:
    """Each table of an HTML export as a sheet, named by Excel's worksheet name or the table's caption, else
    by the page's title when it holds one table, else Sheet1, Sheet2..."""
    reader = _TableReader()
    reader.feed(_html_text(path))
    reader.close()
    tables = [rows for rows in reader.tables if any(any(v is not None for v in row) for row in rows)]
    sheets: dict[str, Rows] = {}
    for number, rows in enumerate(tables, start=1):
        name = reader.names[number - 1] if number <= len(reader.names) else ""
        if not name and len(tables) == 1:
            name = reader.title
        sheets[name or f"Sheet{number}"] = rows
    return sheets


def _html_text(path: Path) -> str:
    data = path.read_bytes()
    declared = re.search(rb"""charset\s*=\s*["']?([\w-]+)""", data[:4096], re.IGNORECASE)
    for encoding in ([declared[1].decode("ascii")] if declared else []) + ["utf-8-sig", "cp1252"]:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")
