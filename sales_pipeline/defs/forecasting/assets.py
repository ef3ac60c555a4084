"""Forecasts as assets: the next 7 days of revenue (sales) and of units per product and store (demand).

Each run reads every series, refits only those whose input hash changed (history, calendar, model
settings) and reuses the stored forecast of the others, so a re-run on unchanged data fits nothing.
The data version is the hash of all inputs: unchanged inputs give the same version, and nothing
downstream counts as changed. The code version is the hash of the engine's source and Prophet's version,
so an edit of the model code shows the forecasts stale in the UI (and refits them: the hash is in the cache key).
"""

import importlib.metadata

import dagster as dg

from sales_pipeline import settings
from sales_pipeline.analytics.charts import forecast_chart_markdown, line_chart_markdown
from sales_pipeline.defs.ingest.workbooks import AFTER_ANY_UPSTREAM_UPDATE, OWNERS
from sales_pipeline.forecasting import queries
from sales_pipeline.forecasting.models import ENGINE_CODE, SEASONAL_NAIVE
from sales_pipeline.forecasting.runner import ForecastRun, forecast_target
from sales_pipeline.resources import AnalyticsResource, ForecastingResource, WarehouseResource

GROUP = "forecasting"
TAGS = {"domain": "forecasting", "layer": "ml"}
CODE_VERSION = f"forecast-{ENGINE_CODE}-prophet-{importlib.metadata.version('prophet')}"
SALES_KEY = dg.AssetKey(["forecasting", "sales_forecast"])
DEMAND_KEY = dg.AssetKey(["forecasting", "demand_forecast"])


def _holidays_known() -> str:
    country = settings.forecast_holiday_country()
    return f"the public holidays of {country}" if country else "no public holidays"


def _forecast(key: dg.AssetKey, description: str, deps: list) -> dict:
    return {
        "key": key,
        "group_name": GROUP,
        "kinds": {"prophet", "statsforecast", "postgres"},
        "owners": OWNERS,
        "tags": TAGS,
        "description": description,
        "deps": deps,
        "code_version": CODE_VERSION,
        "automation_condition": AFTER_ANY_UPSTREAM_UPDATE,
        "metadata": {"dagster/table_name": "ml.forecasts"},
    }


def _forecast_and_describe(
    context: dg.AssetExecutionContext,
    target: str,
    warehouse: WarehouseResource,
    analytics: AnalyticsResource,
    forecasting: ForecastingResource,
) -> tuple[ForecastRun | None, dict]:
    """Run the target's forecasts; the metadata both forecast assets show (the caller adds its chart)."""
    url = warehouse.url()
    run = forecast_target(url, target, analytics.timezone, forecasting.settings(), forecasting.workers)
    if run is None:
        return None, {"note": f"no {'daily KPIs' if target == 'sales' else 'sales'} yet: nothing to forecast"}
    summary = run.summary()
    context.log.info(f"{target} forecast from {run.origin}: {summary}")
    accuracy = queries.accuracy_summary(url, target)
    failures = [f"{r.scope} {r.scope_id}: {r.error}" for r in run.results if r.status == "fallback"]
    return run, {
        "origin": str(run.origin),
        **summary,
        "accuracy": dg.MetadataValue.md(accuracy.to_markdown(index=False) if len(accuracy) else "no backtest yet"),
        "fallbacks": dg.MetadataValue.md("\n".join(f"- {line}" for line in failures[:20]) or "none"),
        "dagster/row_count": queries.rows_published(url, target, run.origin),
    }


@dg.asset(
    **_forecast(
        SALES_KEY,
        "The next 7 days of revenue for the total, each store, each category and each "
        "product with enough history, with 80% and 95% intervals, never negative. AutoETS, AutoTheta, Prophet "
        f"(weekly seasonality, yearly with two years of history, {_holidays_known()}, known promotions) and the "
        "mean of the best two against seasonal naive in a rolling-origin backtest (4 weekly origins); the best "
        "publishes and ml.forecast_series says why. Intermittent products publish their TSB rate. The total, "
        "stores and categories are reconciled to add up. Refit only where the input changed.",
        # core/sales too: Dagster leaves daily-partitioned parents out of staleness, so without an
        # unpartitioned parent the UI could never show the forecast stale after new sales.
        deps=[["marts", "daily_kpis"], ["core", "sales"], ["core", "store_calendar"], ["core", "promotions"]],
    )
)
def sales_forecast(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    analytics: AnalyticsResource,
    forecasting: ForecastingResource,
) -> dg.MaterializeResult:
    run, metadata = _forecast_and_describe(context, "sales", warehouse, analytics, forecasting)
    if run is None:
        return dg.MaterializeResult(metadata=metadata)
    url = warehouse.url()
    total = queries.published(url, "sales", "all", "", run.origin)
    if len(total):
        history = queries.recent_actuals(url, "revenue", run.origin)
        metadata["total_forecast"] = dg.MetadataValue.md(
            forecast_chart_markdown(history, total, "Revenue, last 8 weeks and the next 7 days", "revenue")
        )
        metadata["total_preview"] = dg.MetadataValue.md(total.round(2).to_markdown(index=False))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(run.data_version))


@dg.asset(
    **_forecast(
        DEMAND_KEY,
        "The next 7 days of units sold per product and store (scope product_store, id '<product>@<store>'), the "
        "same way as the sales forecast; it feeds the stock-out risk. Most product-store series are intermittent "
        "and publish their TSB daily rate.",
        deps=[["core", "sales"], ["marts", "daily_kpis"], ["core", "store_calendar"], ["core", "promotions"]],
    )
)
def demand_forecast(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    analytics: AnalyticsResource,
    forecasting: ForecastingResource,
) -> dg.MaterializeResult:
    run, metadata = _forecast_and_describe(context, "demand", warehouse, analytics, forecasting)
    if run is None:
        return dg.MaterializeResult(metadata=metadata)
    url = warehouse.url()
    ahead = queries.demand_ahead(url, run.origin)
    if len(ahead):
        lines = {"units sold": queries.recent_actuals(url, "units", run.origin), "forecast (sum of products)": ahead}
        metadata["units_ahead"] = dg.MetadataValue.md(
            line_chart_markdown(lines, "Units, last 8 weeks and the next 7 days", "units")
        )
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(run.data_version))


@dg.asset_check(
    asset=SALES_KEY,
    description="Warns when the model the total publishes loses to seasonal naive in the backtest (MASE).",
)
def total_model_beats_seasonal_naive(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    url = warehouse.url()
    scores = queries.model_comparison(url, "sales", "all", "")
    model = queries.published_model(url, "sales", "all", "")
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
        url = warehouse.url()
        incomplete, disordered = queries.incomplete_series(url, target, 7), queries.bad_bounds(url, target)
        return dg.AssetCheckResult(
            passed=incomplete.empty and disordered.empty,
            metadata={
                "incomplete_series": dg.MetadataValue.md(incomplete.to_markdown(index=False) or "none"),
                "disordered_rows": dg.MetadataValue.md(disordered.to_markdown(index=False) or "none"),
            },
        )

    return check


forecast_assets = [sales_forecast, demand_forecast]
forecast_checks = [
    total_model_beats_seasonal_naive,
    _bounds_check(SALES_KEY, "sales"),
    _bounds_check(DEMAND_KEY, "demand"),
]
