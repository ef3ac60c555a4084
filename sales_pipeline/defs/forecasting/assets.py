"""Forecasts as assets: the next 7 days of revenue (sales) and of units per product and store (demand).

Each run reads every series, refits only those whose input hash changed (history, calendar, model
settings) and reuses the stored forecast of the others, so a re-run on unchanged data fits nothing.
The data version is the hash of all inputs: unchanged inputs give the same version, and nothing
downstream counts as changed. The code version is the hash of the engine's source and Prophet's version,
so an edit of the model code shows the forecasts stale in the UI (and refits them: the hash is in the cache key).

With FORECAST_SHARDS=N above 1, each forecast asset is a graph of steps (the asset keys stay): `shard_0`
to `shard_<N-1>` each fit their part of the series that are not reconciled (a stable hash of the series
id, forecasting/runner.py), independently of one another, so the multiprocess executor (or the
Kubernetes job executor, a pod each) runs them side by side, and hand their results over in the
warehouse (ml.forecast_handoff); then `publish` fits and reconciles the total, stores and categories,
writes every series in one transaction and records the asset as before. The steps pass nothing to one
another but the order (the warehouse holds what a shard hands over): no I/O manager is needed.
"""

import importlib.metadata
from collections.abc import Callable
from datetime import date

import dagster as dg
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.analytics.charts import forecast_chart_markdown, line_chart_markdown
from sales_pipeline.defs.conventions import WAREHOUSE_POOL
from sales_pipeline.forecasting import queries
from sales_pipeline.forecasting.models import ENGINE_CODE, SEASONAL_NAIVE
from sales_pipeline.forecasting.runner import Shard, forecast_target
from sales_pipeline.resources import ForecastingResource, WarehouseResource
from sales_pipeline.settings import Settings

GROUP = "forecasting"
CODE_VERSION = f"forecast-{ENGINE_CODE}-prophet-{importlib.metadata.version('prophet')}"
SALES_KEY = dg.AssetKey(["forecasting", "sales_forecast"])
DEMAND_KEY = dg.AssetKey(["forecasting", "demand_forecast"])


FORECAST = {"group_name": GROUP, "kinds": {"prophet", "statsforecast"}, "code_version": CODE_VERSION,
            "pool": WAREHOUSE_POOL,
            "metadata": {"dagster/table_name": "ml.forecasts"}}  # fmt: skip


def _forecast(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    target: str,
    warehouse: WarehouseResource,
    forecasting: ForecastingResource,
    charts: Callable[[Cursor, date], dict],
) -> dg.MaterializeResult:
    """Run the target's forecasts; what both forecast assets show, and the asset's own `charts`."""
    settings = forecasting.settings()
    run = forecast_target(warehouse.transaction, target, forecasting.timezone, settings, forecasting.workers)
    if run is None:
        return dg.MaterializeResult(
            metadata={"note": f"no {'daily KPIs' if target == 'sales' else 'sales'} yet: nothing to forecast"}
        )
    summary = run.summary()
    context.log.info(f"{target} forecast from {run.origin}: {summary}")
    with warehouse.transaction() as cursor:
        accuracy = queries.accuracy_summary(cursor, target)
        rows = queries.rows_published(cursor, target, run.origin)
        own = charts(cursor, run.origin)
    failures = [f"{r.scope} {r.scope_id}: {r.error}" for r in run.results if r.status == "fallback"]
    metadata = {
        "origin": str(run.origin),
        **summary,
        "accuracy": dg.MetadataValue.md(accuracy.to_markdown(index=False) if len(accuracy) else "no backtest yet"),
        "fallbacks": dg.MetadataValue.md("\n".join(f"- {line}" for line in failures[:20]) or "none"),
        "dagster/row_count": rows,
        "reconciliation": run.reconciliation,
        **own,
    }
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(run.data_version))


