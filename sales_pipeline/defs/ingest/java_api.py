"""The back office's API as assets: products (incremental), sales (by day), stock, store calendar, promotions.

Each pull commits in one transaction with its ledger row in ops.api_pulls, only once every page has
come: a pull that fails on page 7 of 10 leaves the warehouse exactly as it was. Products and stock are
read whole first; the sales of a range of days land page by page inside that transaction as they come,
so memory holds one page whatever the range.
"""

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import dagster as dg
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.defs.conventions import NETWORK_RETRY, WAREHOUSE_POOL
from sales_pipeline.javaapi import load
from sales_pipeline.javaapi.client import JavaApiError, JavaApiUnavailable, PullStats
from sales_pipeline.javaapi.records import InvalidPage
from sales_pipeline.resources import JavaApiResource, WarehouseResource
from sales_pipeline.settings import Settings
from sales_pipeline.warehouse.merge import MergeCounts

API_PRODUCTS = dg.AssetKey(["ingest", "api_products"])
API_SALES = dg.AssetKey(["ingest", "api_sales"])
API_STOCK = dg.AssetKey(["ingest", "api_stock"])
ASSET = {"group_name": "ingest", "kinds": {"api"}, "tags": {"source": "api"}, "pool": WAREHOUSE_POOL,
         "retry_policy": NETWORK_RETRY}  # fmt: skip


@contextmanager
def api_failures() -> Iterator[None]:
    """An answer no retry mends (a refused token, a bad record) fails the step at once; an API that stayed
    down fails it to the step's RetryPolicy (NETWORK_RETRY), which tries again later."""
    try:
        yield
    except JavaApiUnavailable:
        raise
    except (JavaApiError, InvalidPage) as error:
        raise dg.Failure(str(error), allow_retries=False) from error


def fetch(java_api: JavaApiResource, endpoint: str, params: dict | None = None) -> tuple[list[dict], PullStats]:
    """Every page of `endpoint` (see `api_failures`)."""
    with api_failures():
        return java_api.client().fetch_all(endpoint, params or {})


def _pull_metadata(result: load.PullResult, stats: PullStats, window: str) -> dict:
    return {
        "pull_id": result.pull_id,
        "rows_pulled": result.records,
        "pages": stats.pages,
        "retries": stats.retries,
        "retry_reasons": dg.MetadataValue.json(stats.retry_reasons),
        "restarts": stats.restarts,
        "inserted": result.counts.inserted,
        "updated": result.counts.updated,
        "removed": result.removed,
        "window": window,
    }


@dg.asset(
    key=API_PRODUCTS,
    description="Products changed in the back office since the last pull (updatedSince = the cursor kept in "
    "ops.api_cursors, so it survives a new Dagster instance), merged into core.products.",
    **ASSET,
)
def api_products(context: dg.AssetExecutionContext, java_api: JavaApiResource, warehouse: WarehouseResource):
    with warehouse.transaction() as cursor:
        since = load.products_cursor(cursor)
    records, stats = fetch(java_api, "products", {"updatedSince": since} if since else {})
    with warehouse.transaction() as cursor:
        pull_id = load.start_pull(cursor, "products", (since, None), context.run_id)
        load.land_records(cursor, pull_id, "products", records)
        counts = load.merge_products(cursor, records)
        load.advance_products_cursor(cursor, records)
        result = load.PullResult(pull_id, "products", len(records), counts)
        load.finish_pull(cursor, result, stats)
    return dg.MaterializeResult(metadata=_pull_metadata(result, stats, f"updatedSince {since or 'the beginning'}"))


