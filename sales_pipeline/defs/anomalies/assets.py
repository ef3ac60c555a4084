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
from sales_pipeline.defs.forecasting.assets import DEMAND_KEY, SALES_KEY
from sales_pipeline.defs.ingest.workbooks import AFTER_ANY_UPSTREAM_UPDATE, OWNERS
from sales_pipeline.records import Alert
from sales_pipeline.resources import WarehouseResource
from sales_pipeline.warehouse.db import transaction

GROUP = "anomalies"
TAGS = {"domain": "alerts", "layer": "ml"}


def _anomaly(name: str, description: str, deps: list) -> dict:
    return {
        "key": ["anomalies", name],
        "group_name": GROUP,
        "kinds": {"python", "postgres"},
        "owners": OWNERS,
        "tags": TAGS,
        "description": description,
        "deps": deps,
        "automation_condition": AFTER_ANY_UPSTREAM_UPDATE,
        "metadata": {"dagster/table_name": "ml.anomalies"},
    }


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
    **_anomaly(
        "sales_drops",
        "Sales drops of the total, a store, a category or a product: a run of open days under the forecast issued "
        "first for each day (one good day carried), under its cumulative lower bound; intermittent products by the "
        "chance of so few selling days given their own year. Closed days (the store calendar) are not anomalies. "
        "Severity by the run's length (1 info, 2 warning, 3+ critical, which also needs a fifth of the revenue "
        "missing).",
        deps=[SALES_KEY, ["marts", "daily_kpis"], ["core", "store_calendar"]],
    )
)
def sales_drops(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with transaction(warehouse.url()) as cursor:
        alerts = refresh_sales_drops(cursor)
        followed = follow_anomalies(cursor, "sales_drop")
    return dg.MaterializeResult(metadata=_alerts_metadata(alerts, followed))


@dg.asset(
    **_anomaly(
        "stock_risks",
        "Stock-out risk per product and store: on hand at the latest count, minus what sold since, minus the "
        "cumulative demand forecast; at risk when it runs out within the supplier's lead time, critical within "
        "half of it (one step milder when a delivery is on order).",
        deps=[DEMAND_KEY, ["core", "stock"], ["core", "products"]],
    )
)
def stock_risks(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with transaction(warehouse.url()) as cursor:
        projection, alerts = refresh_stock_risks(cursor)
        followed = follow_anomalies(cursor, "stock_risk")
    return dg.MaterializeResult(metadata={"positions_assessed": len(projection), **_alerts_metadata(alerts, followed)})


@dg.asset(
    **_anomaly(
        "customer_churn",
        "Customers with two or more purchase days whose silence is improbable given their own purchase rhythm "
        "(ml.customer_churn per customer, ml.churn_kpis for the churn rate); one-time buyers are counted apart, "
        "never alerted.",
        deps=[["core", "sales"]],
    )
)
def customer_churn(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with transaction(warehouse.url()) as cursor:
        kpis, alerts = refresh_churn(cursor)
        followed = follow_anomalies(cursor, "customer_churn")
    return dg.MaterializeResult(
        metadata={
            "churn_kpis": dg.MetadataValue.json(json.loads(json.dumps(kpis, default=str))),
            **_alerts_metadata(alerts, followed),
        }
    )


anomaly_assets = [sales_drops, stock_risks, customer_churn]
