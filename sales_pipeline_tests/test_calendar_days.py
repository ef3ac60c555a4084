"""A sale sent as a date is counted on that date in every reporting time zone; a sale with a time, on its instant's day.

Through the real importer and the real marts: workbooks with date cells, datetime cells and text
dates, in stores whose time zone is not the pipeline's, refreshed under several PIPELINE_TIMEZONEs.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sales_pipeline.analytics import marts
from sales_pipeline.excel.importer import import_workbook
from sales_pipeline.warehouse import db, embedded
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import query
from sales_pipeline_tests.workbooks import SALES_HEADER, products, write_workbook

NOV1, NOV2, NOV3 = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)
STORES = [["Store ID", "Name", "Timezone"], ["CHI", "Chicago", "America/Chicago"], ["TYO", "Tokyo", "Asia/Tokyo"]]
# One line per case; each line's revenue is a distinct power of two, so a day's total names its lines.
# Chicago is UTC-6 and Tokyo UTC+9 in November 2026 (DST ended on 1 November).
LINES = {
    "A": ("CHI", dt.date(2026, 11, 2), 1),  # a date cell
    "B": ("CHI", "2026-11-02", 2),  # a text date
    "C": ("CHI", dt.datetime(2026, 11, 2, 20, 0), 4),  # 02:00 UTC on the 3rd; 18:00 on the 2nd in Los Angeles
    "D": ("CHI", "2026-11-02 10:00", 8),  # text with a time: 16:00 UTC; 01:00 on the 3rd in Tokyo
    "E": ("TYO", dt.date(2026, 11, 2), 16),  # a date in a store east of UTC: midnight there is the 1st in UTC
    "F": ("TYO", dt.datetime(2026, 11, 2, 8, 0), 32),  # 23:00 UTC on the 1st
    "G": ("CHI", dt.datetime(2026, 11, 3, 0, 0), 64),  # a datetime cell at 00:00:00: how tools write a date
}
TIME_GIVEN = {"A": False, "B": False, "C": True, "D": True, "E": False, "F": True, "G": False}
EXPECTED_DAYS = {
    "UTC": {NOV1: "F", NOV2: "ABDE", NOV3: "CG"},
    "America/Los_Angeles": {NOV1: "F", NOV2: "ABCDE", NOV3: "G"},
    "Asia/Tokyo": {NOV2: "ABEF", NOV3: "CDG"},
}


def revenue_of(names: str) -> Decimal:
    return Decimal(sum(LINES[name][2] for name in names))


@pytest.fixture
def imported(import_settings, folders, warehouse, empty_warehouse) -> str:
    rows = [SALES_HEADER] + [
        [name, 1, sold, store, None, "P1", 1, price, 0] for name, (store, sold, price) in LINES.items()
    ]
    path = write_workbook(folders["inbox"] / "days.xlsx", {"Products": products(), "Stores": STORES, "Sales": rows})
    assert import_workbook(warehouse.transaction, path, import_settings).status == "loaded"
    return empty_warehouse


def test_the_import_records_whether_the_sender_gave_a_time(imported: str) -> None:
    assert dict(query(imported, "SELECT order_id, time_given FROM core.sales")) == TIME_GIVEN
    # A date is stored as midnight of that day in its store's zone, and its store's day is that date.
    assert query(
        imported,
        "SELECT to_char(sold_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), sale_date FROM core.sales"
        " WHERE order_id IN ('A', 'E') ORDER BY order_id",
    ) == [("2026-11-02 06:00", NOV2), ("2026-11-01 15:00", NOV2)]


@pytest.mark.parametrize("timezone", list(EXPECTED_DAYS))
def test_each_line_counts_on_its_day_whatever_the_pipeline_time_zone(imported: str, timezone: str) -> None:
    with transaction(imported) as cursor:
        marts.refresh_daily_kpis(cursor, dt.date(2026, 10, 31), dt.date(2026, 11, 4), timezone)

    expected = EXPECTED_DAYS[timezone]
    found = query(imported, "SELECT scope_id, day, revenue FROM marts.daily_kpis WHERE scope IN ('all', 'store')")
    assert {(scope_id, day): revenue for scope_id, day, revenue in found} == {
        (scope_id, day): revenue_of(picked)
        for day, names in expected.items()
        for scope_id in ("", "CHI", "TYO")
        if (picked := "".join(n for n in names if scope_id in ("", LINES[n][0])))
    }
    # And the reconciliation check agrees with the lines, day by day.
    from sales_pipeline.warehouse.quality import revenue_mismatches

    with transaction(imported) as cursor:
        assert revenue_mismatches(cursor, timezone, dt.date(2026, 10, 31), dt.date(2026, 11, 4)).failures == 0


def test_a_one_day_refresh_finds_the_lines_of_that_day_only(imported: str) -> None:
    # Los Angeles, 2 November: the dates of both stores and the Chicago evening line, read by one day's refresh.
    with transaction(imported) as cursor:
        marts.refresh_daily_kpis(cursor, NOV2, NOV2, "America/Los_Angeles")
    assert query(imported, "SELECT day, revenue FROM marts.daily_kpis WHERE scope = 'all'") == [
        (NOV2, revenue_of("ABCDE"))
    ]


def test_migration_0006_marks_the_dates_already_stored(pipeline_home) -> None:
    """Rows loaded before 0006 get time_given from their instant: midnight of their store's day means a date."""
    name = "tests_migration_0006"
    url = embedded.own_database(name, recreate=True)
    try:
        with transaction(url) as cursor:
            # The warehouse as it was before 0006: emptied of every schema, then migrated up to 0005.
            cursor.execute("DROP SCHEMA raw, core, marts, ml, ops CASCADE")
            cursor.execute(
                "CREATE SCHEMA ops; CREATE TABLE ops.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in db.migrations():
                if migration.version < 6:
                    cursor.execute(migration.sql)
                    cursor.execute("INSERT INTO ops.schema_migrations VALUES (%s, %s)", (migration.version, "x"))
            cursor.execute(
                "INSERT INTO core.stores (store_id, timezone, source) VALUES ('CHI', 'America/Chicago', 'excel'),"
                " ('NOZONE', NULL, 'excel'), ('BAD', 'Mars/Olympus', 'excel')"
            )
            cursor.execute(
                "INSERT INTO core.sales (order_id, line_number, sold_at, sale_date, store_id, product_id, quantity,"
                " unit_price, revenue, source) VALUES"
                " ('date', 1, '2026-11-02 00:00-06', '2026-11-02', 'CHI', 'P1', 1, 1, 1, 'excel'),"
                " ('timed', 1, '2026-11-02 20:00-06', '2026-11-02', 'CHI', 'P1', 1, 1, 1, 'excel'),"
                " ('api at midnight', 1, '2026-11-02 00:00-06', '2026-11-02', 'CHI', 'P1', 1, 1, 1, 'api'),"
                " ('no zone: UTC', 1, '2026-11-02 00:00+00', '2026-11-02', 'NOZONE', 'P1', 1, 1, 1, 'excel'),"
                " ('unknown zone', 1, '2026-11-02 00:00+00', '2026-11-02', 'BAD', 'P1', 1, 1, 1, 'excel')"
            )

        with db.transaction(url) as cursor:
            assert "0006_calendar_days_and_exact_revenue" in db.migrate(cursor)

        assert dict(query(url, "SELECT order_id, time_given FROM core.sales")) == {
            "date": False, "timed": True, "api at midnight": True, "no zone: UTC": False, "unknown zone": True,
        }  # fmt: skip
    finally:
        embedded.drop_own_database(name)
