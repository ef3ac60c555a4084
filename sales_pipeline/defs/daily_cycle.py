"""The daily cycle as one job, `daily_cycle`, for a person (or the smoke test) to launch by hand.

Unattended, the cycle runs by schedules, sensors and declarative automation (defs/conventions.py, README "The
daily cycle"). This job runs the same assets once each, in the graph's order, for one day of the pipeline's
calendar: the back office's products, stock, store calendar and promotions; the core tables; that day's KPIs; the
marts; the forecasts; the anomalies; the alerts' delivery; that day's PDF reports and the analytics workbook.

Not in it: the workbook imports (a workbook comes when it comes) and the pull of the sales themselves
(`ingest/api_sales`): its partitions are the API's UTC days, the KPIs' and the reports' are days of
PIPELINE_TIMEZONE, and a Dagster job has one kind of partition. The sales of a day come with `pull_sales`
(00:30 UTC each night, or a backfill).

Its steps run as SALES_PIPELINE_RUN_EXECUTOR says, like every run's (by default one after the other in the run's
own process; the forecasts fit in their own pool of processes). With FORECAST_SHARDS above 1 each forecast asset is
several steps of this same run (its shards, then the step that reconciles and publishes: defs/forecasting/assets.py),
not partitions: the job keeps its one kind of partition, and the multiprocess or k8s executor runs the shards side
by side.
"""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from sales_pipeline.defs.analytics.marts import daily_partitions
from sales_pipeline.defs.ingest.java_api import API_SALES
from sales_pipeline.settings import Settings

WORKBOOK_IMPORT = dg.AssetKey(["ingest", "workbook_import"])


def daily_cycle_job(settings: Settings) -> UnresolvedAssetJobDefinition:
    """Every asset of the daily cycle, one day (a partition of the daily KPIs), in order."""
    return dg.define_asset_job(
        "daily_cycle",
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets(WORKBOOK_IMPORT, API_SALES),
        partitions_def=daily_partitions(settings),
        description="The whole daily cycle for one day, each asset once, in order: products, stock, store calendar "
        "and promotions from the back office, the core tables, the day's KPIs, the marts, the forecasts, the "
        "anomalies, the alerts sent, the day's PDF reports and the analytics workbook. The day's sales come before, "
        "with pull_sales.",
    )
