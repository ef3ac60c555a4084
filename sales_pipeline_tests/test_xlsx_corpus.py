"""Real-world .xlsx files that do not follow the template: a clear outcome for each, never a crash or a hang.

The corpus (65 files from the calamine project's tests, see its README) holds what real files hold:
1904 dates, merged cells, shared formulas, hidden and chart sheets, rich text, pictures, pivot
tables, Strict OOXML, a damaged zip and an encrypted file. Each is dropped into the inbox and
imported into the real warehouse; each must be recorded once, kept byte for byte, and either load
rows or be rejected with a reason that says what is wrong.
"""

from __future__ import annotations

import shutil
import threading
from functools import partial
from pathlib import Path

import pytest
import python_calamine

from sales_pipeline.excel.importer import ImportSettings, import_workbook
from sales_pipeline.excel.layout import SHEETS
from sales_pipeline.records import ImportResult
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import XLSX_CORPUS, query, table_counts
from sales_pipeline_tests.workbooks import PRODUCTS_HEADER, SALES_HEADER, write_workbook

if not XLSX_CORPUS.is_dir():
    pytest.skip(f"the .xlsx corpus is absent ({XLSX_CORPUS})", allow_module_level=True)

CORPUS = sorted(XLSX_CORPUS.glob("*.xlsx"))
SECONDS_PER_FILE = 10  # every file imports in well under a second; 65 of them in well under a minute
WAREHOUSE_TABLES = ("core.products", "core.stores", "core.customers", "core.sales", "core.stock", "raw.excel_rows",
                    "ops.import_rejects")  # fmt: skip
# Files rejected for what they are rather than for their sheets: words the reason must contain.
UNREADABLE = {
    "pass_protected.xlsx": ("encrypted", "password"),
    "issue252.xlsx": ("damaged", "checksum", "xl/_rels/workbook.xml.rels"),
}


def import_within(seconds: float, path: Path, settings: ImportSettings, url: str) -> ImportResult:
    """import_workbook, failing the test (not hanging the run) if it takes longer than `seconds`."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = import_workbook(partial(transaction, url), path, settings)
        except BaseException as error:  # handed to the test below
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"import {path.name}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"import_workbook({path.name}) still running after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def worksheet_names(path: Path) -> list[str]:
    """The workbook's worksheets in order, chart sheets left out (they hold no rows)."""
    workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    return [m.name for m in workbook.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet]


def no_template_sheet_reason(path: Path) -> str:
    expected = ", ".join(sheet.name for sheet in SHEETS)
    found = ", ".join(repr(name) for name in worksheet_names(path))
    return f"no sheet matches the import template: expected one of {expected}; the workbook has {found}"


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_the_corpus_is_all_there():
    assert len(CORPUS) == 65


@pytest.mark.parametrize("original", CORPUS, ids=[p.name for p in CORPUS])
def test_each_real_world_workbook_is_loaded_or_rejected_with_a_reason(
    original, import_settings, folders, empty_warehouse
):
    url = empty_warehouse
    dropped = folders["inbox"] / original.name
    shutil.copyfile(original, dropped)

    result = import_within(SECONDS_PER_FILE, dropped, import_settings, url)

    columns = "import_id, file_name, status, reason, rows_loaded, archived_path"
    ledger = query(url, f"SELECT {columns} FROM ops.import_ledger")
    assert len(ledger) == 1, ledger
    import_id, file_name, status, reason, rows_loaded, archived_path = ledger[0]
    assert (import_id, file_name, status, reason) == (result.import_id, original.name, result.status, result.reason)
    assert archived_path == result.archived_path
    kept = Path(result.archived_path)
    assert kept.read_bytes() == original.read_bytes()  # the sender's file, byte for byte
    assert not dropped.exists()  # moved out of the inbox, so the sensor does not pick it up again
    counts = table_counts(url)

    if status == "rejected":
        assert kept.parent.parent == folders["rejected"]
        assert files_under(folders["rejected"]) == [kept]
        assert files_under(folders["archive"]) == []
        assert rows_loaded == 0 and result.sheets == ()
        assert {table: counts[table] for table in WAREHOUSE_TABLES} == dict.fromkeys(WAREHOUSE_TABLES, 0)
        if original.name in UNREADABLE:
            for word in UNREADABLE[original.name]:
                assert word in reason, reason
        else:
            assert reason == no_template_sheet_reason(original)
    else:  # none does today; one that does must load rows, not be an empty "success"
        assert status in ("loaded", "loaded_with_rejects"), (status, reason)
        assert rows_loaded == result.rows_loaded > 0
        assert kept.parent.parent == folders["archive"]
        assert sum(counts[t] for t in WAREHOUSE_TABLES if t.startswith("core.")) > 0


def test_template_sheets_without_data_rows_are_rejected(import_settings, folders, empty_warehouse):
    sheets = {
        "Products": [PRODUCTS_HEADER],
        "Sales": [SALES_HEADER, ["  ", None, "", None, None, " "]],  # a row of blanks is no data either
        "Notes": [["Fill in the sheets and send them back"]],
    }
    path = write_workbook(folders["inbox"] / "blank template.xlsx", sheets)
    original = path.read_bytes()

    result = import_within(SECONDS_PER_FILE, path, import_settings, empty_warehouse)

    assert result.status == "rejected"
    assert result.reason == "no data rows: 'Products', 'Sales' hold a header row but nothing below it"
    assert query(empty_warehouse, "SELECT file_name, status, reason FROM ops.import_ledger") == [
        ("blank template.xlsx", "rejected", result.reason)
    ]
    assert Path(result.archived_path).read_bytes() == original
    assert Path(result.archived_path).is_relative_to(folders["rejected"])
    assert not path.exists()
    counts = table_counts(empty_warehouse)
    assert {table: counts[table] for table in WAREHOUSE_TABLES} == dict.fromkeys(WAREHOUSE_TABLES, 0)
