"""The marts as assets: daily KPIs by day partition, the rest refreshed from them.

`daily_kpis` is partitioned by day (in PIPELINE_TIMEZONE) and backfills in one run per range, so
an import that changed three days recomputes three partitions; the inbox of sales triggers it
through `sales_changed_sensor`, and the daily schedule recomputes yesterday. The other marts are
small tables refreshed after it by declarative automation; `sales_trends` recomputes only from
the first day whose KPIs changed since its last refresh.
"""

import datetime as dt
import json
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from sales_pipeline import settings
from sales_pipeline.alerts.render import alert_record
from sales_pipeline.alerts.store import read_alerts
from sales_pipeline.analytics import marts
from sales_pipeline.analytics.changes import absorb_sales_changes
from sales_pipeline.analytics.charts import bar_chart_markdown, line_chart_markdown
from sales_pipeline.defs.alerts.delivery import ANOMALY_KEYS
from sales_pipeline.defs.ingest.workbooks import AFTER_ANY_UPSTREAM_UPDATE, OWNERS
from sales_pipeline.i18n import Formatter
from sales_pipeline.resources import AlertingResource, AnalyticsResource, WarehouseResource
from sales_pipeline.warehouse.db import engine, transaction
from sales_pipeline.warehouse.quality import hold_sales_still, revenue_mismatches

GROUP = "analytics"
TAGS = {"domain": "analytics", "layer": "marts"}
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.history_start(), timezone=settings.pipeline_timezone()
)


def partition_bounds() -> tuple[dt.date, dt.date]:
    """The first and last day the daily KPIs have a partition for (the last is yesterday)."""
    first = dt.date.fromisoformat(daily_partitions.get_first_partition_key() or settings.history_start())
    last = daily_partitions.get_last_partition_key()
    return first, dt.date.fromisoformat(last) if last else first - dt.timedelta(days=1)


def _mart(name: str, description: str, **kwargs) -> dict:
    return {
        "key": ["marts", name],
        "group_name": GROUP,
        "kinds": {"postgres", "table"},
        "owners": OWNERS,
        "tags": TAGS,
        "description": description,
        "metadata": {"dagster/table_name": f"marts.{name}"},
        **kwargs,
    }


def _preview(url: str, statement: str, params: dict | None = None) -> pd.DataFrame:
    return pd.read_sql_query(statement, engine(url), params=params)


