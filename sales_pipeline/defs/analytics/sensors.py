"""What keeps the marts current: new sales from imports, and the day that just ended."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import dagster as dg

from sales_pipeline.defs.analytics.marts import daily_partitions, refresh_daily_kpis_job
from sales_pipeline.resources import AnalyticsResource, WarehouseResource
from sales_pipeline.warehouse.db import transaction

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def partition_range_tags(first_day: dt.date, last_day: dt.date) -> dict[str, str] | None:
    """Tags that make one run cover days first..last, clipped to the partitions that exist."""
    keys = daily_partitions.get_partition_keys()
    if not keys:
        return None
    first, last = max(first_day.isoformat(), keys[0]), min(last_day.isoformat(), keys[-1])
    if first > last:
        return None
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


@dg.sensor(
    job=refresh_daily_kpis_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After imports and API pulls, recomputes the daily KPIs of exactly the days whose sales they changed "
    "(one run).",
)
def sales_changed_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, analytics: AnalyticsResource
) -> dg.SensorResult:
    # Cursor: the last workbook import and the last API pull already looked at. Imports run one
    # at a time, so they commit in the order of their ids; so do the pulls of the nightly jobs.
    seen = json.loads(context.cursor) if context.cursor else {"imports": 0, "pulls": 0}
    with transaction(warehouse.url()) as cursor:
        cursor.execute(
            "SELECT max(import_id), min(sales_changed_from), max(sales_changed_to) FROM ops.import_ledger"
            " WHERE import_id > %s",
            (seen["imports"],),
        )
        newest_import, import_from, import_to = cursor.fetchone()
        cursor.execute(
            "SELECT max(pull_id), min(sales_changed_from), max(sales_changed_to) FROM ops.api_pulls WHERE pull_id > %s",
            (seen["pulls"],),
        )
        newest_pull, pull_from, pull_to = cursor.fetchone()
    now_seen = {"imports": newest_import or seen["imports"], "pulls": newest_pull or seen["pulls"]}
    cursor_text = json.dumps(now_seen)
    if now_seen == seen:
        return dg.SensorResult(skip_reason="No new import or pull", cursor=cursor_text)
    starts = [instant for instant in (import_from, pull_from) if instant is not None]
    ends = [instant for instant in (import_to, pull_to) if instant is not None]
    if not starts:
        return dg.SensorResult(skip_reason="The new imports and pulls changed no sale", cursor=cursor_text)
    zone = ZoneInfo(analytics.timezone)
    tags = partition_range_tags(min(starts).astimezone(zone).date(), max(ends).astimezone(zone).date())
    if tags is None:
        return dg.SensorResult(skip_reason="The changed sales are outside the daily partitions", cursor=cursor_text)
    run_key = f"imports-{seen['imports'] + 1}-{now_seen['imports']}-pulls-{seen['pulls'] + 1}-{now_seen['pulls']}"
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key, tags=tags)], cursor=cursor_text)


daily_kpis_schedule = dg.build_schedule_from_partitioned_job(
    refresh_daily_kpis_job,
    hour_of_day=1,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Each night, the KPIs of the day that just ended (late sales included); the marts follow.",
)
