"""POST /data/import: an uploaded workbook checked, then written into the inbox in one step.

The checks look at the bytes, never at the name: an .xlsx or .xlsm is a zip with an Excel workbook part,
an .xls is an OLE container with a Workbook stream. A zip is opened with a budget: at most
`max_unzipped` bytes declared in all, and every part read through once with its CRC checked (a part
that claims less than it holds fails its CRC), so a zip bomb costs the API a bounded read and never
reaches the import. The file name the sender gave only supplies the stem of the inbox name.

The file is written under a hidden `.part` name the inbox sensor skips, flushed to disk, then linked
under its final name (never replacing a file waiting there: `name (2).xlsx`), so the sensor never
sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO

from sales_pipeline.excel.importer import claim_name, move_exclusively

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
MAX_ZIP_PARTS = 10_000
MAPPING_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
CHUNK = 1 << 20


class UploadRejected(Exception):
    """A bad upload: the HTTP status to answer and the reason, in a sentence."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def workbook_kind(upload: BinaryIO, max_unzipped: int) -> str:
    """'xlsx', 'xlsm' or 'xls' from the content, or UploadRejected saying what the file is not."""
    upload.seek(0)
    head = upload.read(8)
    upload.seek(0)
    if head.startswith(OLE_MAGIC):
        return _ole_kind(upload)
    if head.startswith(ZIP_MAGIC):
        return _zip_kind(upload, max_unzipped)
    if not head:
        raise UploadRejected(422, "the file is empty")
    looks = "text (a CSV file?)" if _is_text(upload) else "neither a zip-based nor a legacy Excel file"
    raise UploadRejected(
        415, f"the file is not an Excel workbook (.xlsx, .xlsm or .xls), whatever its name: it is {looks}"
    )


def _is_text(upload: BinaryIO) -> bool:
    sample = upload.read(4096)
    upload.seek(0)
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in sample


def _ole_kind(upload: BinaryIO) -> str:
    # An OLE container also holds Word and Outlook files: a workbook has a Workbook (or Excel 5's Book) stream.
    content = upload.read()
    upload.seek(0)
    if "EncryptionInfo".encode("utf-16-le") in content:
        raise UploadRejected(422, "the workbook is encrypted with a password: save it without a password")
    if "Workbook".encode("utf-16-le") not in content and "Book".encode("utf-16-le") not in content:
        raise UploadRejected(415, "the file is an Office document but not an Excel workbook")
    return "xls"


def _zip_kind(upload: BinaryIO, max_unzipped: int) -> str:
    try:
        with zipfile.ZipFile(upload) as archive:
            parts = archive.infolist()
            if len(parts) > MAX_ZIP_PARTS:
                raise UploadRejected(413, f"the workbook has {len(parts):,} parts: more than {MAX_ZIP_PARTS:,}")
            declared = sum(part.file_size for part in parts)
            if declared > max_unzipped:
                raise UploadRejected(413, _too_big_unzipped(max_unzipped))
            names = {part.filename for part in parts}
            if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
                raise UploadRejected(415, "the file is a zip archive but not an Excel workbook (.xlsx or .xlsm)")
            _read_within(archive, parts, max_unzipped)
            content_types = archive.read("[Content_Types].xml")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, ValueError) as error:
        raise UploadRejected(422, f"the workbook is damaged: {str(error).strip() or type(error).__name__}") from None
    finally:
        upload.seek(0)
    return "xlsm" if b"macroEnabled" in content_types else "xlsx"


def _read_within(archive: zipfile.ZipFile, parts: list[zipfile.ZipInfo], budget: int) -> None:
    """Read every part through (checking its CRC) within `budget` bytes in all."""
    total = 0
    for part in parts:
        with archive.open(part) as stream:
            while block := stream.read(CHUNK):
                total += len(block)
                if total > budget:
                    raise UploadRejected(413, _too_big_unzipped(budget))


def _too_big_unzipped(budget: int) -> str:
    return f"the workbook unzips to more than {budget // (1024 * 1024):,} MB (API_UPLOAD_MAX_UNZIPPED_MB)"


def inbox_name(sender_name: str | None, kind: str) -> str:
    """A plain file name from the sender's: its last path part's stem in letters, digits, space, `_-.()`,
    no leading dot, at most 100 characters, with the suffix of the content's kind."""
    base = re.split(r"[\\/]", sender_name or "")[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = re.sub(r"[^A-Za-z0-9 _().-]+", "_", stem).strip(" .")[:100].strip(" .")
    return f"{stem or 'upload'}.{kind}"


def mapping_folder(inbox_dir: Path, mappings_dir: Path, mapping: str) -> Path:
    """The inbox folder of a mapping (inbox/<name>/), which must exist in the mappings folder."""
    if not mapping:
        return inbox_dir
    if not MAPPING_NAME.fullmatch(mapping) or not (mappings_dir / f"{mapping}.yaml").is_file():
        known = sorted(p.stem for p in mappings_dir.glob("*.yaml")) if mappings_dir.is_dir() else []
        raise UploadRejected(422, f"no mapping named {mapping[:64]!r}: use one of {', '.join(known) or 'none'}")
    return inbox_dir / mapping


def write_into_inbox(upload: BinaryIO, folder: Path, name: str) -> tuple[Path, str, int]:
    """Copy the upload into `folder` as `name` (or `name (2)`...) in one step; its path, sha256 and size."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    size = 0
    upload.seek(0)
    try:
        with partial.open("xb") as out:
            while block := upload.read(CHUNK):
                digest.update(block)
                size += len(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        partial.chmod(0o644)
        path = claim_name(folder, name, lambda destination: move_exclusively(partial, destination))
    finally:
        partial.unlink(missing_ok=True)
    return path, digest.hexdigest(), size


def too_big(limit: int) -> str:
    return f"the file is larger than {limit // (1024 * 1024):,} MB (API_UPLOAD_MAX_MB)"
