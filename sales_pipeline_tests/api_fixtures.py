"""A generated retailer loaded the real way (workbook -> importer -> marts -> forecasts -> anomalies) for the
read API's tests, and the API itself over it."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import dagster as dg

from sales_pipeline.analytics import marts
from sales_pipeline.api.config import ApiConfig
from sales_pipeline.defs.analytics.marts import dashboard, sales_trends, stock_health, top_products
from sales_pipeline.defs.anomalies.assets import anomaly_assets
from sales_pipeline.defs.forecasting.assets import build_sales_forecast, demand_forecast
from sales_pipeline.demo.retailer import generate_retailer, write_sheets_workbook
from sales_pipeline.excel.importer import ImportSettings, import_workbook
from sales_pipeline.resources import AlertingResource, AnalyticsResource, ForecastingResource, WarehouseResource
from sales_pipeline.warehouse.db import transaction

# Two stores, 120 days to 2026-11-22: enough for forecasts of the total, the stores and most products.
RETAILER = generate_retailer(scale=2, seed=42, days=120)
READ_TOKEN = "read-token-0123456789abcdef"
WRITE_TOKEN = "write-token-0123456789abcdef"
TOKENS = {READ_TOKEN: "read", WRITE_TOKEN: "write"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def load_retailer(url: str, folder: Path) -> None:
    """Import the retailer's workbook, refresh every mart, forecast and look for anomalies."""
    for name in ("archive", "rejected"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    workbook = write_sheets_workbook(folder / "retailer.xlsx", RETAILER.frames())
    settings = ImportSettings(folder / "archive", folder / "rejected", timezone="UTC")
    result = import_workbook(partial(transaction, url), workbook, settings)
    assert result.status == "loaded", result.reason
    with transaction(url) as cursor:
        cursor.execute("SELECT min(sale_date), max(sale_date) FROM core.sales")
        marts.refresh_daily_kpis(cursor, *cursor.fetchone(), "UTC")
    resources = {
        "warehouse": WarehouseResource(database_url=url),
        "analytics": AnalyticsResource(timezone="UTC", dashboard_dir=str(folder / "dashboard")),
        "forecasting": ForecastingResource(timezone="UTC", workers=2),
        "alerting": AlertingResource(outbox_dir=str(folder / "outbox"), timezone="UTC"),
    }
    forecasts = [build_sales_forecast(holiday_country=None), demand_forecast]
    assets = [sales_trends, stock_health, top_products, dashboard, *forecasts, *anomaly_assets]
    assert dg.materialize(assets, resources=resources).success


def api_config(url: str, folder: Path, **changes: object) -> ApiConfig:
    config = ApiConfig(
        database_url=url,
        tokens=TOKENS,
        inbox_dir=folder / "inbox",
        mappings_dir=Path("data/mappings").resolve(),
        archive_dir=folder / "archive",
        dagster_url="http://127.0.0.1:9",  # nothing listens there unless a test starts a webserver
        heartbeat_s=1.0,
    )
    return replace(config, **changes)
