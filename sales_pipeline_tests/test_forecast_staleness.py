"""What the Dagster UI shows: the forecast is stale after new sales, fresh once it has run on them.

Dagster leaves daily-partitioned parents out of staleness (too many partitions), so the forecast's
staleness comes from its unpartitioned parent core/sales.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from sales_pipeline.definitions import defs as code_location
from sales_pipeline.defs.analytics.marts import build_daily_kpis, daily_partitions
from sales_pipeline.defs.forecasting.assets import SALES_KEY, build_sales_forecast
from sales_pipeline.defs.warehouse.core_tables import core_table_assets
from sales_pipeline.excel.importer import import_workbook
from sales_pipeline.resources import AnalyticsResource, ForecastingResource, WarehouseResource
from sales_pipeline.settings import Settings
from sales_pipeline_tests.workbooks import products, sales, write_workbook

defs = code_location()  # the code location, as the code server loads it
daily_kpis = build_daily_kpis(daily_partitions(Settings.from_environment()))
sales_forecast = build_sales_forecast(holiday_country=None)


def status(instance: dg.DagsterInstance) -> StaleStatus:
    """The status the UI shows (Dagster's own resolver: no public API answers this)."""
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
    return resolver.get_status(SALES_KEY)


def test_the_forecast_is_stale_after_new_sales_and_fresh_after_it_runs(
    empty_warehouse, import_settings, folders, warehouse
):
    first, later = sales(300), sales(40)
    for row in later[1:]:
        row[0] = "L" + row[0]  # other orders, same days
    import_workbook(
        warehouse.transaction,
        write_workbook(folders["inbox"] / "a.xlsx", {"Products": products(), "Sales": first}),
        import_settings,
    )
    [core_sales] = [asset for asset in core_table_assets if asset.key.path == ["core", "sales"]]
    resources = {
        "warehouse": WarehouseResource(database_url=empty_warehouse),
        "analytics": AnalyticsResource(timezone="UTC", dashboard_dir=str(Path(folders["inbox"]).parent)),
        "forecasting": ForecastingResource(timezone="UTC", workers=1),
    }
    with dg.instance_for_test() as instance:
        dg.materialize([core_sales], resources=resources, instance=instance)
        dg.materialize([daily_kpis], partition_key="2026-11-02", resources=resources, instance=instance)
        dg.materialize([sales_forecast], resources=resources, instance=instance)
        assert status(instance) == StaleStatus.FRESH
        import_workbook(
            warehouse.transaction, write_workbook(folders["inbox"] / "b.xlsx", {"Sales": later}), import_settings
        )
        dg.materialize([core_sales], resources=resources, instance=instance)  # what automation does after it
        assert status(instance) == StaleStatus.STALE
        dg.materialize([daily_kpis], partition_key="2026-11-02", resources=resources, instance=instance)
        dg.materialize([sales_forecast], resources=resources, instance=instance)
        assert status(instance) == StaleStatus.FRESH
