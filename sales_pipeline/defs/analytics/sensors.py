"""What keeps the marts current: new sales from imports, and the day that just ended."""

import datetime as dt
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
    description="After imports, recomputes the daily KPIs of exactly the days whose sales they changed (one run).",
)
def sales_changed_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, analytics: AnalyticsResource
) -> dg.SensorResult:
    # Cursor: the last import on the ledger already looked at. Imports run one at a time, so they
    # commit in the order of their ids.
    last_seen = int(context.cursor or 0)
    with transaction(warehouse.url()) as cursor:
        cursor.execute(
            "SELECT max(import_id), min(sales_changed_from), max(sales_changed_to) FROM ops.import_ledger"
            " WHERE import_id > %s",
            (last_seen,),
        )
        newest, changed_from, changed_to = cursor.fetchone()
    if newest is None:
        return dg.SensorResult(skip_reason="No new import", cursor=str(last_seen))
    if changed_from is None:
        return dg.SensorResult(skip_reason="The new imports changed no sale", cursor=str(newest))
    zone = ZoneInfo(analytics.timezone)
    tags = partition_range_tags(changed_from.astimezone(zone).date(), changed_to.astimezone(zone).date())
    if tags is None:
        return dg.SensorResult(skip_reason="The changed sales are outside the daily partitions", cursor=str(newest))
    request = dg.RunRequest(run_key=f"imports-{last_seen + 1}-{newest}", tags=tags)
    return dg.SensorResult(run_requests=[request], cursor=str(newest))


daily_kpis_schedule = dg.build_schedule_from_partitioned_job(
    refresh_daily_kpis_job,
    hour_of_day=1,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Each night, the KPIs of the day that just ended (late sales included); the marts follow.",
)
