"""What keeps the marts current: new sales from imports and pulls, and the day that just ended."""

import datetime as dt
import hashlib
import json

import dagster as dg

from sales_pipeline.analytics.changes import KpiRefreshPlan, plan_pending_refresh
from sales_pipeline.defs.analytics.marts import partition_bounds
from sales_pipeline.resources import AnalyticsResource, WarehouseResource

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# A change still pending this long after its refresh was requested (the run failed or was deleted)
# is requested again.
REQUEST_AGAIN_AFTER = dt.timedelta(hours=1)
NOTHING_WAITING = "No import or pull waiting for the daily KPIs"


def range_tags(first_day: dt.date, last_day: dt.date) -> dict[str, str]:
    """Tags that make one run cover the daily partitions first..last."""
    return {RANGE_START_TAG: first_day.isoformat(), RANGE_END_TAG: last_day.isoformat()}


def build_sales_changed_sensor(partitions: dg.DailyPartitionsDefinition) -> dg.SensorDefinition:
    """The sensor requesting refreshes of the daily KPIs (`partitions`) for the days new sales changed."""

    @dg.sensor(
        job_name="refresh_daily_kpis",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After imports and API pulls, recomputes the daily KPIs of the days whose sales they changed "
        "(one run for all of them).",
    )
    def sales_changed_sensor(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource, analytics: AnalyticsResource
    ) -> dg.SensorResult:
        with warehouse.transaction() as cursor:
            plan = plan_pending_refresh(cursor, analytics.timezone, partition_bounds(partitions))
        return _request_refresh(context.cursor, plan)

    return sales_changed_sensor


def _request_refresh(cursor: str | None, plan: KpiRefreshPlan) -> dg.SensorResult:
    # The warehouse knows which changes the KPIs have not absorbed yet (whatever order they committed
    # in); the cursor only remembers which of those a run was already requested for, and when.
    requested: dict[str, str] = json.loads(cursor) if cursor else {}
    now = dt.datetime.now(dt.UTC)
    pending = {change.key: change for change in plan.changes}
    still_requested = {
        key: at
        for key, at in requested.items()
        if key in pending and now - dt.datetime.fromisoformat(at) < REQUEST_AGAIN_AFTER
    }
    new = [change for key, change in pending.items() if key not in still_requested]
    if not new:
        reason = plan.explanation or NOTHING_WAITING
        return dg.SensorResult(skip_reason=reason, cursor=json.dumps(still_requested))
    first = max(min(c.first_day for c in new), plan.first_day)
    last = min(max(c.last_day for c in new), plan.last_day)
    tags = range_tags(first, last)
    keys = ",".join(sorted(change.key for change in new))
    run_key = f"sales-changes-{hashlib.sha1(keys.encode()).hexdigest()[:12]}-{now:%Y%m%dT%H%M%S}"
    still_requested.update({change.key: now.isoformat() for change in new})
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key, tags=tags)], cursor=json.dumps(still_requested))