def _total_charts(cursor: Cursor, origin: date) -> dict:
    total = queries.published(cursor, "sales", "all", "", origin)
    if not len(total):
        return {}
    history = queries.recent_actuals(cursor, "revenue", origin)
    chart = forecast_chart_markdown(history, total, "Revenue, last 8 weeks and the next 7 days", "revenue")
    return {
        "total_forecast": dg.MetadataValue.md(chart),
        "total_preview": dg.MetadataValue.md(total.round(2).to_markdown(index=False)),
    }


def _units_chart(cursor: Cursor, origin: date) -> dict:
    ahead = queries.demand_ahead(cursor, origin)
    if not len(ahead):
        return {}
    lines = {"units sold": queries.recent_actuals(cursor, "units", origin), "forecast (sum of products)": ahead}
    return {
        "units_ahead": dg.MetadataValue.md(
            line_chart_markdown(lines, "Units, last 8 weeks and the next 7 days", "units")
        )
    }


SALES_DESCRIPTION = (
    "The next 7 days of revenue for the total, each store, each category and each product with enough history, with "
    "80% and 95% intervals, never negative. AutoETS, AutoTheta, Prophet (weekly seasonality, yearly with two years "
    "of history, {holidays}, known promotions) and the mean of the best two against seasonal naive in a "
    "rolling-origin backtest (4 weekly origins); the best publishes and ml.forecast_series says why. Intermittent "
    "products publish their TSB rate. The total, stores and categories are reconciled to add up. Refit only where "
    "the input changed."
)
DEMAND_DESCRIPTION = (
    "The next 7 days of units sold per product and store (scope product_store, id '<product>@<store>'), the same "
    "way as the sales forecast; it feeds the stock-out risk. Most product-store series are intermittent and publish "
    "their TSB daily rate."
)
# core/sales too: Dagster leaves daily-partitioned parents out of staleness, so without an
# unpartitioned parent the UI could never show the forecast stale after new sales.
FORECAST_DEPS = [["marts", "daily_kpis"], ["core", "sales"], ["core", "store_calendar"], ["core", "promotions"]]


def build_sales_forecast(holiday_country: str | None, shards: int = 1) -> dg.AssetsDefinition:
    """The revenue forecasts; their description names the public holidays the models know."""
    holidays = f"the public holidays of {holiday_country}" if holiday_country else "no public holidays"
    return build_forecast_asset(SALES_KEY, "sales", SALES_DESCRIPTION.format(holidays=holidays), _total_charts, shards)


def build_demand_forecast(shards: int = 1) -> dg.AssetsDefinition:
    """The units forecasts per product and store."""
    return build_forecast_asset(DEMAND_KEY, "demand", DEMAND_DESCRIPTION, _units_chart, shards)


def build_forecast_asset(
    key: dg.AssetKey, target: str, description: str, charts: Callable[[Cursor, date], dict], shards: int
) -> dg.AssetsDefinition:
    """The target's forecast asset: one step, or with `shards` above 1 the shards then `publish` (module doc)."""
    if shards == 1:

        @dg.asset(key=key, description=description, deps=FORECAST_DEPS, **FORECAST)
        def forecast(
            context: dg.AssetExecutionContext, warehouse: WarehouseResource, forecasting: ForecastingResource
        ) -> dg.MaterializeResult:
            return _forecast(context, target, warehouse, forecasting, charts)

        return forecast
    return _sharded_forecast_asset(key, target, description, charts, shards)


