"""Reading workbooks with python-calamine, and the reasons a file cannot be read at all."""

from __future__ import annotations

import hashlib
import html
import re
import xml.etree.ElementTree as ElementTree
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import python_calamine

from sales_pipeline.excel.exports import export_kind, read_export

SUPPORTED_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls, and the container Office encrypts into
_ENCRYPTION_STREAM = "EncryptionInfo".encode("utf-16-le")


def skipped_name(name: str) -> str | None:
    """Why a file is left alone by its name alone (Excel's lock files, downloads under way), or None."""
    if name.startswith("~$"):
        return "Excel's lock file of an open workbook, not a workbook"
    if name.lower().endswith((".tmp", ".part", ".crdownload")):
        return "a download or copy under way, not a workbook yet"
    return None


class UnreadableWorkbook(Exception):
    """The file as a whole cannot be imported; the message says why, in the sender's words."""


@dataclass(frozen=True)
class RawSheet:
    """A sheet as read: cell values as calamine gives them, rows numbered like Excel's."""

    name: str
    rows: list[list[object]]
    first_row_number: int  # Excel row number of rows[0]
    first_column_number: int = 1  # Excel column number of rows[i][0]


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_workbook(path: Path) -> dict[str, RawSheet]:
    """All worksheets of a workbook by name, or UnreadableWorkbook with one specific reason."""
    export = check_readable(path)
    if export:
        try:
            return {name: RawSheet(name, rows, 1, 1) for name, rows in read_export(path, export).items()}
        except ElementTree.ParseError as error:
            raise UnreadableWorkbook(f"the XML Spreadsheet 2003 file is damaged ({error})") from error
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        sheets = {}
        for metadata in workbook.sheets_metadata:
            if metadata.typ != python_calamine.SheetTypeEnum.WorkSheet:
                continue  # chart sheets and macro sheets hold no rows
            sheet = workbook.get_sheet_by_name(metadata.name)
            # `start` is where data begins: calamine drops leading empty rows and columns.
            first_row, first_column = (sheet.start[0] + 1, sheet.start[1] + 1) if sheet.start else (1, 1)
            rows = sheet.to_python(skip_empty_area=True)
            sheets[metadata.name] = RawSheet(metadata.name, rows, first_row, first_column)
        return sheets
    except python_calamine.PasswordError as error:
        raise UnreadableWorkbook("the workbook is password-protected: save it without a password") from error
    except (python_calamine.ZipError, python_calamine.XmlError, python_calamine.CalamineError) as error:
        raise UnreadableWorkbook(f"the workbook is damaged and cannot be read ({_first_line(error)})") from error


def check_readable(path: Path) -> str | None:
    """Reject, with a specific reason, files that are not a workbook we can open; the kind of an ERP's
    export (`html`, `xml2003`: see exports.py) when the file is one, whatever its name."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableWorkbook(
            f"'{suffix or path.name}' is not a workbook type we import (use {', '.join(SUPPORTED_SUFFIXES)})"
        )
    size = path.stat().st_size
    if size == 0:
        raise UnreadableWorkbook("the file is empty (0 bytes)")
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    if head.startswith(_OLE_MAGIC):
        if _ENCRYPTION_STREAM in head:
            raise UnreadableWorkbook("the workbook is encrypted with a password: save it without a password")
        if suffix != ".xls":
            raise UnreadableWorkbook(f"the file is a legacy binary Excel workbook named '{suffix}': rename it .xls")
        return None
    export = export_kind(head)
    if export:
        return export
    if suffix == ".xls":
        holds = (
            "text (comma- or tab-separated values?), not an Excel workbook"
            if _looks_like_text(head)
            else "neither an Excel workbook nor an Excel export (HTML, XML Spreadsheet 2003)"
        )
        raise UnreadableWorkbook(f"the file is named .xls but holds {holds}: open it in Excel and save it as .xlsx")
    if not head.startswith(b"PK"):
        raise UnreadableWorkbook(f"the file is not a {suffix} workbook (it is not a zip archive)")
    _check_zip(path)
    return None


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    return sum(ch.isprintable() or ch in "\t\r\n" for ch in text) >= 0.95 * len(text)


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except zipfile.BadZipFile as error:
        raise UnreadableWorkbook(f"the workbook is damaged: not a valid zip archive ({error})") from error
    except (OSError, EOFError, ValueError, NotImplementedError) as error:
        raise UnreadableWorkbook(f"the workbook is damaged ({_first_line(error)})") from error
    if damaged is not None:
        raise UnreadableWorkbook(f"the workbook is damaged: part '{damaged}' fails its checksum")


def uses_1904_dates(path: Path) -> bool:
    """Whether plain numbers in date columns count days from 1904 (old Mac Excel) rather than 1900."""
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            workbook_xml = archive.read("xl/workbook.xml")[:4096]
    except (KeyError, zipfile.BadZipFile, OSError):
        return False
    return re.search(rb'date1904="(1|true)"', workbook_xml) is not None


def _first_line(error: BaseException) -> str:
    """The error's first line, without the bytes some libraries quote (`signature \\x3c\\x68...`)."""
    line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return _QUOTED_BYTES.sub("…", "".join(ch for ch in line if ch.isprintable()))


