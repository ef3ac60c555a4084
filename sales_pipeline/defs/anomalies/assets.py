"""Anomalies as assets: each detection rewrites its kind's current situations in ml.anomalies.

A situation keeps its dedupe key while it lasts (the alerts send each once); one the detection no
longer finds is resolved, not deleted. ops.alerts follows in the same transaction (alerts/store.py):
the delivery sensor sees a new critical alert as soon as the refresh commits.
"""

import json

import dagster as dg
import pandas as pd

from sales_pipeline.alerts.store import follow_anomalies
from sales_pipeline.anomalies.churn import refresh_churn
from sales_pipeline.anomalies.drops import refresh_sales_drops
from sales_pipeline.anomalies.stock_risk import refresh_stock_risks
from sales_pipeline.defs.conventions import WAREHOUSE_POOL
from sales_pipeline.defs.forecasting.assets import DEMAND_KEY, SALES_KEY
from sales_pipeline.records import Alert
from sales_pipeline.resources import WarehouseResource

ANOMALY = {"group_name": "anomalies", "kinds": {"python"}, "metadata": {"dagster/table_name": "ml.anomalies"},
           "pool": WAREHOUSE_POOL}  # fmt: skip


def _alerts_metadata(alerts: list[Alert], followed: dict[str, int]) -> dict:
    counts = {severity: sum(a.severity == severity for a in alerts) for severity in ("critical", "warning", "info")}
    preview = pd.DataFrame(
        [{"severity": a.severity, "entity": f"{a.entity_type} {a.entity_id}", "message": a.message} for a in alerts]
    )
    return {
        "anomalies": len(alerts),
        **counts,
        **{f"alerts_{event}": count for event, count in followed.items()},
        "active": dg.MetadataValue.md(preview.head(20).to_markdown(index=False) if len(preview) else "none"),
    }


@dg.asset(
    key=["anomalies", "sales_drops"],
    description="Sales drops of the total, a store, a category or a product: a run of open days under the forecast "
    "issued first for each day, under its cumulative lower bound; intermittent products by the chance of so few "
    "selling days given their own year. Closed days (the store calendar) are not anomalies. 1 day info, 2 warning, "
    "3+ critical. The rule (confidence levels, closed days, count model, false-alarm rates) is at the top of "
    "sales_pipeline/anomalies/drops.py.",
    deps=[SALES_KEY, ["marts", "daily_kpis"], ["core", "store_calendar"]],
    **ANOMALY,
)
def sales_drops(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.transaction() as cursor:
        alerts = refresh_sales_drops(cursor)
        followed = follow_anomalies(cursor, "sales_drop")
    return dg.MaterializeResult(metadata=_alerts_metadata(alerts, followed))


@dg.asset(
    key=["anomalies", "stock_risks"],
    description="Stock-out risk per product and store: what is left of the latest count runs out, by the demand "
    "forecast, within the supplier's lead time. The rule (projection, lead time, severity) is at the top of "
    "sales_pipeline/anomalies/stock_risk.py.",
    deps=[DEMAND_KEY, ["core", "stock"], ["core", "products"]],
    **ANOMALY,
)
def stock_risks(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.transaction() as cursor:
        projection, alerts = refresh_stock_risks(cursor)
        followed = follow_anomalies(cursor, "stock_risk")
    return dg.MaterializeResult(metadata={"positions_assessed": len(projection), **_alerts_metadata(alerts, followed)})


@dg.asset(
    key=["anomalies", "customer_churn"],
    description="Customers with two or more purchase days whose silence is improbable given their own purchase rhythm "
    "(ml.customer_churn per customer, ml.churn_kpis for the churn rate); one-time buyers are counted apart, "
    "never alerted. The model and its thresholds are at the top of sales_pipeline/anomalies/churn.py.",
    # The day's KPIs too: churn is judged once a day, when the day's sales are all in (defs/conventions.py).
    deps=[["core", "sales"], ["marts", "daily_kpis"]],
    **ANOMALY,
)
def customer_churn(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.transaction() as cursor:
        kpis, alerts = refresh_churn(cursor)
        followed = follow_anomalies(cursor, "customer_churn")
    return dg.MaterializeResult(
        metadata={
            "churn_kpis": dg.MetadataValue.json(json.loads(json.dumps(kpis, default=str))),
            **_alerts_metadata(alerts, followed),
        }
    )


anomaly_assets = [sales_drops, stock_risks, customer_churn]
