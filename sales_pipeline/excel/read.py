"""Reading workbooks with python-calamine (large worksheets a slice at a time, fastexcel where it gives the same cells),
and the reasons a file cannot be read at all."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import logging
import re
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import fastexcel
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
    """A sheet as read: one column per sheet column (0 is `first_column_number`), indexed by Excel row number,
    cells as calamine gives them (equal cells share one object: see `_compact`)."""

    name: str
    frame: pd.DataFrame
    first_column_number: int = 1
    marks: CellMarks | None = None  # found while reading the sheet's XML; None: not looked for yet

    @property
    def rows(self) -> list[list[object]]:
        return self.head(len(self.frame))

    def head(self, count: int) -> list[list[object]]:
        """The first `count` rows as lists of cells."""
        return self.frame.iloc[:count].to_numpy().tolist()


def raw_sheet(name: str, rows: list[list[object]], first_row: int = 1, first_column: int = 1) -> RawSheet:
    frame = _compact(pd.DataFrame(rows, dtype=object))
    frame.index = pd.RangeIndex(first_row, first_row + len(frame))
    return RawSheet(name, frame, first_column)


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
            return {name: raw_sheet(name, rows) for name, rows in read_export(path, export).items()}
        except ElementTree.ParseError as error:
            raise UnreadableWorkbook(f"the XML Spreadsheet 2003 file is damaged ({error})") from error
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        sheets = {}
        for metadata in workbook.sheets_metadata:
            if metadata.typ != python_calamine.SheetTypeEnum.WorkSheet:
                continue  # chart sheets and macro sheets hold no rows
            sheets[metadata.name] = _read_in_slices(path, metadata.name) or _read_whole(workbook, metadata.name)
        return sheets
    except python_calamine.PasswordError as error:
        raise UnreadableWorkbook("the workbook is password-protected: save it without a password") from error
    except (python_calamine.ZipError, python_calamine.XmlError, python_calamine.CalamineError) as error:
        raise UnreadableWorkbook(f"the workbook is damaged and cannot be read ({_first_line(error)})") from error


def _read_whole(workbook: python_calamine.CalamineWorkbook, name: str) -> RawSheet:
    sheet = workbook.get_sheet_by_name(name)
    # `start` is where data begins: calamine drops leading empty rows and columns.
    first_row, first_column = (sheet.start[0] + 1, sheet.start[1] + 1) if sheet.start else (1, 1)
    return raw_sheet(name, sheet.to_python(skip_empty_area=True), first_row, first_column)


# --- large sheets, a slice at a time ---------------------------------------------------------------------
#
# calamine reads a sheet whole, and holds every cell at once (about 1 GB for a million rows of a dozen
# columns, before Python sees a value). So a worksheet of an .xlsx/.xlsm is cut, at row boundaries of its
# XML, into slices of about SLICE_BYTES, each made a one-sheet workbook (in memory, with the styles that
# tell dates from numbers and the shared strings) that calamine reads; each slice's columns are made
# compact before the next is read. Rows keep their numbers (the `r` attribute), so nothing shifts. A sheet
# whose rows carry no numbers, or whose XML is not the usual (prefixed tags), is read whole.

SLICE_BYTES = 32 << 20
_SHEET_DATA = re.compile(rb"<sheetData\s*>")
_DIMENSION = re.compile(rb"<dimension\b[^>]*/>")  # the whole sheet's size: calamine would reserve it per slice
_SLICE_PARTS = {
    "[Content_Types].xml": b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    b'spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
    "_rels/.rels": b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'officeDocument" Target="xl/workbook.xml"/></Relationships>',
    "xl/_rels/workbook.xml.rels": b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.'
    b'org/officeDocument/2006/relationships/styles" Target="styles.xml"/><Relationship Id="rId3" Type="http:'
    b'//schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"'
    b"/></Relationships>",
}
_SLICE_WORKBOOK = (
    b'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
    b'2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    b'<workbookPr date1904="%s"/><sheets><sheet name="slice" sheetId="1" r:id="rId1"/></sheets></workbook>'
)


def _read_in_slices(path: Path, name: str) -> RawSheet | None:
    """The sheet read a slice of rows at a time (see above), or None when it must be read whole."""
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return None
    with zipfile.ZipFile(path) as archive:
        part = _sheet_part(archive, name)
        if part is None or part not in archive.namelist():
            return None
        shared = _workbook_parts(archive)
        workbook = _SLICE_WORKBOOK % (b"1" if uses_1904_dates(path) else b"0")
        frames: list[pd.DataFrame] = []
        marks: list[CellMarks] = []
        with archive.open(part) as stream:
            for head, rows in _xml_slices(stream):
                if not rows.lstrip().startswith(b"<row ") or b' r="' not in rows[:200]:
                    return None  # rows without numbers: read the sheet whole
                marks.append(_marks_of([rows]))
                try:
                    frames.append(_read_slice(head + rows + b"</sheetData></worksheet>", workbook, shared))
                except python_calamine.CalamineError:
                    return None  # something of the workbook a slice lacks: read whole, to read it or say why not
    marked = CellMarks(
        {where: text for mark in marks for where, text in mark.errors.items()},
        frozenset().union(*(mark.uncalculated for mark in marks)),
        frozenset().union(*(mark.summary_rows for mark in marks)),
    )
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return RawSheet(name, pd.DataFrame(), 1, marked)
    first_column = min(int(frame.columns[0]) for frame in frames)
    frame = _concat_columns([frame.rename(columns=lambda c: c - first_column) for frame in frames])
    if frame.index[-1] - frame.index[0] + 1 != len(frame):  # rows left empty between slices: blank rows
        frame = frame.reindex(pd.RangeIndex(frame.index[0], frame.index[-1] + 1), fill_value="")
    return RawSheet(name, frame, first_column, marked)


def _workbook_parts(archive: zipfile.ZipFile) -> dict[str, bytes]:
    """The styles (which tell dates from numbers) and shared strings of a workbook: name in a slice -> bytes.
    Part names are matched ignoring case, as Excel does (xl/SharedStrings.xml is sharedStrings.xml)."""
    names = {name.lower(): name for name in archive.namelist()}
    relationships = archive.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    parts = {}
    for relationship in re.finditer(r"<Relationship\b[^>]*>", relationships):
        kind = re.search(r'Type="[^"]*/(styles|sharedStrings)"', relationship[0])
        target = re.search(r'Target="([^"]*)"', relationship[0])
        if kind and target:
            name = names.get(f"xl/{target[1].removeprefix('/xl/')}".lower())
            if name:
                parts[f"{kind[1]}.xml"] = archive.read(name)
    return parts


def _xml_slices(stream: io.BufferedIOBase) -> Iterator[tuple[bytes, bytes]]:
    """(the sheet's XML up to <sheetData>, the next rows of about SLICE_BYTES), cut after a </row>."""
    text, head = b"", None
    for block in iter(lambda: stream.read(1 << 22), b""):
        text += block
        if head is None:
            start = _SHEET_DATA.search(text)
            if start is None:
                continue
            head, text = _DIMENSION.sub(b"", text[: start.end()]), text[start.end() :]
            first = text.find(b"</row>")  # the first row alone: the header, whose text would mix a column's types
            if first >= 0 and text.lstrip().startswith(b"<row "):
                yield head, text[: first + len(b"</row>")]
                text = text[first + len(b"</row>") :]
        while len(text) >= SLICE_BYTES:
            cut = text.rfind(b"</row>", 0, SLICE_BYTES) + len(b"</row>")
            if cut < len(b"</row>"):
                cut = text.find(b"</row>") + len(b"</row>")
                if cut < len(b"</row>"):
                    break  # one very long row: wait for its end
            yield head, text[:cut]
            text = text[cut:]
    if head is not None:
        end = text.find(b"</sheetData>")
        yield head, text[:end] if end >= 0 else text


def _read_slice(xml: bytes, workbook: bytes, shared: dict[str, bytes]) -> pd.DataFrame:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in _SLICE_PARTS.items():
            archive.writestr(name, data)
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/worksheets/sheet1.xml", xml)
        for name, data in shared.items():
            archive.writestr(f"xl/{name}", data)
    extent = _slice_extent(xml)
    del xml
    frame = _read_columns(buffer.getvalue(), extent) if extent else None
    if frame is not None:
        return frame
    buffer.seek(0)
    sheet = python_calamine.CalamineWorkbook.from_object(buffer).get_sheet_by_name("slice")
    if not sheet.start:
        return pd.DataFrame()
    first_row, first_column = sheet.start[0] + 1, sheet.start[1] + 1
    frame = _compact(pd.DataFrame(sheet.to_python(skip_empty_area=True), dtype=object))
    frame.index = pd.RangeIndex(first_row, first_row + len(frame))
    return frame.rename(columns=lambda c: c + first_column)


# --- a slice read a column at a time ----------------------------------------------------------------------
#
# fastexcel reads a slice straight into typed Arrow columns, several times faster than a Python object per
# cell. It is used only where it gives the very cells python-calamine would: each column of one type
# (`strict`: a column mixing text and numbers, a header or a bad cell among numbers, is read by calamine),
# numbers, text, yes/no and date-times only, and the slice's first and last rows and first column as its XML
# says. The cells are then made what calamine gives: blanks '', a date-time at midnight a date.

logging.getLogger("fastexcel").setLevel(logging.ERROR)  # not "falling back to string" for each empty column
_ROW_START = re.compile(rb'<row r="(\d+)"[^>]*>\s*<c r="([A-Z]+)')
_ROW_NUMBER = re.compile(rb'<row r="(\d+)"')
_BARE_CELL = re.compile(rb"<c [^>]*/>")
_FIRST_DAY = dt.datetime(1900, 1, 1)  # earlier is a time of day, which calamine reads as a time


def _slice_extent(xml: bytes) -> tuple[int, int, int] | None:
    """(first row, last row, column of the first row's first cell) by their `r` attributes; None when the slice
    holds no row or what calamine and fastexcel count differently: formulas, cells without a value."""
    first = _ROW_START.search(xml)
    last = _ROW_NUMBER.match(xml, xml.rfind(b"<row "))
    if not first or not last or b"<f" in xml or (b"/>" in xml and _BARE_CELL.search(xml)):
        return None
    return int(first[1]), int(last[1]), _column_number(first[2].decode())


def _read_columns(workbook: bytes, extent: tuple[int, int, int]) -> pd.DataFrame | None:
    """The slice's cells as calamine would give them, read by fastexcel; None when that is not sure."""
    first_row, last_row, first_column = extent
    try:
        batch = (
            fastexcel.read_excel(workbook)
            .load_sheet("slice", header_row=None, dtype_coercion="strict", schema_sample_rows=None)
            .to_arrow()
        )
    except Exception:  # mixed types or anything fastexcel refuses: calamine reads the slice
        return None
    if (
        batch.num_rows != last_row - first_row + 1
        or batch.num_columns == 0
        or batch.column(0).null_count  # the first cell of each row is in the first column: where it starts
    ):
        return None
    columns = {}
    for number, column in enumerate(batch.columns, start=first_column):
        cells = _cells(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
        if cells is None:
            return None
        columns[number] = cells
    return pd.DataFrame(columns, index=pd.RangeIndex(first_row, last_row + 1), dtype=object)


def _cells(column: pa.Array) -> np.ndarray | None:
    """One column's cells as Python objects, equal ones sharing one object, blanks ''; None for a type calamine
    would give differently (times of day, durations, whole numbers)."""
    kind = column.type
    if pa.types.is_null(kind):
        return np.full(len(column), "", dtype=object)
    if pa.types.is_timestamp(kind) and kind.tz is None:
        column = column.cast(pa.timestamp("ms"))
    elif not (pa.types.is_string(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        return None
    if not pa.types.is_string(kind) and (
        column.null_count or (pa.types.is_floating(kind) and pc.any(pc.is_nan(column)).as_py())
    ):
        return None  # fastexcel reads text such as N/A, null or NaN among numbers as blank: calamine keeps it
    encoded = column.dictionary_encode()
    try:
        values = encoded.dictionary.to_pylist()
    except (OverflowError, ValueError):  # a date past year 9999 (a typo): calamine gives its number, rejected
        return None
    if pa.types.is_timestamp(kind):
        if any(value < _FIRST_DAY for value in values):
            return None
        values = [value.date() if value.time() == dt.time() else value for value in values]
    codes = encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
    return np.asarray([*values, ""], dtype=object)[codes]


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """The same cells, equal ones sharing one object (calamine makes one per cell): a column of store codes,
    yes/no, prices or sale times then costs a pointer per row. Values are shared only with equal values of the
    same type (1 and True stay apart). Blanks stay as read: '' or None."""
    columns = {}
    for name, cells in frame.items():
        values = cells.to_numpy(dtype=object)
        types = np.fromiter(map(type, values), dtype=object, count=len(values))
        shared = values.copy()
        for kind in (str, float, int, dt.datetime, dt.date):
            same = types == kind
            if same.sum() > 1:
                codes, uniques = pd.factorize(values[same])
                shared[same] = np.asarray(uniques, dtype=object)[codes]
        columns[name] = shared
    return pd.DataFrame(columns, index=frame.index, dtype=object)


def _concat_columns(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The slices one under the other, a column at a time, so that the whole is never held twice. A column a
    slice lacks is blank there, '' as calamine gives a blank within a sheet (the header, read alone, sets the
    width)."""
    index = pd.Index(np.concatenate([frame.index.to_numpy() for frame in frames]))
    named = {column for frame in frames for column in frame.columns}
    columns = range(min(named), max(named) + 1)  # a column no slice holds is blank too
    combined = {}
    for column in columns:
        parts = [frame.pop(column).to_numpy() if column in frame else np.full(len(frame), "", dtype=object)
                 for frame in frames]  # fmt: skip
        combined[column] = np.concatenate(parts)
    return pd.DataFrame(combined, index=index, dtype=object)


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
    with zipfile.ZipFile(path) as archive:
        part = _sheet_part(archive, sheet_name)
        if part is None or part not in archive.namelist():
            return CellMarks()
        with archive.open(part) as stream:
            return _marks_of(_cell_blocks(stream))


def _cell_blocks(stream: io.BufferedIOBase) -> Iterator[bytes]:
    """The sheet's XML in blocks of about 4 MB, each cut after a cell."""
    rest = b""
    for block in iter(lambda: stream.read(1 << 22), b""):
        text = rest + block
        cut = text.rfind(b"</c>") + len(b"</c>") if b"</c>" in text else 0
        yield text[:cut]
        rest = text[cut:]


def _marks_of(blocks: Iterable[bytes]) -> CellMarks:
    """The marks of a sheet's XML given in blocks cut between cells; only blocks with a formula or an error
    are searched."""
    errors: dict[tuple[int, int], str] = {}
    uncalculated: set[tuple[int, int]] = set()
    summary_rows: set[int] = set()
    for text in blocks:
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
    """The zip part of a worksheet, from workbook.xml (name -> relationship) and its relationships; None when
    the workbook keeps them elsewhere than the usual places (calamine finds them; this reads those only)."""
    try:
        workbook = archive.read("xl/workbook.xml").decode("utf-8", "replace")
        relationships = archive.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    except KeyError:
        return None
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
