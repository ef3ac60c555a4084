"""What every asset of the code location shares, applied once to all of them (definitions.py).

- **Owners**: the data engineering team.
- **Kinds**: every asset reads or writes the PostgreSQL warehouse (`postgres`); an asset keyed
  `core/<name>` or `marts/<name>` is that table (`table`, and its `dagster/table_name`); the others
  add what they are (excel, api, prophet, python).
- **Tags**: its group's domain and the warehouse layer it fills; the ingest assets add their source.
- **Automation** (the daily cycle, drawn in the README): sensors and schedules start the ingest
  assets, the partitioned daily KPIs and reports, and the alerts' delivery. After them:
  - the core tables and the marts follow their parents (`AFTER_ANY_UPSTREAM_UPDATE`): an import
    shows in them within a minute;
  - the forecasts and customer churn wait for the day's data: once a day, after the nightly KPIs
    (`daily_after_kpis`), so an import during the day refits nothing;
  - sales drops and stock-out risks follow the forecasts they read, and nothing else
    (`AFTER_FORECASTS`): they run once, after them;
  - an asset that states a condition of its own keeps it.
- **Freshness**: what the daily reports read (`FRESH_DAILY`) must have been rebuilt since midnight by
  REPORT_SEND_TIME (PIPELINE_TIMEZONE); the UI shows an asset that was not as late.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg

from sales_pipeline.settings import Settings

OWNERS = ["team:data-engineering"]
RUN_BY_SENSORS = ("ingest", "alerts")
RUN_NIGHTLY = ("forecasting", "anomalies")  # the groups built once a night, after the nightly KPIs
TABLE_SCHEMAS = ("core", "marts")
TAGS = {
    "ingest": {"domain": "ingest"},
    "warehouse": {"domain": "warehouse", "layer": "core"},
    "analytics": {"domain": "analytics", "layer": "marts"},
    "forecasting": {"domain": "forecasting", "layer": "ml"},
    "anomalies": {"domain": "alerts", "layer": "ml"},
    "alerts": {"domain": "alerts", "layer": "ops"},
    "reporting": {"domain": "reporting", "layer": "reports"},
}
DAILY_KPIS = dg.AssetKey(["marts", "daily_kpis"])
FORECASTS = dg.AssetSelection.groups("forecasting")
CUSTOMER_CHURN = dg.AssetKey(["anomalies", "customer_churn"])
# Steps that write the warehouse take a slot of this pool (its limit is in dagster.yaml), so that
# concurrent runs never overload PostgreSQL.
WAREHOUSE_POOL = "warehouse"
# Steps that call another server (the back office's API, the mail server, the webhook) try again on
# a failure, waiting 10 s, 20 s, 40 s, each +/- up to 10 s so that retries of several runs spread out.
NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
# What the nightly cycle rebuilds each day and the daily reports read: late if not rebuilt by the report hour.
FRESH_DAILY = {
    DAILY_KPIS,
    *(dg.AssetKey(["marts", name]) for name in ("sales_trends", "top_products", "dashboard")),
    *(dg.AssetKey(["forecasting", name]) for name in ("sales_forecast", "demand_forecast")),
    *(dg.AssetKey(["anomalies", name]) for name in ("sales_drops", "stock_risks", "customer_churn")),
}
# The nightly schedule recomputes yesterday's KPIs at this hour (PIPELINE_TIMEZONE), after the API's
# nightly pull (00:30 UTC); the daily assets wait for that run.
NIGHTLY_KPIS_HOUR = 1
# eager() also waits until no dependency has a missing partition. Partitioned dependencies always
# miss some (a workbook whose import failed, days before the first sale), so the assets after them
# drop that clause: they refresh whenever any partition upstream was updated.
AFTER_ANY_UPSTREAM_UPDATE = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
# The anomalies read the forecasts: they run after them (in the same run), not after every import.
AFTER_FORECASTS = (
    (
        dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated().allow(FORECASTS)
    ).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after the forecasts")


def daily_after_kpis(timezone: str) -> dg.AutomationCondition:
    """Once a day, from the nightly KPIs' hour, as soon as the KPIs were refreshed after it."""
    cron = f"0 {NIGHTLY_KPIS_HOUR} * * *"
    # on_cron waits for every parent to update after the tick; only the KPIs do each night (the core
    # tables update when a pull or an import lands, which may be before the tick or not at all).
    return dg.AutomationCondition.on_cron(cron, cron_timezone=timezone).allow(dg.AssetSelection.assets(DAILY_KPIS))


def automation_condition(spec: dg.AssetSpec, daily: dg.AutomationCondition) -> dg.AutomationCondition | None:
    """When the asset refreshes by itself (None: a sensor or schedule requests it)."""
    if spec.automation_condition is not None or spec.group_name in RUN_BY_SENSORS or spec.partitions_def:
        return spec.automation_condition
    if spec.group_name == "forecasting" or spec.key == CUSTOMER_CHURN:
        return daily
    if spec.group_name == "anomalies":
        return AFTER_FORECASTS
    return AFTER_ANY_UPSTREAM_UPDATE


def daily_freshness(send_time: dt.time, timezone: str) -> dg.FreshnessPolicy:
    """Rebuilt between midnight and the report hour, every day (in `timezone`)."""
    since_midnight = dt.timedelta(hours=send_time.hour, minutes=send_time.minute)
    return dg.FreshnessPolicy.cron(
        deadline_cron=f"{send_time.minute} {send_time.hour} * * *",
        lower_bound_delta=max(since_midnight, dt.timedelta(minutes=1)),
        timezone=timezone,
    )


def conventions(settings: Settings) -> Callable[[dg.AssetSpec], dg.AssetSpec]:
    """What adds the shared owners, kinds, tags, automation and freshness to what each asset states itself."""
    daily = daily_after_kpis(settings.pipeline_timezone)
    freshness = daily_freshness(settings.report_send_time, settings.pipeline_timezone)

    def with_conventions(spec: dg.AssetSpec) -> dg.AssetSpec:
        spec = spec.merge_attributes(owners=OWNERS, kinds={"postgres"}, tags={**TAGS[spec.group_name], **spec.tags})
        schema = spec.key.path[0]
        if schema in TABLE_SCHEMAS:  # one table of the warehouse, named as its key
            spec = spec.merge_attributes(
                kinds={"table"}, metadata={"dagster/table_name": f"{schema}.{spec.key.path[1]}"}
            )
        if spec.key in FRESH_DAILY:
            spec = spec.replace_attributes(freshness_policy=freshness)
        return spec.replace_attributes(automation_condition=automation_condition(spec, daily))

    return with_conventions