_QUOTED_BYTES = re.compile(r"(?:\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\[0-7]{3})+")


# What Excel shows in a cell whose formula failed. calamine reads such a cell as empty.
EXCEL_ERRORS = frozenset(
    ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA", "#SPILL!", "#CALC!")
)


@dataclass(frozen=True)
class CellMarks:
    """What calamine does not tell about a sheet's cells, by Excel (row, column) numbers."""

    errors: dict[tuple[int, int], str] = field(default_factory=dict)  # cells showing #REF!, #N/A...
    uncalculated: frozenset[tuple[int, int]] = frozenset()  # formulas without a saved result
    summary_rows: frozenset[int] = frozenset()  # rows with a SUBTOTAL, AGGREGATE or column SUM formula


def cell_marks(path: Path, sheet_name: str) -> CellMarks:
    """Error cells, formulas nobody calculated and summary formulas of a sheet of an .xlsx/.xlsm workbook.

    A workbook written by a program (not saved by Excel) may carry formulas nobody calculated; a formula
    that failed shows an error; Data > Subtotal writes SUBTOTAL formulas. calamine reads all of them as
    empty cells, so the sheet's XML is scanned for them, streamed (a large sheet is never held whole), and
    only the blocks that hold a formula or an error are searched.
    """
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return CellMarks()
    errors: dict[tuple[int, int], str] = {}
    uncalculated: set[tuple[int, int]] = set()
    summary_rows: set[int] = set()
    with zipfile.ZipFile(path) as archive:
        part = _sheet_part(archive, sheet_name)
        if part is None:
            return CellMarks()
        with archive.open(part) as stream:
            rest = b""
            for block in iter(lambda: stream.read(1 << 22), b""):
                text = rest + block
                cut = text.rfind(b"</c>") + len(b"</c>") if b"</c>" in text else 0
                text, rest = text[:cut], text[cut:]
                if b"<f" not in text and b't="e"' not in text:
                    continue
                for match in _MARKED_CELL.finditer(text):
                    where = (int(match["row"]), _column_number(match["column"].decode()))
                    value = (match["value"] or b"").strip()
                    if b't="e"' in match["attributes"]:
                        errors[where] = html.unescape(value.decode("utf-8", "replace"))
                    elif match["cell_formula"] and not value:
                        uncalculated.add(where)
                    formula = html.unescape((match["formula"] or b"").decode("utf-8", "replace"))
                    if formula and _SUMMARY_FORMULA.match(formula):
                        summary_rows.add(where[0])
    return CellMarks(errors, frozenset(uncalculated), frozenset(summary_rows))


_MARKED_CELL = re.compile(
    rb'<c r="(?P<column>[A-Z]+)(?P<row>\d+)"(?P<attributes>[^>]*)>\s*'
    rb"(?:(?P<cell_formula><f(?:\s[^>]*)?(?:/>|>(?P<formula>[^<]*)</f>))\s*)?"
    rb"(?:<v>(?P<value>[^<]*)</v>|<v\s*/>)?\s*</c>"
)
# A total over the rows above: =SUBTOTAL(9,F2:F9), =AGGREGATE(...), =SUM(F2:F9) (not a SUM along a row).
_SUMMARY_FORMULA = re.compile(
    r"\s*=?\s*(?:_xlfn\.)?(?:SUBTOTAL|AGGREGATE)\(|\s*=?\s*SUM\(\s*\$?[A-Z]+\$?(\d+)\s*:\s*\$?[A-Z]+\$?(?!\1\b)\d+\s*\)",
    re.IGNORECASE,
)


def _sheet_part(archive: zipfile.ZipFile, sheet_name: str) -> str | None:
    """The zip part of a worksheet, from workbook.xml (name -> relationship) and its relationships."""
    workbook = archive.read("xl/workbook.xml").decode("utf-8", "replace")
    relationships = archive.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    for sheet in re.finditer(r"<(?:\w+:)?sheet\b[^>]*>", workbook):
        name = re.search(r'\bname="([^"]*)"', sheet[0])
        rid = re.search(r'\br:id="([^"]*)"', sheet[0]) or re.search(r'\bid="([^"]*)"', sheet[0])
        if name and rid and html.unescape(name[1]) == sheet_name:
            for relationship in re.finditer(r"<Relationship\b[^>]*>", relationships):
                if f'Id="{rid[1]}"' in relationship[0]:
                    target = re.search(r'Target="([^"]*)"', relationship[0])[1]
                    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return None


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number
