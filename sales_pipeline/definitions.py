"""The code location: one Definitions object, loaded by workspace.yaml, the CLI and the tests."""

from __future__ import annotations

import dagster as dg

from sales_pipeline.defs.alerts import delivery
from sales_pipeline.defs.analytics import marts, sensors
from sales_pipeline.defs.anomalies.assets import anomaly_assets
from sales_pipeline.defs.forecasting.assets import forecast_assets, forecast_checks
from sales_pipeline.defs.ingest import java_api, workbooks
from sales_pipeline.defs.warehouse import checks, core_tables
from sales_pipeline.resources import default_resources

# Declarative automation (core tables after imports, marts after the daily KPIs) needs a sensor to
# evaluate it; Dagster's default one starts stopped, this one runs as soon as the daemon does.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Refreshes core tables after imports, marts after the daily KPIs, then forecasts and anomalies.",
)

refresh_forecasts_job = dg.define_asset_job(
    "refresh_forecasts_and_anomalies",
    selection=dg.AssetSelection.groups("forecasting", "anomalies") | dg.AssetSelection.assets(marts.dashboard),
    description="Forecast sales and demand (refitting only changed series), then detect drops, stock risks, churn; "
    "the dashboard shows the alerts they opened.",
)

defs = dg.Definitions(
    assets=[
        workbooks.workbook_import,
        *java_api.api_assets,
        *core_tables.core_table_assets,
        *marts.mart_assets,
        *forecast_assets,
        *anomaly_assets,
        *delivery.alert_assets,
    ],
    asset_checks=[*checks.core_table_checks, *forecast_checks, *delivery.alert_checks],
    jobs=[
        workbooks.import_workbook_job,
        core_tables.refresh_core_tables_job,
        marts.refresh_daily_kpis_job,
        marts.refresh_marts_job,
        refresh_forecasts_job,
        delivery.deliver_notifications_job,
    ],
    sensors=[workbooks.workbook_inbox_sensor, sensors.sales_changed_sensor, automation_sensor, *delivery.alert_sensors],
    schedules=[sensors.daily_kpis_schedule, java_api.pull_master_data_schedule, java_api.pull_sales_schedule],
    resources=default_resources(),
)
