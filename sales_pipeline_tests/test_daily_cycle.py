"""The daily cycle's order, as the automation sensor decides it tick by tick (defs/conventions.py).

The ticks are evaluated on a real Dagster instance; what the runs would have built is recorded there as
materializations, so that each test reads as a day: the night's KPIs, then a workbook during the day.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from sales_pipeline.definitions import build_definitions
from sales_pipeline.defs.analytics.marts import daily_partitions, partition_bounds
from sales_pipeline.defs.conventions import NIGHTLY_KPIS_HOUR
from sales_pipeline.defs.ingest.workbooks import workbook_partitions
from sales_pipeline.defs.reporting.sensors import stale_inputs
from sales_pipeline.settings import Settings
from sales_pipeline.warehouse.db import transaction

SETTINGS = Settings.from_environment()
defs = build_definitions(SETTINGS)
GRAPH = defs.resolve_asset_graph()
CORE = {
    f"core/{name}" for name in ("products", "stores", "customers", "sales", "stock", "store_calendar", "promotions")
}
DAILY = {
    "forecasting/sales_forecast",
    "forecasting/demand_forecast",
    "anomalies/customer_churn",
    "anomalies/sales_drops",
    "anomalies/stock_risks",
}
# What a new stock count refreshes (the dashboard and the export show the stock's health).
STOCK_WAVE = {"marts/stock_health", "marts/dashboard", "reports/analytics_export"}
# What new daily KPIs refresh at once, whatever the hour.
AFTER_KPIS = {"marts/sales_trends", "marts/top_products", "marts/dashboard", "reports/analytics_export"}
# What the nightly pull (`pull_sales`) brings in one run.
NIGHTLY_PULL = [f"ingest/api_{name}" for name in ("products", "stock", "sales", "store_calendar", "promotions")]
WORKBOOK = "week-47-abc"


def last_nightly_tick(now: dt.datetime) -> dt.datetime:
    """The latest nightly KPIs' hour (PIPELINE_TIMEZONE) before `now`."""
    local = now.astimezone(ZoneInfo(SETTINGS.pipeline_timezone))
    tick = local.replace(hour=NIGHTLY_KPIS_HOUR, minute=0, second=0, microsecond=0)
    return tick if tick < local else tick - dt.timedelta(days=1)


def built(instance: dg.DagsterInstance, *names: str, day: str | None = None) -> None:
    """Record what a run built: the daily KPIs of `day`, a workbook's import, the other assets."""
    for name in names:
        key = dg.AssetKey(name.split("/"))
        partition = WORKBOOK if name == "ingest/workbook_import" else day if GRAPH.get(key).partitions_def else None
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


def requested(result) -> set[str]:
    return {key.to_user_string() for key in GRAPH.get_all_asset_keys() if result.get_num_requested(key)}


class Day:
    """The automation sensor's ticks on one instance, each at its time, each from the last one's cursor."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance, self.cursor = instance, None

    def tick(self, at: dt.datetime):
        result = dg.evaluate_automation_conditions(defs=defs, instance=self.instance, evaluation_time=at,
                                                   cursor=self.cursor)  # fmt: skip
        self.cursor = result.cursor
        return result


@pytest.fixture
def night():
    """An instance where everything was built once, ticked until nothing is due, just before the KPIs' hour."""
    tick = last_nightly_tick(dt.datetime.now(dt.UTC))
    yesterday = (tick.date() - dt.timedelta(days=1)).isoformat()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(workbook_partitions.name, [WORKBOOK])
        built(instance, *(key.to_user_string() for key in GRAPH.get_all_asset_keys()), day=yesterday)
        day = Day(instance)
        day.tick(tick - dt.timedelta(minutes=20))
        quiet = day.tick(tick - dt.timedelta(minutes=10))
        assert requested(quiet) == set()
        yield day, tick, yesterday


