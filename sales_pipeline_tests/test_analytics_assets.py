"""The marts as Dagster runs them: the sales-changed sensor, a range run, the marts that follow."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from sales_pipeline.definitions import defs as code_location
from sales_pipeline.defs.analytics.sensors import RANGE_END_TAG, RANGE_START_TAG
from sales_pipeline.excel.importer import import_workbook
from sales_pipeline.resources import AnalyticsResource, WarehouseResource
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import query
from sales_pipeline_tests.workbooks import SALES_HEADER, products, sales, write_workbook

defs = code_location()  # the code location, as the code server loads it
sales_changed_sensor = defs.resolve_sensor_def("sales_changed_sensor")

MARTS = ("daily_kpis", "sales_trends", "stock_health", "top_products", "dashboard")


@pytest.fixture
def resources(empty_warehouse: str, tmp_path: Path) -> dict:
    return {
        "warehouse": WarehouseResource(database_url=empty_warehouse),
        "analytics": AnalyticsResource(timezone="UTC", dashboard_dir=str(tmp_path / "dashboard")),
    }


def import_sales(warehouse, import_settings, folders, lines: int) -> None:
    """A workbook of the sample products and `lines` order lines, imported."""
    workbook = write_workbook(folders["inbox"] / "a.xlsx", {"Products": products(), "Sales": sales(lines)})
    import_workbook(warehouse.transaction, workbook, import_settings)


def tick(instance: dg.DagsterInstance, resources: dict, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), cursor=cursor, resources=resources, definitions=defs
    )
    return sales_changed_sensor.evaluate_tick(context)


def test_an_import_triggers_one_run_for_the_days_it_changed(resources, import_settings, folders, warehouse):
    # 30 lines, 7 minutes apart from 2026-11-02 09:00: all on 2026-11-02; a second file adds 2026-11-05.
    # Each span gets a day either side (a date without a time may fall on the neighbouring day).
    import_sales(warehouse, import_settings, folders, 30)
    later = sales(4)
    for row in later[1:]:
        row[0] = "L" + row[0]
        row[SALES_HEADER.index("Sold At")] = row[SALES_HEADER.index("Sold At")].replace(day=5)
    with dg.instance_for_test() as instance:
        first = tick(instance, resources, None)
        import_workbook(
            warehouse.transaction, write_workbook(folders["inbox"] / "b.xlsx", {"Sales": later}), import_settings
        )
        second = tick(instance, resources, first.cursor)
        third = tick(instance, resources, second.cursor)

    ((request,),) = [first.run_requests]
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2026-11-01", "2026-11-03")
    assert (second.run_requests[0].tags[RANGE_START_TAG], second.run_requests[0].tags[RANGE_END_TAG]) == (
        "2026-11-04", "2026-11-06",
    )  # fmt: skip
    assert third.run_requests == []


def test_the_marts_follow_and_the_dashboard_file_is_written(
    resources, import_settings, folders, tmp_path, warehouse, empty_warehouse
):
    import_sales(warehouse, import_settings, folders, 300)
    url = empty_warehouse
    with dg.instance_for_test() as instance:
        (request,) = tick(instance, resources, None).run_requests
        kpis = defs.resolve_job_def("refresh_daily_kpis").execute_in_process(
            instance=instance, tags=request.tags, resources=resources
        )
        rest = defs.resolve_job_def("refresh_marts").execute_in_process(instance=instance, resources=resources)
        checks = kpis.get_asset_check_evaluations()

    assert kpis.success and rest.success
    assert [(c.check_name, c.passed) for c in checks] == [("revenue_reconciles_with_core_sales", True)]
    days = query(url, "SELECT count(*) FROM marts.daily_kpis WHERE scope = 'all'")[0][0]
    assert days == len({row[2].date() for row in sales(300)[1:]})
    document = json.loads((tmp_path / "dashboard" / "dashboard.json").read_text())
    assert document["as_of"] == query(url, "SELECT max(day)::text FROM marts.daily_kpis")[0][0]
    assert len(document["revenue_30d"]) == 30
    assert document["top_products"] and document["alerts"] == []
    assert query(url, "SELECT count(*) FROM marts.dashboard WHERE scope = 'all'") == [(1,)]
    # Each mart shows its table's columns and row count in Dagster's catalog.
    [trends] = rest.asset_materializations_for_node("marts__sales_trends")
    columns = [column.name for column in trends.metadata["dagster/column_schema"].value.columns]
    assert columns[:3] == ["day", "scope", "scope_id"] and "ma_28" in columns
    assert trends.metadata["dagster/row_count"].value == query(url, "SELECT count(*) FROM marts.sales_trends")[0][0]


def test_each_day_of_a_range_run_is_materialized_with_its_own_figures(
    resources, import_settings, folders, warehouse, empty_warehouse
):
    import_sales(warehouse, import_settings, folders, 300)
    with dg.instance_for_test() as instance:
        (request,) = tick(instance, resources, None).run_requests
        run = defs.resolve_job_def("refresh_daily_kpis").execute_in_process(
            instance=instance, tags=request.tags, resources=resources
        )
        first, last = request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
        days = dg.DailyPartitionsDefinition(
            start_date=first, end_date=str(dt.date.fromisoformat(last) + dt.timedelta(days=1))
        ).get_partition_keys()
        status = instance.get_status_by_partition(dg.AssetKey(["marts", "daily_kpis"]), days, code_location_days())

    per_day = dict(query(empty_warehouse, "SELECT day::text, revenue::float FROM marts.daily_kpis WHERE scope = 'all'"))
    materialized = {m.partition: m.metadata for m in run.asset_materializations_for_node("marts__daily_kpis")}
    assert sorted(materialized) == days and len(days) > 2
    assert {day: meta["revenue"].value for day, meta in materialized.items()} == {d: per_day.get(d, 0.0) for d in days}
    assert {meta["run_days"].value for meta in materialized.values()} == {f"{first} .. {last}"}
    assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    assert [c.passed for c in run.get_asset_check_evaluations()] == [True]


def code_location_days() -> dg.PartitionsDefinition:
    return defs.resolve_assets_def(dg.AssetKey(["marts", "daily_kpis"])).partitions_def


def test_the_reconciliation_check_fails_when_the_marts_are_wrong(
    resources, import_settings, folders, warehouse, empty_warehouse
):
    import_sales(warehouse, import_settings, folders, 30)
    url = empty_warehouse
    with dg.instance_for_test() as instance:
        (request,) = tick(instance, resources, None).run_requests
        job = defs.resolve_job_def("refresh_daily_kpis")
        job.execute_in_process(instance=instance, tags=request.tags, resources=resources)
        # A sale changes behind the marts' back: the next check of that day must see it.
        query(url, "UPDATE core.sales SET revenue = revenue + 0.01 WHERE order_id = 'O00000' AND line_number = 1"
                   " RETURNING 1")  # fmt: skip
        from sales_pipeline.warehouse.quality import revenue_mismatches

        with transaction(url) as cursor:
            result = revenue_mismatches(cursor, "UTC", "2026-11-02", "2026-11-02")

    assert not result.passed and result.failures == 1
    assert result.sample[0]["day"] == "2026-11-02"


@pytest.mark.parametrize(
    ("rule", "breakage"),
    [
        ("every_sale_has_a_known_product", "UPDATE core.sales SET product_id = 'GHOST' WHERE line_number = 1"),
        ("no_sale_in_the_future", "UPDATE core.sales SET sold_at = now() + interval '2 days' WHERE line_number = 1"),
        ("quantities_and_prices_in_range", "UPDATE core.sales SET quantity = 50000 WHERE line_number = 1"),
    ],
)
def test_core_checks_fail_on_broken_data(
    resources, import_settings, folders, rule, breakage, warehouse, empty_warehouse
):
    import_sales(warehouse, import_settings, folders, 10)
    url = empty_warehouse
    from sales_pipeline.warehouse.quality import check_rule

    with transaction(url) as cursor:
        assert check_rule(cursor, rule).passed
    query(url, breakage + " RETURNING 1")
    with transaction(url) as cursor:
        broken = check_rule(cursor, rule)
    assert not broken.passed and broken.failures == 5 and len(broken.sample) == 5


def test_automation_refreshes_the_marts_after_some_days_of_kpis(resources, import_settings, folders, warehouse):
    import_sales(warehouse, import_settings, folders, 30)
    with dg.instance_for_test() as instance:
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # the daemon's first tick
        (request,) = tick(instance, resources, None).run_requests
        defs.resolve_job_def("refresh_daily_kpis").execute_in_process(
            instance=instance, tags=request.tags, resources=resources
        )
        # One day of KPIs exists and every other day is missing: the marts after it still refresh.
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
        requested = {name for name in MARTS if after.get_num_requested(dg.AssetKey(["marts", name]))}

    assert requested == {"sales_trends", "top_products", "dashboard"}  # stock did not change
    # The sensor and the schedule own the partitions of the daily KPIs: automation requests none.


def _ledger_row(cursor, day: str) -> int:
    cursor.execute(
        "INSERT INTO ops.import_ledger (content_hash, file_name, status, started_at, sales_changed_from,"
        " sales_changed_to) VALUES ('h' || %(day)s, %(day)s || '.xlsx', 'loaded', now(),"
        " (%(day)s || ' 12:00Z')::timestamptz, (%(day)s || ' 13:00Z')::timestamptz) RETURNING import_id",
        {"day": day},
    )
    return cursor.fetchone()[0]


def test_imports_committing_out_of_id_order_are_each_refreshed(resources, empty_warehouse):
    # Two imports at once: the one with the lower id commits last. A cursor of "highest id seen"
    # would skip it for good; the pending changes in the warehouse do not.
    import psycopg2

    from sales_pipeline.warehouse.db import libpq_url

    slow, fast = psycopg2.connect(libpq_url(empty_warehouse)), psycopg2.connect(libpq_url(empty_warehouse))
    try:
        with slow.cursor() as cursor:
            slow_id = _ledger_row(cursor, "2026-10-10")
        with fast.cursor() as cursor:
            fast_id = _ledger_row(cursor, "2026-10-20")
        fast.commit()
        with dg.instance_for_test() as instance:
            first = tick(instance, resources, None)
            slow.commit()
            second = tick(instance, resources, first.cursor)
            third = tick(instance, resources, second.cursor)
    finally:
        slow.close()
        fast.close()

    assert slow_id < fast_id
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in first.run_requests] == [
        ("2026-10-19", "2026-10-21")
    ]
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in second.run_requests] == [
        ("2026-10-09", "2026-10-11")
    ]
    assert third.run_requests == []


def test_a_refresh_absorbs_the_changes_so_a_new_daemon_has_nothing_to_redo(
    resources, import_settings, folders, warehouse, empty_warehouse
):
    # What `sales-pipeline demo` leaves for `dev`: the KPIs absorbed the imports, so a sensor starting
    # from no cursor (a new daemon) requests nothing; an import that came after is still requested.
    import_sales(warehouse, import_settings, folders, 30)
    url = empty_warehouse
    with dg.instance_for_test() as instance:
        (request,) = tick(instance, resources, None).run_requests
        kpis = defs.resolve_job_def("refresh_daily_kpis").execute_in_process(
            instance=instance, tags=request.tags, resources=resources
        )
        after_refresh = tick(instance, resources, None)
        later = sales(4, start=dt.datetime(2026, 11, 9, 10))
        for row in later[1:]:
            row[0] = "L" + row[0]
        import_workbook(
            warehouse.transaction, write_workbook(folders["inbox"] / "b.xlsx", {"Sales": later}), import_settings
        )
        after_import = tick(instance, resources, None)

    assert kpis.success
    assert query(url, "SELECT count(*) FROM ops.import_ledger WHERE marts_absorbed_at IS NOT NULL") == [(1,)]
    assert after_refresh.run_requests == []
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in after_import.run_requests] == [
        ("2026-11-08", "2026-11-10")
    ]


def test_sales_before_the_first_partition_are_explained(resources, import_settings, folders, warehouse):
    old = sales(10, start=dt.datetime(2014, 1, 3, 9))
    import_workbook(
        warehouse.transaction,
        write_workbook(folders["inbox"] / "old.xlsx", {"Products": products(), "Sales": old}),
        import_settings,
    )
    with dg.instance_for_test() as instance:
        result = tick(instance, resources, None)

    assert result.run_requests == []
    assert result.skip_message == (
        "sales from 2014-01-03 to 2014-01-03 are before the first day of the marts: set "
        "SALES_PIPELINE_HISTORY_START=2014-01-03 (or earlier) and run `sales-pipeline refresh` to include them"
    )


def test_sales_committed_while_the_kpis_refresh_do_not_fail_the_reconciliation(
    resources, import_settings, folders, warehouse, empty_warehouse
):
    """A writer commits a sale on the refreshed day every few milliseconds (as the demo's imports and pulls
    do) while the daily KPIs refresh: the blocking check compares what the refresh saw, so it passes."""
    import_sales(warehouse, import_settings, folders, 30)
    url = empty_warehouse
    stop, written = threading.Event(), []

    def write_sales() -> None:
        with contextlib.closing(psycopg2.connect(url)) as connection:
            with connection, connection.cursor() as cursor:
                cursor.execute("CREATE TEMP TABLE line AS SELECT * FROM core.sales WHERE order_id = 'O00000' LIMIT 1")
            while not stop.is_set():
                with connection, connection.cursor() as cursor:  # one transaction, committed, per sale
                    cursor.execute("UPDATE line SET order_id = %s", (f"W{len(written):05d}",))
                    cursor.execute("INSERT INTO core.sales SELECT * FROM line")
                written.append(1)

    writer = threading.Thread(target=write_sales)
    with dg.instance_for_test() as instance:
        (request,) = tick(instance, resources, None).run_requests
        job = defs.resolve_job_def("refresh_daily_kpis")
        writer.start()
        try:
            runs = [job.execute_in_process(instance=instance, tags=request.tags, resources=resources)
                    for _ in range(5)]  # fmt: skip
        finally:
            stop.set()
            writer.join()
    checks = [check.passed for run in runs for check in run.get_asset_check_evaluations()]

    assert len(written) > 5  # the writer did write during the refreshes
    assert all(run.success for run in runs) and checks == [True] * 5
