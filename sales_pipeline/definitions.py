"""The code location: one Definitions object, loaded by workspace.yaml, the CLI and the tests.

`defs` is built when the code location loads (the code server, each run's worker, the CLI, a test):
the settings are read from the environment then, once, and the partitions, descriptions and resources
are made from them. The CLI and the tests that need other settings call `build_definitions` themselves.
"""

from __future__ import annotations

import dagster as dg

from sales_pipeline.defs.alerts import delivery
from sales_pipeline.defs.analytics import analytics_definitions, marts
from sales_pipeline.defs.anomalies.assets import anomaly_assets
from sales_pipeline.defs.conventions import conventions
from sales_pipeline.defs.daily_cycle import daily_cycle_job
from sales_pipeline.defs.executor import run_executor
from sales_pipeline.defs.forecasting.assets import forecast_definitions
from sales_pipeline.defs.ingest import java_api, workbooks
from sales_pipeline.defs.reporting import reporting_definitions
from sales_pipeline.defs.warehouse import checks, core_tables
from sales_pipeline.resources import default_resources
from sales_pipeline.settings import Settings

# Declarative automation (defs/conventions.py: the core tables and marts after their parents, the
# forecasts and churn once a day after the nightly KPIs, the anomalies after the forecasts) needs a
# sensor to evaluate it; Dagster's default one starts stopped, this one runs as soon as the daemon does.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Refreshes the core tables and marts after imports and pulls; once a day, after the nightly KPIs, "
    "the forecasts, then the anomalies and churn (one run for each wave).",
)

refresh_forecasts_job = dg.define_asset_job(
    "refresh_forecasts_and_anomalies",
    selection=dg.AssetSelection.groups("forecasting", "anomalies") | dg.AssetSelection.assets(marts.dashboard),
    description="Forecast sales and demand (refitting only changed series), then detect drops, stock risks, churn; "
    "the dashboard shows the alerts they opened.",
)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location, with the settings of the environment it loads in."""
    return build_definitions(Settings.from_environment())


def build_definitions(settings: Settings) -> dg.Definitions:
    defs = dg.Definitions.merge(
        dg.Definitions(
            assets=[workbooks.workbook_import, *core_tables.core_table_assets, *anomaly_assets, *delivery.alert_assets],
            asset_checks=[*checks.core_table_checks, *delivery.alert_checks],
            jobs=[
                workbooks.import_workbook_job,
                core_tables.refresh_core_tables_job,
                refresh_forecasts_job,
                delivery.deliver_notifications_job,
                daily_cycle_job(settings),
            ],
            sensors=[workbooks.workbook_inbox_sensor, automation_sensor, *delivery.alert_sensors],
            resources=default_resources(settings),
            executor=run_executor(settings),
        ),
        java_api.api_definitions(settings),
        analytics_definitions(settings),
        forecast_definitions(settings),
        reporting_definitions(settings),
    )
    return defs.map_asset_specs(func=conventions(settings))  # owners, kinds, tags, automation: defs/conventions.py
