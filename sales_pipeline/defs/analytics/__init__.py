"""Analytics wiring: the marts (marts.py) and what keeps them current (sensors.py)."""

import dagster as dg

from sales_pipeline.defs.analytics import marts, sensors
from sales_pipeline.settings import Settings


def analytics_definitions(settings: Settings) -> dg.Definitions:
    """The marts, the daily KPIs partitioned by the settings' days, and the sensor and schedule refreshing them."""
    partitions = marts.daily_partitions(settings)
    refresh_daily_kpis = dg.define_asset_job(
        "refresh_daily_kpis",
        selection=[marts.DAILY_KPIS],
        partitions_def=partitions,
        description="Recompute the daily KPIs of a day or a range of days (one run per range).",
    )
    nightly = dg.build_schedule_from_partitioned_job(
        refresh_daily_kpis,
        hour_of_day=1,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Each night, the KPIs of the day that just ended (late sales included); the marts follow.",
    )
    return dg.Definitions(
        assets=[marts.build_daily_kpis(partitions), *marts.mart_assets],
        jobs=[refresh_daily_kpis, marts.refresh_marts_job],
        sensors=[sensors.build_sales_changed_sensor(partitions)],
        schedules=[nightly],
    )
