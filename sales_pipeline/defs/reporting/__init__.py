"""Dagster wiring of the reports: the daily PDFs, the analytics export, the sensor that sends them."""

import dagster as dg

from sales_pipeline.defs.analytics.marts import daily_partitions
from sales_pipeline.defs.reporting import assets, sensors
from sales_pipeline.settings import Settings


def reporting_definitions(settings: Settings) -> dg.Definitions:
    """The reports, the daily ones partitioned like the daily KPIs, and the sensor sending them."""
    partitions = daily_partitions(settings)
    daily_report = dg.define_asset_job(
        "daily_report",
        selection=[assets.DAILY_REPORT_KEY],
        partitions_def=partitions,
        description="Build (and send) the daily reports of a day: the chain's and each store's.",
    )
    return dg.Definitions(
        assets=[assets.build_daily_report(partitions, settings), assets.analytics_export],
        jobs=[daily_report, assets.analytics_export_job],
        sensors=[sensors.build_daily_report_sensor(partitions, settings)],
    )