def build_api_sales(days: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """The API's sales, one partition per day of `days`."""

    @dg.asset(
        key=API_SALES,
        description="A day (UTC) of order lines from the back office, replacing the API's lines of that day in "
        "core.sales; the API's version of a line wins over a workbook's. A range of days pulls in one run.",
        partitions_def=days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[API_PRODUCTS],
        **ASSET,
    )
    def api_sales(context: dg.AssetExecutionContext, java_api: JavaApiResource, warehouse: WarehouseResource):
        window = context.partition_time_window
        first_day, end_day = window.start.date(), window.end.date()
        instants = (window.start.astimezone(dt.UTC), window.end.astimezone(dt.UTC))
        stats = PullStats()
        pages = java_api.client().pages("sales", {"from": first_day.isoformat(), "to": end_day.isoformat()}, stats)
        with api_failures(), warehouse.transaction() as cursor:
            pull_id = load.start_pull(cursor, "sales", instants, context.run_id)
            result = load.land_sales(cursor, pull_id, pages, instants)
            load.finish_pull(cursor, result, stats, result.counts.span)
        return dg.MaterializeResult(metadata=_pull_metadata(result, stats, f"{first_day} .. {end_day} (exclusive)"))

    return api_sales


@dg.asset(
    key=API_STOCK,
    description="The back office's latest on-hand snapshot per product and store, merged into core.stock.",
    deps=[API_PRODUCTS],
    **ASSET,
)
def api_stock(context: dg.AssetExecutionContext, java_api: JavaApiResource, warehouse: WarehouseResource):
    records, stats = fetch(java_api, "stock")
    with warehouse.transaction() as cursor:
        pull_id = load.start_pull(cursor, "stock", (None, None), context.run_id)
        load.land_records(cursor, pull_id, "stock", records)
        counts = load.merge_stock(cursor, records)
        result = load.PullResult(pull_id, "stock", len(records), counts)
        load.finish_pull(cursor, result, stats)
    return dg.MaterializeResult(metadata=_pull_metadata(result, stats, "latest snapshot"))


Merge = Callable[[Cursor, Sequence], tuple[MergeCounts, int]]


def _snapshot_asset(endpoint: str, name: str, table: str, merge: Merge, description: str) -> dg.AssetsDefinition:
    """A whole list the back office keeps (its calendar, its promotions): each pull replaces the API's rows."""

    @dg.asset(key=["ingest", name], description=description, deps=[API_PRODUCTS], **ASSET)
    def pull(context: dg.AssetExecutionContext, java_api: JavaApiResource, warehouse: WarehouseResource):
        records, stats = fetch(java_api, endpoint)
        with warehouse.transaction() as cursor:
            pull_id = load.start_pull(cursor, endpoint, (None, None), context.run_id)
            load.land_records(cursor, pull_id, endpoint, records)
            counts, removed = merge(cursor, records)
            result = load.PullResult(pull_id, endpoint, len(records), counts, removed)
            load.finish_pull(cursor, result, stats)
        return dg.MaterializeResult(metadata=_pull_metadata(result, stats, f"the whole list, into {table}"))

    return pull


api_store_calendar = _snapshot_asset(
    "store-calendar", "api_store_calendar", "core.store_calendar", load.merge_store_calendar,
    "The stores' known closures and openings by exception from the back office (its whole calendar, replacing "
    "the rows it sent before), into core.store_calendar: the closures the forecasts and the drop detector know.",
)  # fmt: skip
api_promotions = _snapshot_asset(
    "promotions", "api_promotions", "core.promotions", load.merge_promotions,
    "The promotions planned in the back office (all of them, replacing the ones it sent before), into "
    "core.promotions: the forecasts take those known for the days they forecast.",
)  # fmt: skip
pull_master_data_job = dg.define_asset_job(
    "pull_products_and_stock",
    selection=[api_products.key, api_stock.key, api_store_calendar.key, api_promotions.key],
    description="Pull the products changed since the last pull, the latest stock, the store calendar and the "
    "promotions from the back office.",
)


def api_definitions(settings: Settings) -> dg.Definitions:
    """The API's assets, jobs and nightly schedules; its days of sales start at the history start."""
    # The API's days are UTC days (its `from`/`to` filter sale instants in UTC).
    days = dg.DailyPartitionsDefinition(start_date=settings.history_start.isoformat(), timezone="UTC")
    # One run for the whole pull: products first (a sale of an unknown product fails a check), the
    # stock, then the days of sales; the core tables follow it once.
    pull_sales = dg.define_asset_job(
        "pull_sales",
        selection=[API_PRODUCTS, API_STOCK, API_SALES, api_store_calendar.key, api_promotions.key],
        partitions_def=days,
        description="Pull the products changed since the last pull, the latest stock, the store calendar, the "
        "promotions and a day, or a range of days, of sales from the back office (one run per range).",
    )
    nightly_sales = dg.build_schedule_from_partitioned_job(
        pull_sales,
        hour_of_day=0,
        minute_of_hour=30,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Each night at 00:30 UTC: the products changed, the stock, the store calendar, the promotions "
        "and the sales of the UTC day that ended.",
    )
    return dg.Definitions(
        assets=[api_products, build_api_sales(days), api_stock, api_store_calendar, api_promotions],
        jobs=[pull_master_data_job, pull_sales],
        schedules=[nightly_sales],
    )
