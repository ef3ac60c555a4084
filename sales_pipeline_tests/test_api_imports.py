"""POST /data/import through the real inbox sensor and import run, and the uploads it refuses with a 4xx."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from fastapi.testclient import TestClient

from sales_pipeline.api.app import create_app
from sales_pipeline.definitions import defs as code_location
from sales_pipeline.defs.ingest.workbooks import workbook_inbox_sensor
from sales_pipeline.resources import WarehouseResource, WorkbookInboxResource
from sales_pipeline_tests.api_fixtures import WRITE_TOKEN, api_config, auth
from sales_pipeline_tests.conftest import query
from sales_pipeline_tests.workbooks import products, sales, write_workbook

defs = code_location()  # the code location, as the code server loads it
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def client(empty_warehouse: str, tmp_path: Path) -> Iterator[TestClient]:
    config = api_config(empty_warehouse, tmp_path, upload_max_unzipped_bytes=20 * 1024 * 1024)
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        client.headers.update(auth(WRITE_TOKEN))
        yield client


def sensor_and_runs(url: str, folder: Path) -> list[dg.ExecuteInProcessResult]:
    """What the daemon does: one tick of the inbox sensor, then the import runs it requests."""
    resources = {
        "warehouse": WarehouseResource(database_url=url),
        "inbox": WorkbookInboxResource(
            inbox_dir=str(folder / "inbox"),
            archive_dir=str(folder / "archive"),
            rejected_dir=str(folder / "rejected"),
            mappings_dir=str(Path("data/mappings").resolve()),
            dayfirst=True,
            timezone="UTC",
            settle_seconds=0,
        ),
    }
    job = defs.resolve_job_def("import_workbook")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, instance_ref=instance.get_ref(), resources=resources, definitions=defs
        )
        tick = workbook_inbox_sensor.evaluate_tick(context)
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return [
            job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                   run_config=request.run_config, tags=request.tags, resources=resources)
            for request in tick.run_requests
        ]  # fmt: skip


def test_an_uploaded_workbook_is_imported_by_the_sensor_run(client: TestClient, empty_warehouse: str, tmp_path) -> None:
    rows = sales(20)
    rows[3][6] = "lots"  # a quantity that is not a number: one rejected row, and a feedback workbook
    workbook = write_workbook(tmp_path / "upload.xlsx", {"Products": products(), "Sales": rows}).read_bytes()

    accepted = client.post("/data/import", files={"file": ("../../week 47 ;rm -rf.xlsx", workbook, XLSX)})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    # The sender's name gave only its stem, cleaned; the file sits at the top of the inbox.
    assert body["file_name"] == "week 47 _rm -rf.xlsx" and body["bytes"] == len(workbook)
    assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == ["week 47 _rm -rf.xlsx"]
    status_url = body["status_url"]
    assert client.get(status_url).json()["status"] == "waiting"

    (run,) = sensor_and_runs(empty_warehouse, tmp_path)
    assert run.success
    result = client.get(status_url).json()
    assert result["status"] == "loaded_with_rejects" and result["content_hash"] == body["content_hash"]
    assert (result["rows_loaded"], result["rows_rejected"]) == (24, 1)  # 5 products, 19 of the 20 sales lines
    assert {sheet["sheet"]: sheet["rows_loaded"] for sheet in result["sheets"]} == {"Products": 5, "Sales": 19}
    assert query(empty_warehouse, "SELECT count(*) FROM core.sales")[0][0] == 19
    feedback = client.get(result["feedback_url"])
    assert feedback.status_code == 200 and feedback.content[:2] == b"PK"
    assert client.get("/data/imports/" + "0" * 64).status_code == 404


def test_an_upload_whose_import_crashes_reads_failed_and_sheets_not_read_are_named(
    client: TestClient, empty_warehouse: str, tmp_path
) -> None:
    sheets = {"Products": products(), "Sales": sales(4), "Notes": [["call the shop"]]}
    workbook = write_workbook(tmp_path / "upload.xlsx", sheets).read_bytes()
    status_url = client.post("/data/import", files={"file": ("week.xlsx", workbook, XLSX)}).json()["status_url"]
    query(empty_warehouse, "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS"
                           " $$ BEGIN RAISE EXCEPTION 'a planted fault'; END $$;"
                           " CREATE TRIGGER refuse BEFORE INSERT ON core.sales FOR EACH STATEMENT"
                           " EXECUTE FUNCTION public.refuse(); SELECT 1")  # fmt: skip
    try:
        with pytest.raises(psycopg2.errors.RaiseException, match="a planted fault"):  # the run fails, with it
            sensor_and_runs(empty_warehouse, tmp_path)
    finally:
        query(empty_warehouse, "DROP TRIGGER refuse ON core.sales; DROP FUNCTION public.refuse(); SELECT 1")

    failed = client.get(status_url).json()
    assert failed["status"] == "failed" and failed["reason"].startswith("the import failed (RaiseException")
    # Dropped again once the fault is gone, the same bytes load, and the sheet not read is named.
    client.post("/data/import", files={"file": ("week.xlsx", workbook, XLSX)})
    (run,) = sensor_and_runs(empty_warehouse, tmp_path)
    loaded = client.get(status_url).json()
    assert (run.success, loaded["status"]) == (True, "loaded")
    assert loaded["ignored_sheets"] == {
        "Notes": "not a sheet of the template (Products, Stores, Customers, Sales, Stock, Calendar, Promotions)"
    }


def test_a_workbook_for_a_mapping_goes_to_its_folder(client: TestClient, tmp_path) -> None:
    workbook = write_workbook(tmp_path / "orders.xlsx", {"Orders": [["Order ID"], ["A-1"]]}).read_bytes()
    accepted = client.post("/data/import", files={"file": ("orders.xlsx", workbook)}, data={"mapping": "superstore"})
    assert accepted.status_code == 202
    assert (tmp_path / "inbox" / "superstore" / "orders.xlsx").read_bytes() == workbook
    unknown = client.post("/data/import", files={"file": ("orders.xlsx", workbook)}, data={"mapping": "../etc"})
    assert unknown.status_code == 422 and "no mapping named '../etc': use one of" in unknown.json()["detail"]


def zip_bomb(unzipped_mb: int) -> bytes:
    """A workbook-shaped zip whose one sheet inflates to `unzipped_mb` megabytes of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            for _ in range(unzipped_mb):
                sheet.write(b"\0" * (1024 * 1024))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "status", "reason"),
    [
        ("sales.xlsx", b"Order ID,Quantity\nA-1,2\n", 415, "not an Excel workbook (.xlsx, .xlsm or .xls), whatever its"
         " name: it is text (a CSV file?)"),
        ("bomb.xlsx", zip_bomb(40), 413, "unzips to more than 20 MB (API_UPLOAD_MAX_UNZIPPED_MB)"),
        ("a.xlsx", b"PK\x03\x04 not really a zip", 422, "the workbook is damaged"),
        ("notes.xlsx", b"", 422, "the file is empty"),
        ("report.docx", zip_bomb(0).replace(b"xl/workbook.xml", b"wd/document.xml"), 415, "not an Excel workbook"),
    ],
)  # fmt: skip
def test_bad_uploads_get_a_4xx_with_the_reason(client: TestClient, tmp_path, name, content, status, reason) -> None:
    response = client.post("/data/import", files={"file": (name, content, XLSX)})
    assert response.status_code == status and reason in response.json()["detail"]
    assert not (tmp_path / "inbox").exists()  # nothing reached the inbox


def test_a_60_mb_file_is_refused_before_it_is_read(client: TestClient, tmp_path) -> None:
    big = b"\0" * (60 * 1024 * 1024)
    response = client.post("/data/import", files={"file": ("big.xlsx", big, XLSX)})
    assert response.status_code == 413 and "larger than 50 MB (API_UPLOAD_MAX_MB)" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it arrives
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.xlsx"\r\n\r\n'
        for _ in range(60):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--x--\r\n"

    streamed = client.post(
        "/data/import", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert streamed.status_code == 413 and "API_UPLOAD_MAX_MB" in streamed.json()["detail"]
    assert not (tmp_path / "inbox").exists()


def test_no_file_field(client: TestClient) -> None:
    response = client.post("/data/import", data={"mapping": ""})
    assert (
        response.status_code == 422 and "send the workbook as the multipart field 'file'" in response.json()["detail"]
    )
