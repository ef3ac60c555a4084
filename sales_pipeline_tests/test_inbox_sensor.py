"""The inbox sensor, driven tick by tick, and the import asset it triggers, in a real Dagster instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from sales_pipeline.definitions import defs as code_location
from sales_pipeline.defs.ingest.workbooks import (
    locate_workbook,
    workbook_inbox_sensor,
    workbook_partition_key,
    workbook_partitions,
)
from sales_pipeline.resources import WarehouseResource, WorkbookInboxResource
from sales_pipeline_tests.conftest import query
from sales_pipeline_tests.workbooks import SALES_HEADER, products, sales, write_workbook

defs = code_location()  # the code location, as the code server loads it

IMPORT_KEY = dg.AssetKey(["ingest", "workbook_import"])


@pytest.fixture
def resources(empty_warehouse: str, folders: dict[str, Path]) -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(database_url=empty_warehouse),
        "inbox": WorkbookInboxResource(
            inbox_dir=str(folders["inbox"]),
            archive_dir=str(folders["archive"]),
            rejected_dir=str(folders["rejected"]),
            mappings_dir=str(Path("data/mappings").resolve()),
            dayfirst=True,
            timezone="UTC",
            settle_seconds=0,
        ),
    }


def tick(instance: dg.DagsterInstance, resources: dict, cursor: str | None) -> dg.SensorResult:
    # With an instance ref, as the daemon builds it: run requests for partitions added in the same
    # tick resolve against the instance's partitions plus those additions.
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), cursor=cursor, resources=resources, definitions=defs
    )
    return workbook_inbox_sensor.evaluate_tick(context)


def test_one_run_per_new_file_and_none_on_the_next_tick(resources, folders):
    write_workbook(folders["inbox"] / "a.xlsx", {"Products": products(), "Sales": sales(10)})
    write_workbook(folders["inbox"] / "b.xlsx", {"Products": products(), "Sales": sales(12)})
    (folders["inbox"] / "~$a.xlsx").write_bytes(b"Excel's lock file")  # not a workbook to import

    with dg.instance_for_test() as instance:
        first = tick(instance, resources, None)
        second = tick(instance, resources, first.cursor)

    assert sorted(r.tags["workbook"] for r in first.run_requests) == ["a.xlsx", "b.xlsx"]
    assert all(r.run_key == r.tags["content_hash"] for r in first.run_requests)
    keys = [key for request in first.dynamic_partitions_requests for key in request.partition_keys]
    assert sorted(keys) == sorted(r.partition_key for r in first.run_requests)
    assert second.run_requests == []
    assert second.skip_message == "No new workbook in the inbox"


def test_a_file_in_a_mapping_folder_is_imported_with_that_mapping(resources, folders):
    write_workbook(folders["inbox"] / "superstore" / "orders.xlsx", {"Orders": [["Order ID"]]})

    with dg.instance_for_test() as instance:
        result = tick(instance, resources, None)

    (request,) = result.run_requests
    assert request.run_config["ops"]["ingest__workbook_import"]["config"]["mapping"] == "superstore"


def test_the_requested_run_imports_the_workbook_and_a_redrop_is_recorded_as_duplicate(resources, folders):
    path = write_workbook(folders["inbox"] / "week.xlsx", {"Products": products(), "Sales": sales(30)})
    spare = shutil.copy(path, folders["inbox"].parent / "spare.xlsx")
    job = defs.resolve_job_def("import_workbook")

    with dg.instance_for_test() as instance:
        start = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # the daemon's first tick
        first = tick(instance, resources, None)
        _run(instance, job, first, resources)
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=start.cursor)
        shutil.copy(spare, folders["inbox"] / "week again.xlsx")
        second = tick(instance, resources, first.cursor)
        _run(instance, job, second, resources)
        key = dg.AssetKey(["ingest", "workbook_import"])
        materializations = instance.fetch_materializations(key, limit=10).records
        observations = instance.fetch_observations(key, limit=10).records
        partitions = instance.get_dynamic_partitions(workbook_partitions.name)
        automation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)

    url = resources["warehouse"].database_url
    assert query(url, "SELECT count(*) FROM core.sales") == [(30,)]
    assert query(url, "SELECT file_name, status FROM ops.import_ledger ORDER BY import_id") == [
        ("week.xlsx", "loaded"),
        ("week again.xlsx", "duplicate"),
    ]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key  # the re-drop gets its own run
    assert len(partitions) == 1  # same bytes, same partition
    # The re-drop is observed, not materialized: the partition's latest record is still the original
    # import, and nothing downstream (core tables, marts) is asked to refresh.
    assert [r.asset_materialization.metadata["status"].value for r in materializations] == ["loaded"]
    assert [r.asset_observation.metadata["status"].value for r in observations] == ["duplicate"]
    assert before.total_requested > 0 and automation.total_requested == 0
    assert list(folders["inbox"].iterdir()) == []  # everything was put away


def test_a_workbook_partition_is_named_after_its_file(resources, folders):
    write_workbook(folders["inbox"] / "week-47.xlsx", {"Products": products(), "Sales": sales(10)})

    with dg.instance_for_test() as instance:
        (request,) = tick(instance, resources, None).run_requests

    assert request.partition_key.startswith("week-47-")
    assert request.partition_key == f"week-47-{request.tags['content_hash'][:8]}"
    # Any name gives a short key of letters, digits, _ and -; the hash keeps two contents apart.
    long_name = workbook_partition_key("Ventes été (Lyon) #2 " + "x" * 100 + ".xlsx", "0123456789abcdef")
    assert long_name == "Ventes-ete-Lyon-2-" + "x" * 22 + "-01234567"
    assert workbook_partition_key("~~~.xlsx", "0123456789abcdef") == "workbook-01234567"


def test_a_workbook_with_rejects_keeps_its_warning_after_others_import(resources, folders):
    rows = sales(20)
    rows[5][SALES_HEADER.index("Quantity")] = "abc"
    week_47 = write_workbook(folders["inbox"] / "week-47.xlsx", {"Products": products(), "Sales": rows})
    spare = shutil.copy(week_47, folders["inbox"].parent / "spare.xlsx")
    job = defs.resolve_job_def("import_workbook")

    with dg.instance_for_test() as instance:
        first = tick(instance, resources, None)
        _run(instance, job, first, resources)
        write_workbook(folders["inbox"] / "week-48.xlsx", {"Products": products(), "Sales": sales(20)})
        second = tick(instance, resources, first.cursor)
        _run(instance, job, second, resources)
        shutil.copy(spare, folders["inbox"] / "week-47 resent.xlsx")  # the same bytes again: a duplicate
        _run(instance, job, tick(instance, resources, second.cursor), resources)
        week_47_key, week_48_key = first.run_requests[0].partition_key, second.run_requests[0].partition_key
        checks = {key: _latest_checks(instance, key) for key in (week_47_key, week_48_key)}

    assert checks[week_47_key] == {"workbook_loaded": (True, "ERROR"), "no_rejected_rows": (False, "WARN")}
    assert checks[week_48_key] == {"workbook_loaded": (True, "ERROR"), "no_rejected_rows": (True, "WARN")}
    # A re-run from the UI (no path in its config) finds the archived file, by a named or an older bare-hash key.
    old_key = first.run_requests[0].tags["content_hash"][:16]
    for key in (week_47_key, old_key):
        assert locate_workbook(key, "", resources["inbox"]).read_bytes() == Path(spare).read_bytes()


def _latest_checks(instance: dg.DagsterInstance, partition: str) -> dict[str, tuple[bool, str]]:
    """Each check's latest result on one partition, as the UI's check history of that partition shows it."""
    from dagster._core.event_api import PartitionKeyFilter

    latest = {}
    for name in ("workbook_loaded", "no_rejected_rows"):
        (record,) = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(IMPORT_KEY, name), limit=1, partition_filter=PartitionKeyFilter(key=partition)
        )
        evaluation = record.event.asset_check_evaluation
        latest[name] = (evaluation.passed, evaluation.severity.value)
    return latest


def _run(instance, job, sensor_result, resources) -> None:
    for request in sensor_result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for request in sensor_result.run_requests:
        result = job.execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            run_config=request.run_config,
            tags=request.tags,
            resources=resources,
        )
        assert result.success


def test_core_table_assets_publish_row_counts_and_previews(resources, folders):
    path = write_workbook(folders["inbox"] / "week.xlsx", {"Products": products(), "Sales": sales(30)})
    job = defs.resolve_job_def("import_workbook")

    with dg.instance_for_test() as instance:
        _run(instance, job, tick(instance, resources, None), resources)
        refresh = defs.resolve_job_def("refresh_core_tables").execute_in_process(instance=instance, resources=resources)
        assert refresh.success
        sales_event = instance.get_latest_materialization_event(dg.AssetKey(["core", "sales"]))

    metadata = sales_event.asset_materialization.metadata
    assert metadata["dagster/row_count"].value == 30
    assert metadata["preview"].value.startswith("| order_id ")
    assert not path.exists()


def test_the_same_bytes_under_two_names_dropped_together_load_once_and_both_are_kept(resources, folders):
    first = write_workbook(folders["inbox"] / "week.xlsx", {"Products": products(), "Sales": sales(20)})
    shutil.copy(first, folders["inbox"] / "week (copy).xlsx")
    original = first.read_bytes()
    job = defs.resolve_job_def("import_workbook")

    with dg.instance_for_test() as instance:
        result = tick(instance, resources, None)
        _run(instance, job, result, resources)

    assert len({r.run_key for r in result.run_requests}) == 2  # each file gets a run of its own
    assert len({r.partition_key for r in result.run_requests}) == 1  # on the partition of the first name
    url = resources["warehouse"].database_url
    assert query(url, "SELECT file_name, status FROM ops.import_ledger ORDER BY import_id") == [
        ("week (copy).xlsx", "loaded"),
        ("week.xlsx", "duplicate"),
    ]
    assert list(folders["inbox"].iterdir()) == []
    kept = sorted(folders["archive"].rglob("*.xlsx"))
    assert [p.name for p in kept] == ["week (copy).xlsx", "week.xlsx"]
    assert all(p.read_bytes() == original for p in kept)


def test_links_in_the_inbox_are_refused_on_the_ledger_and_their_targets_left_alone(resources, folders, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    target = write_workbook(elsewhere / "orders.xlsx", {"Products": products(), "Sales": sales(5)})
    original = target.read_bytes()
    (folders["inbox"] / "superstore").symlink_to(elsewhere, target_is_directory=True)
    (folders["inbox"] / "orders.xlsx").symlink_to(target)

    with dg.instance_for_test() as instance:
        first = tick(instance, resources, None)
        second = tick(instance, resources, first.cursor)

    assert first.run_requests == [] and second.run_requests == []
    url = resources["warehouse"].database_url
    ledger = query(url, "SELECT file_name, status, reason, archived_path FROM ops.import_ledger ORDER BY 1")
    assert [row[:2] for row in ledger] == [("orders.xlsx", "rejected"), ("superstore", "rejected")]
    assert all(reason.startswith("a symbolic link to ") for _, _, reason, _ in ledger)
    assert all(Path(kept).is_symlink() and Path(kept).is_relative_to(folders["rejected"]) for *_, kept in ledger)
    assert list(folders["inbox"].iterdir()) == []  # the links are put away, once
    assert sorted(p.name for p in elsewhere.iterdir()) == ["orders.xlsx"]  # the target: where it was,
    assert target.read_bytes() == original  # as it was


def test_dot_names_are_imported_when_they_name_a_workbook_and_reported_otherwise(resources, folders):
    write_workbook(folders["inbox"] / "..xlsx", {"Products": products(), "Sales": sales(5)})
    (folders["inbox"] / ".notes.txt").write_text("a hidden note")
    job = defs.resolve_job_def("import_workbook")

    with dg.instance_for_test() as instance:
        first = tick(instance, resources, None)
        _run(instance, job, first, resources)
        second = tick(instance, resources, first.cursor)

    assert [r.tags["workbook"] for r in first.run_requests] == ["..xlsx"]
    url = resources["warehouse"].database_url
    assert query(url, "SELECT file_name, status FROM ops.import_ledger") == [("..xlsx", "loaded")]
    assert second.skip_message == (
        "No new workbook in the inbox; 1 hidden file(s) not imported (a name starting with '.'): .notes.txt"
    )


def test_a_255_byte_name_with_a_rejected_row_imports_through_the_sensors_run(resources, folders):
    rows = sales(10)
    rows[3][SALES_HEADER.index("Quantity")] = "abc"
    name = "ventes " + "é" * 121 + ".xlsx"  # 255 bytes in UTF-8
    write_workbook(folders["inbox"] / name, {"Products": products(), "Sales": rows})
    job = defs.resolve_job_def("import_workbook")

    with dg.instance_for_test() as instance:
        _run(instance, job, tick(instance, resources, None), resources)

    url = resources["warehouse"].database_url
    ledger = query(url, "SELECT file_name, status, rows_rejected, feedback_path FROM ops.import_ledger")
    assert [row[:3] for row in ledger] == [(name, "loaded_with_rejects", 1)]
    assert Path(ledger[0][3]).exists() and len(Path(ledger[0][3]).name.encode()) <= 255
    assert list(folders["inbox"].iterdir()) == []