@dg.asset(
    **_mart(
        "daily_kpis",
        f"Per day in {settings.pipeline_timezone()}, overall and per store, category and product: revenue, units, "
        "orders, "
        "distinct customers, average order value, gross margin and margin rate where cost is known, discount given.",
        partitions_def=daily_partitions,
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
)
def daily_kpis(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, analytics: AnalyticsResource
) -> dg.MaterializeResult:
    window = context.partition_time_window
    first_day, last_day = window.start.date(), window.end.date() - dt.timedelta(days=1)
    url = warehouse.url()
    with transaction(url) as cursor:
        hold_sales_still(cursor)  # the refresh and its reconciliation see the same sales
        absorbed = absorb_sales_changes(cursor, first_day, last_day, analytics.timezone, partition_bounds())
        rows = marts.refresh_daily_kpis(cursor, first_day, last_day, analytics.timezone)
        mismatches = revenue_mismatches(cursor, analytics.timezone, first_day, last_day)
    totals = _preview(
        url,
        "SELECT day, revenue, orders, units FROM marts.daily_kpis WHERE scope = 'all'"
        " AND day BETWEEN %(first)s AND %(last)s ORDER BY day",
        {"first": first_day, "last": last_day},
    )
    metadata = {
        "rows_written": rows,
        "days": f"{first_day} .. {last_day}",
        "imports_and_pulls_absorbed": absorbed,
        "days_with_sales": len(totals),
        "revenue": float(totals["revenue"].sum()) if len(totals) else 0.0,
        "preview": dg.MetadataValue.md(totals.tail(10).to_markdown(index=False)),
    }
    if len(totals) > 1:
        metadata["revenue_per_day"] = dg.MetadataValue.md(
            line_chart_markdown({"revenue": totals.set_index("day")["revenue"]}, "Revenue per day", "revenue")
        )
    reconciliation = dg.AssetCheckResult(
        check_name="revenue_reconciles_with_core_sales",
        passed=mismatches.passed,
        metadata={"days_off": mismatches.failures, "sample": dg.MetadataValue.json(mismatches.sample)},
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[reconciliation])


@dg.asset(
    **_mart(
        "sales_trends",
        "7- and 28-day moving averages, week-over-week, month-over-month and year-over-year growth and a trend "
        "direction (rising, steady, falling, new), overall, per category and per product. Recomputed from the first "
        "day whose KPIs changed since the last refresh: rolling windows that include a changed day, nothing more.",
        deps=[daily_kpis],
        automation_condition=AFTER_ANY_UPSTREAM_UPDATE,
    )
)
def sales_trends(warehouse: WarehouseResource) -> dg.MaterializeResult:
    url = warehouse.url()
    with transaction(url) as cursor:
        cursor.execute(
            "SELECT min(day) FROM marts.daily_kpis WHERE computed_at >"
            " coalesce((SELECT max(computed_at) FROM marts.sales_trends), '-infinity')"
        )
        first_changed = cursor.fetchone()[0]
        last_day = marts.last_complete_day(cursor)
        rows = marts.refresh_sales_trends(cursor, first_changed, last_day) if first_changed and last_day else 0
    overall = _preview(
        url,
        "SELECT day, revenue, ma_7, ma_28, direction FROM marts.sales_trends WHERE scope = 'all'"
        " ORDER BY day DESC LIMIT 120",
    ).sort_values("day")
    metadata = {
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
    **_mart(
        "stock_health",
        "Per product and store, at its latest count: on hand, average daily demand over the 28 days ending at the "
        "count, days of cover, status (out_of_stock, below_reorder_point, healthy, overstock) and stock value at "
        "cost. It follows the stock counts (and product changes): a new day of sales after the latest count "
        "changes nothing here, so new sales alone do not rebuild it.",
        deps=[["core", "stock"], ["core", "products"]],
        automation_condition=dg.AutomationCondition.eager(),
    )
)
def stock_health(
    config: StockHealthConfig, warehouse: WarehouseResource, analytics: AnalyticsResource
) -> dg.MaterializeResult:
    url = warehouse.url()
    with transaction(url) as cursor:
        rows = marts.refresh_stock_health(cursor, analytics.timezone, config.overstock_days)
    counts = _preview(url, "SELECT status, count(*) AS items FROM marts.stock_health GROUP BY status ORDER BY 2 DESC")
    riskiest = _preview(
        url,
        "SELECT product_id, store_id, on_hand, avg_daily_demand, days_of_cover, status FROM marts.stock_health"
        " ORDER BY days_of_cover NULLS LAST LIMIT 10",
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
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
    **_mart(
        "top_products",
        "Top N products by revenue for yesterday, the last 7 and 30 days and month to date, for the whole "
        "business, each store and each category, with units, revenue, share of total and rank change against "
        "the previous period of the same length. 'Yesterday' is the last complete day with sales; a store's "
        "ranking reads the order lines of those days.",
        deps=[daily_kpis],
        automation_condition=AFTER_ANY_UPSTREAM_UPDATE,
    )
)
def top_products(
    config: TopProductsConfig, warehouse: WarehouseResource, analytics: AnalyticsResource
) -> dg.MaterializeResult:
    url = warehouse.url()
    with transaction(url) as cursor:
        as_of = marts.last_complete_day(cursor)
        rows = marts.refresh_top_products(cursor, as_of, config.top_n, analytics.timezone) if as_of else 0
    week = _preview(
        url,
        "SELECT rank, product_id, product_name, revenue, share, rank_change FROM marts.top_products"
        " WHERE as_of = %(as_of)s AND period = 'last_7_days' AND scope = 'all' AND rank <= 5"
        " ORDER BY rank, product_id",
        {"as_of": as_of},
    )
    metadata = {"as_of": str(as_of or ""), "rows_written": rows, "top_last_7_days": dg.MetadataValue.md(
        week.to_markdown(index=False))}  # fmt: skip
    if len(week):
        metadata["chart"] = dg.MetadataValue.md(
            bar_chart_markdown(week.set_index("product_name")["revenue"], "Top products, last 7 days", "revenue")
        )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    **_mart(
        "dashboard",
        "The Dashboard record a web page or BI tool reads: headline KPIs of the last day and week with their "
        "change, a 30-day revenue series, stock health counts and the products at risk, top 5 products, open "
        "alerts; for the whole business and each store. One row per refresh and scope in marts.dashboard (jsonb), "
        "the whole business's also in dashboard.json in the dashboard folder; the JSON shape is documented at the "
        "top of sales_pipeline/analytics/marts.py.",
        # After the anomalies too: the record lists the alerts they opened.
        deps=[daily_kpis, sales_trends, stock_health, top_products, *ANOMALY_KEYS],
        automation_condition=AFTER_ANY_UPSTREAM_UPDATE,
    )
)
def dashboard(
    warehouse: WarehouseResource, analytics: AnalyticsResource, alerting: AlertingResource
) -> dg.MaterializeResult:
    url = warehouse.url()
    with transaction(url) as cursor:
        as_of = marts.last_complete_day(cursor)
        alerts = open_alert_records(cursor, alerting) if as_of else []
        document = marts.build_dashboard(cursor, as_of, timezone=analytics.timezone, alerts=alerts) if as_of else None
    if document is None:
        return dg.MaterializeResult(metadata={"as_of": "", "note": "no sales yet"})
    path = Path(analytics.dashboard_dir) / "dashboard.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of this writer's own (two runs may write at once), then an atomic rename:
    # readers never see a half-written file.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix="dashboard.", suffix=".tmp", delete=False) as out:
        out.write(json.dumps(document, indent=2) + "\n")
    Path(out.name).chmod(0o644)  # readable by a web server or BI tool, as a plainly written file would be
    Path(out.name).replace(path)
    series = pd.DataFrame(document["revenue_30d"]).set_index("day")["revenue"]
    return dg.MaterializeResult(
        metadata={
            "as_of": document["as_of"],
            "file": dg.MetadataValue.path(str(path)),
            "headline": dg.MetadataValue.json(document["headline"]),
            "stock_health": dg.MetadataValue.json(document["stock_health"]),
            "revenue_30d": dg.MetadataValue.md(line_chart_markdown({"revenue": series}, "Last 30 days", "revenue")),
        }
    )


def open_alert_records(cursor, alerting: AlertingResource) -> list[dict]:
    """The alerts not resolved, in the dashboard's words (REPORT_LOCALE), with the store each is about."""
    fmt = Formatter(alerting.locale, alerting.currency)
    return [
        alert_record(row, fmt, alerting.webserver_url, alerting.timezone) | {"store_id": row["store_id"]}
        for row in read_alerts(cursor).to_dict("records")
    ]


mart_assets = [daily_kpis, sales_trends, stock_health, top_products, dashboard]

refresh_daily_kpis_job = dg.define_asset_job(
    "refresh_daily_kpis",
    selection=[daily_kpis.key],
    partitions_def=daily_partitions,
    description="Recompute the daily KPIs of a day or a range of days (one run per range).",
)

refresh_marts_job = dg.define_asset_job(
    "refresh_marts",
    selection=[sales_trends.key, stock_health.key, top_products.key, dashboard.key],
    description="Refresh the marts that follow the daily KPIs (automation does it when the daemon runs).",
)
