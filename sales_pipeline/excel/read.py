"""Reading workbooks with python-calamine, and the reasons a file cannot be read at all."""

from __future__ import annotations

import hashlib
import html
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import python_calamine

SUPPORTED_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls, and the container Office encrypts into
_ENCRYPTION_STREAM = "EncryptionInfo".encode("utf-16-le")


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
    check_readable(path)
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


def check_readable(path: Path) -> None:
    """Reject, with a specific reason, files that are not a workbook we can open."""
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
        return
    if suffix in (".xlsx", ".xlsm", ".xlsb", ".ods"):
        if not head.startswith(b"PK"):
            raise UnreadableWorkbook(f"the file is not a {suffix} workbook (it is not a zip archive)")
        _check_zip(path)


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
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def uncalculated_formula_cells(path: Path, sheet_name: str) -> set[tuple[int, int]]:
    """(row, column) numbers of the cells of a sheet holding a formula with no saved result.

    A workbook written by a program (not saved by Excel) may carry formulas nobody calculated;
    calamine reads such a cell as empty. Only .xlsx/.xlsm keep formulas in a form read here.
    """
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return set()
    with zipfile.ZipFile(path) as archive:
        part = _sheet_part(archive, sheet_name)
        xml = archive.read(part) if part else b""
    if b"<f" not in xml:  # most exported data has no formula at all: one scan, no parsing
        return set()
    found = set()
    for match in _FORMULA_CELL.finditer(xml):
        value = match["value"]
        if value is None or not value.strip():
            found.add((int(match["row"]), _column_number(match["column"].decode())))
    return found


_FORMULA_CELL = re.compile(
    rb'<c r="(?P<column>[A-Z]+)(?P<row>\d+)"[^>]*>\s*'
    rb"<f(?:\s[^>]*)?(?:/>|>[^<]*</f>)\s*"
    rb"(?:<v>(?P<value>[^<]*)</v>|<v\s*/>)?\s*</c>"
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