def _sharded_forecast_asset(
    key: dg.AssetKey, target: str, description: str, charts: Callable[[Cursor, date], dict], shards: int
) -> dg.AssetsDefinition:
    parents = {"_".join(path): path for path in FORECAST_DEPS}

    @dg.op(
        name=f"publish_{target}_forecast",
        ins={"shards": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        pool=WAREHOUSE_POOL,
        description=f"Fit and reconcile what the shards left, publish all of it, record the {target} forecast.",
    )
    def publish(
        context: dg.OpExecutionContext, warehouse: WarehouseResource, forecasting: ForecastingResource
    ) -> dg.Output:
        result = _forecast(context, target, warehouse, forecasting, charts)
        return dg.Output(None, metadata=result.metadata, data_version=result.data_version)

    @dg.graph_asset(
        key=key,
        description=description,
        ins={name: dg.AssetIn(key=path, dagster_type=dg.Nothing) for name, path in parents.items()},
        group_name=GROUP,
        kinds=FORECAST["kinds"],
        code_version=CODE_VERSION,
        metadata=FORECAST["metadata"],
    )
    def forecast(**inputs):
        fits = [_fit_shard(target, Shard(n, shards), list(parents)) for n in range(shards)]
        return publish.alias("publish")([fit.alias(f"shard_{n}")(**inputs) for n, fit in enumerate(fits)])

    return forecast


def _fit_shard(target: str, shard: Shard, parents: list[str]) -> dg.OpDefinition:
    """The step that fits one shard's series and hands them over; it waits for the asset's parents."""

    @dg.op(
        name=f"fit_{target}_forecast_shard_{shard.number}",
        ins={name: dg.In(dg.Nothing) for name in parents},
        out=dg.Out(dg.Nothing),
        pool=WAREHOUSE_POOL,
        description=f"Fit shard {shard.number} of {shard.of} of the {target} series not reconciled, for publish.",
    )
    def fit(context: dg.OpExecutionContext, warehouse: WarehouseResource, forecasting: ForecastingResource) -> None:
        run = forecast_target(
            warehouse.transaction, target, forecasting.timezone, forecasting.settings(), forecasting.workers, shard
        )
        summary = run.summary() if run else "no data"
        context.log.info(f"{target} forecast, shard {shard.number} of {shard.of}: {summary}")

    return fit


demand_forecast = build_demand_forecast()


@dg.asset_check(
    asset=SALES_KEY,
    description="Warns when the model the total publishes loses to seasonal naive in the backtest (MASE).",
)
def total_model_beats_seasonal_naive(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.transaction() as cursor:
        scores = queries.model_comparison(cursor, "sales", "all", "")
        model = queries.published_model(cursor, "sales", "all", "")
    published, naive = scores.get(model), scores.get(SEASONAL_NAIVE)
    return dg.AssetCheckResult(
        passed=published is not None and naive is not None and published <= naive,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "model": model or "n/a",
            "model_mase": published if published is not None else "n/a",
            "seasonal_naive_mase": naive if naive is not None else "n/a",
        },
    )


def _bounds_check(key: dg.AssetKey, target: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key,
        name="published_forecasts_complete_and_ordered",
        blocking=True,
        description="Every forecast series has 7 days from its latest origin, with 0 <= lower 95% <= lower 80% <= "
        "yhat <= upper 80% <= upper 95%.",
    )
    def check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.transaction() as cursor:
            incomplete, disordered = queries.incomplete_series(cursor, target, 7), queries.bad_bounds(cursor, target)
        return dg.AssetCheckResult(
            passed=incomplete.empty and disordered.empty,
            metadata={
                "incomplete_series": dg.MetadataValue.md(incomplete.to_markdown(index=False) or "none"),
                "disordered_rows": dg.MetadataValue.md(disordered.to_markdown(index=False) or "none"),
            },
        )

    return check


forecast_checks = [
    total_model_beats_seasonal_naive,
    _bounds_check(SALES_KEY, "sales"),
    _bounds_check(DEMAND_KEY, "demand"),
]


def forecast_definitions(settings: Settings) -> dg.Definitions:
    """The forecast assets and their checks."""
    shards = settings.forecast_shards
    return dg.Definitions(
        assets=[build_sales_forecast(settings.forecast_holiday_country, shards), build_demand_forecast(shards)],
        asset_checks=forecast_checks,
    )
