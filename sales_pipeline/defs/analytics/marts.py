"""The marts as assets: daily KPIs by day partition, the rest refreshed from them.

`daily_kpis` is partitioned by day (in PIPELINE_TIMEZONE) and backfills in one run per range, so
an import that changed three days recomputes three partitions; the inbox of sales triggers it
through `sales_changed_sensor`, and the daily schedule recomputes yesterday. The other marts are
small tables refreshed after it by declarative automation; `sales_trends` recomputes only from
the first day whose KPIs changed since its last refresh.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
from psycopg2.extensions import cursor as Cursor
from pydantic import Field

from sales_pipeline.alerts.render import alert_record
from sales_pipeline.alerts.store import read_alerts
from sales_pipeline.analytics import marts, queries
from sales_pipeline.analytics.changes import absorb_sales_changes
from sales_pipeline.analytics.charts import bar_chart_markdown, line_chart_markdown
from sales_pipeline.defs.alerts.delivery import ANOMALY_KEYS
from sales_pipeline.defs.conventions import WAREHOUSE_POOL
from sales_pipeline.defs.warehouse.catalog import table_metadata
from sales_pipeline.i18n import Formatter
from sales_pipeline.resources import AlertingResource, AnalyticsResource, WarehouseResource
from sales_pipeline.settings import Settings
from sales_pipeline.warehouse.profile import profile_table
from sales_pipeline.warehouse.quality import hold_sales_still, revenue_mismatches

GROUP = "analytics"
DAILY_KPIS = dg.AssetKey(["marts", "daily_kpis"])


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """One partition per day in the pipeline's time zone, from the history start to yesterday."""
    return dg.DailyPartitionsDefinition(
        start_date=settings.history_start.isoformat(), timezone=settings.pipeline_timezone
    )


def partition_bounds(partitions: dg.DailyPartitionsDefinition) -> tuple[dt.date, dt.date]:
    """The first and last day the daily KPIs have a partition for (the last is yesterday)."""
    first = partitions.start.date()
    last = partitions.get_last_partition_key()
    return first, dt.date.fromisoformat(last) if last else first - dt.timedelta(days=1)


