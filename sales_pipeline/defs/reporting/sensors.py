"""When the daily reports go out: at REPORT_SEND_TIME, once yesterday's inputs are fresh.

A plain schedule at 07:00 that found the marts stale would have to skip the day (or build on stale
marts); this sensor opens at REPORT_SEND_TIME in PIPELINE_TIMEZONE and requests yesterday's reports
as soon as every input is fresh, once per day (run key `daily_report:<day>`, and its cursor):

- no import or API pull with sales up to that day is waiting for the daily KPIs;
- the day's KPI partition was built, and each other input (top products, stock health, the sales
  forecast, the anomalies) was built after it;
- none of them is being built right now (its latest materialization would still be the old one).

Until then each evaluation skips, naming what it waits for.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.analytics.changes import plan_pending_refresh
from sales_pipeline.defs.analytics.marts import partition_bounds
from sales_pipeline.defs.reporting.assets import REPORT_INPUTS
from sales_pipeline.resources import AnalyticsResource, ReportingResource, WarehouseResource
from sales_pipeline.settings import Settings

KPIS_KEY = REPORT_INPUTS[0]


def due_day(now: dt.datetime, send_time: dt.time) -> dt.date | None:
    """The day whose reports are due at `now` (local time): yesterday, from send_time on; else None."""
    return now.date() - dt.timedelta(days=1) if now.time() >= send_time else None


def stale_inputs(
    instance: dg.DagsterInstance, cursor: Cursor, timezone: str, partitions: tuple[dt.date, dt.date], day: dt.date
) -> list[str]:
    """What still keeps the reports of `day` from being built on fresh data (empty: go)."""
    plan = plan_pending_refresh(cursor, timezone, partitions)
    if plan.first_day is not None and plan.first_day <= day:
        return [f"sales imported or pulled for {plan.first_day} .. {plan.last_day} are not in the daily KPIs yet"]
    kpis = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=KPIS_KEY, asset_partitions=[day.isoformat()]), limit=1
    ).records
    if not kpis:
        return [f"marts/daily_kpis has not been built for {day}"]
    built_at = kpis[0].timestamp
    latest = instance.get_latest_materialization_events(REPORT_INPUTS[1:])
    waiting = []
    for key in REPORT_INPUTS[1:]:
        event = latest.get(key)
        if event is None or event.timestamp < built_at:
            waiting.append(f"{key.to_user_string()} was not built after the daily KPIs of {day}")
    return waiting


def build_daily_report_sensor(partitions: dg.DailyPartitionsDefinition, settings: Settings) -> dg.SensorDefinition:
    """The sensor sending the reports of a day of the daily KPIs' `partitions` once its inputs are fresh."""
    send_time = settings.report_send_time.strftime("%H:%M")

    @dg.sensor(
        job_name="daily_report",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"From {send_time} ({settings.pipeline_timezone}) on, builds and sends yesterday's reports once "
        "the marts, forecasts and anomalies of that day are fresh; once per day.",
    )
    def daily_report_sensor(
        context: dg.SensorEvaluationContext,
        warehouse: WarehouseResource,
        analytics: AnalyticsResource,
        reporting: ReportingResource,
    ) -> dg.SensorResult:
        now = dt.datetime.now(ZoneInfo(analytics.timezone))
        send_time = dt.time.fromisoformat(reporting.send_time)
        day = due_day(now, send_time)
        if day is None:
            return dg.SensorResult(skip_reason=f"Reports go out at {reporting.send_time} ({analytics.timezone})")
        if context.cursor and dt.date.fromisoformat(context.cursor) >= day:
            return dg.SensorResult(skip_reason=f"The reports of {day} were already requested")
        with warehouse.transaction() as cursor:
            waiting = stale_inputs(context.instance, cursor, analytics.timezone, partition_bounds(partitions), day)
        if waiting:
            return dg.SensorResult(skip_reason=f"The reports of {day} wait: " + "; ".join(waiting))
        request = dg.RunRequest(run_key=f"daily_report:{day}", partition_key=day.isoformat())
        return dg.SensorResult(run_requests=[request], cursor=day.isoformat())

    return daily_report_sensor