def test_the_nightly_kpis_start_the_forecasts_and_the_anomalies_in_one_wave(night):
    day, tick, yesterday = night
    waiting = day.tick(tick + dt.timedelta(minutes=1))  # the hour has come, the KPIs not yet
    built(day.instance, *NIGHTLY_PULL, day=yesterday)
    pulled = day.tick(tick + dt.timedelta(minutes=2))
    built(day.instance, *CORE, *STOCK_WAVE)
    day.tick(tick + dt.timedelta(minutes=3))
    built(day.instance, "marts/daily_kpis", day=yesterday)
    after_kpis = day.tick(tick + dt.timedelta(minutes=4))

    assert requested(waiting) == set()
    # The pull lands in the core tables and the stock's health; the forecasts wait for the KPIs.
    assert requested(pulled) == CORE | STOCK_WAVE
    # One tick, so one run: the marts, the forecasts, then the anomalies that read them (each once).
    assert requested(after_kpis) == AFTER_KPIS | DAILY
    assert all(p is None for key in GRAPH.get_all_asset_keys() for p in after_kpis.get_requested_partitions(key))


def test_a_workbook_during_the_day_refreshes_the_marts_and_refits_nothing(night):
    day, tick, yesterday = night
    built(day.instance, "marts/daily_kpis", day=yesterday)
    day.tick(tick + dt.timedelta(minutes=1))  # tonight's wave
    built(day.instance, *DAILY, *AFTER_KPIS)
    day.tick(tick + dt.timedelta(minutes=2))

    built(day.instance, "ingest/workbook_import")
    imported = day.tick(tick + dt.timedelta(hours=6))
    built(day.instance, *CORE, *STOCK_WAVE)
    day.tick(tick + dt.timedelta(hours=6, minutes=1))
    built(day.instance, "marts/daily_kpis", day=yesterday)  # the sales-changed sensor's run
    kpis = day.tick(tick + dt.timedelta(hours=6, minutes=2))

    assert requested(imported) == CORE | STOCK_WAVE
    assert requested(kpis) == AFTER_KPIS


def test_what_the_reports_read_is_late_when_not_rebuilt_by_the_report_hour():
    fresh = {key.to_user_string(): GRAPH.get(key).freshness_policy for key in GRAPH.get_all_asset_keys()}
    policies = {name: policy for name, policy in fresh.items() if policy is not None}

    assert set(policies) == {"marts/daily_kpis", *AFTER_KPIS - {"reports/analytics_export"}, *DAILY}
    hour, minute = SETTINGS.report_send_time.hour, SETTINGS.report_send_time.minute
    for policy in policies.values():  # rebuilt between midnight and the report hour, in the pipeline's zone
        assert policy.deadline_cron == f"{minute} {hour} * * *" and policy.timezone == SETTINGS.pipeline_timezone
        assert policy.lower_bound_delta == dt.timedelta(hours=hour, minutes=minute)


def test_every_schedule_and_sensor_is_described_and_runs_under_dev():
    for schedule in defs.schedules or []:
        assert schedule.description and schedule.default_status == dg.DefaultScheduleStatus.RUNNING, schedule.name
    for sensor in defs.sensors or []:
        assert sensor.description and sensor.default_status == dg.DefaultSensorStatus.RUNNING, sensor.name


def test_the_reports_take_the_nights_forecasts_after_a_late_import_rebuilt_the_kpis(empty_warehouse):
    day = dt.date.today() - dt.timedelta(days=2)  # the night after it is over, whatever the hour now
    with dg.instance_for_test() as instance:
        built(instance, "marts/daily_kpis", day=day.isoformat())
        built(instance, *DAILY)  # the night's cycle
        built(instance, "marts/daily_kpis", day=day.isoformat())  # a late import of that day, in the morning
        built(instance, "marts/top_products", "marts/stock_health")  # what follows it at once
        with transaction(empty_warehouse) as cursor:
            bounds = partition_bounds(daily_partitions(SETTINGS))
            waiting = stale_inputs(instance, cursor, SETTINGS.pipeline_timezone, bounds, day)
        built(instance, "marts/daily_kpis", day=day.isoformat())  # another, before the marts follow it
        with transaction(empty_warehouse) as cursor:
            marts_behind = stale_inputs(instance, cursor, SETTINGS.pipeline_timezone, bounds, day)

    assert waiting == []  # the forecasts and anomalies are refit the next night, not after each import
    assert marts_behind == [
        f"marts/{name} was not built after the daily KPIs of {day}" for name in ("top_products", "stock_health")
    ]