def build_daily_kpis(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """The daily KPIs, one partition per day of `partitions`."""

    @dg.asset(
        key=["marts", "daily_kpis"],
        group_name=GROUP,
        pool=WAREHOUSE_POOL,
        description=f"Per day in {partitions.timezone}, overall and per store, category and product: revenue, units, "
        "orders, distinct customers, average order value, gross margin and margin rate where cost is known, "
        "discount given.",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[["core", "sales"], ["core", "products"]],
        check_specs=[
            dg.AssetCheckSpec(
                "revenue_reconciles_with_core_sales",
                asset=["marts", "daily_kpis"],
                blocking=True,
                description="For the days computed, revenue here equals revenue in core.sales, to the cent.",
            )
        ],
    )
    def daily_kpis(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, analytics: AnalyticsResource
    ) -> dg.MaterializeResult:
        window = context.partition_time_window
        first_day, last_day = window.start.date(), window.end.date() - dt.timedelta(days=1)
        with warehouse.transaction() as cursor:
            hold_sales_still(cursor)  # the refresh and its reconciliation see the same sales
            absorbed = absorb_sales_changes(
                cursor, first_day, last_day, analytics.timezone, partition_bounds(partitions)
            )
            rows = marts.refresh_daily_kpis(cursor, first_day, last_day, analytics.timezone)
            mismatches = revenue_mismatches(cursor, analytics.timezone, first_day, last_day)
            figures = queries.daily_figures(cursor, first_day, last_day)
            catalog = mart_catalog(cursor, "daily_kpis")
        _add_daily_figures(context, figures)
        metadata = {  # the run's, on each of its days
            **catalog,
            "run_days": f"{first_day} .. {last_day}",
            "run_rows_written": rows,
            "imports_and_pulls_absorbed": absorbed,
        }
        reconciliation = dg.AssetCheckResult(
            check_name="revenue_reconciles_with_core_sales",
            passed=mismatches.passed,
            metadata={"days_off": mismatches.failures, "sample": dg.MetadataValue.json(mismatches.sample)},
        )
        return dg.MaterializeResult(metadata=metadata, check_results=[reconciliation])

    return daily_kpis


def _add_daily_figures(context: dg.AssetExecutionContext, figures: pd.DataFrame) -> None:
    """Each day's materialization carries that day's own figures (a day without sales: zeros), so the UI's
    plots of the daily KPIs show one point per day, even after a range run."""
    per_day = figures.set_index(figures["day"].map(str)).reindex(context.partition_keys).fillna(0)
    for day, row in per_day.iterrows():
        context.add_asset_metadata(
            {
                "rows_written": int(row["rows_written"]),
                "revenue": float(row["revenue"]),
                "orders": int(row["orders"]),
                "units": int(row["units"]),
            },
            partition_key=day,
        )


@dg.asset(
    key=["marts", "sales_trends"],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    description="7- and 28-day moving averages, week-over-week, month-over-month and year-over-year growth and a trend "
    "direction (rising, steady, falling, new), overall, per category and per product. Recomputed from the first "
    "day whose KPIs changed since the last refresh: rolling windows that include a changed day, nothing more.",
    deps=[DAILY_KPIS],
)
def sales_trends(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.transaction() as cursor:
        first_changed = marts.first_day_changed_since_trends(cursor)
        last_day = marts.last_complete_day(cursor)
        rows = marts.refresh_sales_trends(cursor, first_changed, last_day) if first_changed and last_day else 0
    with warehouse.transaction() as cursor:
        overall = queries.recent_trend(cursor, days=120)
        catalog = mart_catalog(cursor, "sales_trends")
    metadata = {
        **catalog,
        "rows_written": rows,
        "recomputed_from": str(first_changed or ""),
        "preview": dg.MetadataValue.md(overall.tail(10).to_markdown(index=False)),
    }
    if len(overall) > 1:
        frame = overall.set_index("day")
        metadata["trend"] = dg.MetadataValue.md(
            line_chart_markdown(
                {"revenue": frame["revenue"], "7-day average": frame["ma_7"], "28-day average": frame["ma_28"]},
                "Revenue and its moving averages (last 120 days)",
                "revenue",
            )
        )
    return dg.MaterializeResult(metadata=metadata)


class StockHealthConfig(dg.Config):
    overstock_days: float = Field(default=90.0, description="Days of cover above which stock counts as overstock.")


@dg.asset(
    key=["marts", "stock_health"],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    description="Per product and store, at its latest count: on hand, average daily demand over the 28 days ending "
    "at the count, days of cover, status (out_of_stock, below_reorder_point, healthy, overstock) and stock value at "
    "cost. It follows the stock counts (and product changes): a new day of sales after the latest count "
    "changes nothing here, so new sales alone do not rebuild it.",
    deps=[["core", "stock"], ["core", "products"]],
    automation_condition=dg.AutomationCondition.eager(),  # its own: parents unpartitioned, none may be missing
)
def stock_health(
    config: StockHealthConfig, warehouse: WarehouseResource, analytics: AnalyticsResource
) -> dg.MaterializeResult:
    with warehouse.transaction() as cursor:
        rows = marts.refresh_stock_health(cursor, analytics.timezone, config.overstock_days)
    with warehouse.transaction() as cursor:
        counts, riskiest = queries.stock_status_counts(cursor), queries.least_cover(cursor, limit=10)
        catalog = mart_catalog(cursor, "stock_health")
    return dg.MaterializeResult(
        metadata={
            **catalog,
            "rows_written": rows,
            "status_counts": dg.MetadataValue.md(counts.to_markdown(index=False)),
            "least_cover": dg.MetadataValue.md(riskiest.to_markdown(index=False)),
        }
    )


class TopProductsConfig(dg.Config):
    top_n: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="How many products per period and scope (ties included): the read API serves up to 100, "
        "the dashboard shows 5.",
    )


@dg.asset(
    key=["marts", "top_products"],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    description="Top N products by revenue for yesterday, the last 7 and 30 days and month to date, for the whole "
    "business, each store and each category, with units, revenue, share of total and rank change against "
    "the previous period of the same length. 'Yesterday' is the last complete day with sales; a store's "
    "ranking reads the order lines of those days.",
    deps=[DAILY_KPIS],
)
def top_products(
    config: TopProductsConfig, warehouse: WarehouseResource, analytics: AnalyticsResource
) -> dg.MaterializeResult:
    with warehouse.transaction() as cursor:
        as_of = marts.last_complete_day(cursor)
        rows = marts.refresh_top_products(cursor, as_of, config.top_n, analytics.timezone) if as_of else 0
    with warehouse.transaction() as cursor:
        week = queries.top_of_period(cursor, as_of, "last_7_days", shown=5)
        catalog = mart_catalog(cursor, "top_products")
    metadata = {**catalog, "as_of": str(as_of or ""), "rows_written": rows, "top_last_7_days": dg.MetadataValue.md(
        week.to_markdown(index=False))}  # fmt: skip
    if len(week):
        metadata["chart"] = dg.MetadataValue.md(
            bar_chart_markdown(week.set_index("product_name")["revenue"], "Top products, last 7 days", "revenue")
        )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=["marts", "dashboard"],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    description="The Dashboard record a web page or BI tool reads: headline KPIs of the last day and week with their "
    "change, a 30-day revenue series, stock health counts and the products at risk, top 5 products, open "
    "alerts; for the whole business and each store. One row per refresh and scope in marts.dashboard (jsonb), "
    "the whole business's also in dashboard.json in the dashboard folder; the JSON shape is at the top of "
    "sales_pipeline/analytics/marts.py.",
    # After the anomalies too: the record lists the alerts they opened.
    deps=[DAILY_KPIS, sales_trends, stock_health, top_products, *ANOMALY_KEYS],
)
def dashboard(
    warehouse: WarehouseResource, analytics: AnalyticsResource, alerting: AlertingResource
) -> dg.MaterializeResult:
    with warehouse.transaction() as cursor:
        as_of = marts.last_complete_day(cursor)
        alerts = open_alert_records(cursor, alerting) if as_of else []
        document = marts.build_dashboard(cursor, as_of, timezone=analytics.timezone, alerts=alerts) if as_of else None
        catalog = mart_catalog(cursor, "dashboard")
    if document is None:
        return dg.MaterializeResult(metadata={**catalog, "as_of": "", "note": "no sales yet"})
    path = marts.write_dashboard_file(document, Path(analytics.dashboard_dir))
    series = pd.DataFrame(document["revenue_30d"]).set_index("day")["revenue"]
    return dg.MaterializeResult(
        metadata={
            **catalog,
            "as_of": document["as_of"],
            "file": dg.MetadataValue.path(str(path)),
            "headline": dg.MetadataValue.json(document["headline"]),
            "stock_health": dg.MetadataValue.json(document["stock_health"]),
            "revenue_30d": dg.MetadataValue.md(line_chart_markdown({"revenue": series}, "Last 30 days", "revenue")),
        }
    )


def mart_catalog(cursor: Cursor, name: str) -> dict:
    """The catalog's metadata of marts.<name>: columns, row count, last refresh (defs/warehouse/catalog.py)."""
    return table_metadata(profile_table(cursor, f"marts.{name}", changed_column="computed_at", preview_rows=0))


def open_alert_records(cursor: Cursor, alerting: AlertingResource) -> list[dict]:
    """The alerts not resolved, in the dashboard's words (REPORT_LOCALE), with the store each is about."""
    fmt = Formatter(alerting.locale, alerting.currency)
    return [
        # A frame's missing store (a chain-wide alert) may read as NaN, which JSON cannot hold: None.
        alert_record(row, fmt, alerting.webserver_url, alerting.timezone) | {"store_id": row["store_id"] or None}
        for row in read_alerts(cursor).astype({"store_id": object}).fillna({"store_id": ""}).to_dict("records")
    ]


mart_assets = [sales_trends, stock_health, top_products, dashboard]  # after the daily KPIs (build_daily_kpis)

refresh_marts_job = dg.define_asset_job(
    "refresh_marts",
    selection=[sales_trends.key, stock_health.key, top_products.key, dashboard.key],
    description="Refresh the marts that follow the daily KPIs (automation does it when the daemon runs).",
)
