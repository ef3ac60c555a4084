"""The core tables as assets: every source merges into them; these assets show what they hold.

The merges themselves happen in the ingest assets (workbooks, the API), inside each one's transaction. These assets
refresh after every import (declarative automation) and publish each table's row count, its most
recently changed rows and its freshness, so the UI answers "what is in the warehouse now?".
"""

import dagster as dg

from sales_pipeline.defs.ingest.java_api import API_PRODUCTS, API_SALES, API_STOCK, api_promotions, api_store_calendar
from sales_pipeline.defs.ingest.workbooks import workbook_import
from sales_pipeline.defs.warehouse.catalog import table_metadata
from sales_pipeline.resources import WarehouseResource
from sales_pipeline.warehouse.profile import profile_table

CORE_TABLES = {
    "products": "The product catalogue: one row per product, with price, cost, reorder point and lead time.",
    "stores": "Stores and channels, with their time zone (sales dates are the store's local business day).",
    "customers": "Known customers; anonymous sales have none.",
    "sales": "Order lines: one row per order id and line number, with the instant, the store's local day and "
    "the net revenue after discount.",
    "stock": "On-hand and on-order snapshots per product, store and date.",
    "store_calendar": "Known closures (a date, or every such weekday) and openings by exception, per store or for "
    "every store: the only closed days the forecasts and the drop detector take as known.",
    "promotions": "Promotions known ahead: a product, a category or everything, in a store or every store, from a "
    "first to a last day; the forecasts take them as an input.",
}
# The calendar and the promotions come from the workbooks and their own API lists; the others from any source.
SOURCES = {"store_calendar": [api_store_calendar.key], "promotions": [api_promotions.key]}


def build_core_table_asset(name: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["core", name],
        deps=[workbook_import, *SOURCES.get(name, [API_PRODUCTS, API_SALES, API_STOCK])],
        group_name="warehouse",
        description=f"core.{name}: {description}",
    )
    def core_table(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.transaction() as cursor:
            profile = profile_table(cursor, f"core.{name}")
        return dg.MaterializeResult(
            metadata={
                **table_metadata(profile),
                "preview": dg.MetadataValue.md(profile.preview.to_markdown(index=False)),
            }
        )

    return core_table


core_table_assets = [build_core_table_asset(name, description) for name, description in CORE_TABLES.items()]

refresh_core_tables_job = dg.define_asset_job(
    "refresh_core_tables",
    selection=dg.AssetSelection.groups("warehouse"),
    description="Publish the core tables' row counts and previews (automation does it after each import).",
)
