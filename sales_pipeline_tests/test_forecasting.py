"""Forecasts and anomalies end to end on a generated retailer loaded the real way (workbook → import → KPIs).

The retailer (2 stores, 730 days to 2026-11-22) has three planted anomalies: a store whose revenue
drops ~45% over the last 10 days, a fast seller about to run out in one store, and regulars who
stopped buying ~90 days before the end. The forecasts run through Dagster with two worker processes.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sales_pipeline.analytics import marts
from sales_pipeline.defs.anomalies.assets import anomaly_assets
from sales_pipeline.defs.forecasting.assets import build_sales_forecast, demand_forecast, forecast_checks
from sales_pipeline.demo.retailer import Retailer, generate_retailer, write_sheets_workbook
from sales_pipeline.excel.importer import ImportSettings, import_workbook
from sales_pipeline.forecasting.models import ForecastSettings, forecast_series
from sales_pipeline.forecasting.runner import sales_series, store_calendars
from sales_pipeline.resources import AnalyticsResource, ForecastingResource, WarehouseResource
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import empty_tables, query

pytestmark = pytest.mark.slow  # a generated retailer imported and forecast once per module

forecast_assets = [build_sales_forecast(holiday_country=None), demand_forecast]
RETAILER = generate_retailer(scale=2, seed=42)
END = date(2026, 11, 22)
CALM_END = END - timedelta(days=60)  # before the planted drop and stock-out; the churners silent a month


def load(url: str, folder: Path, last_day: date = END, retailer: Retailer = RETAILER) -> None:
    """Import the generated retailer's workbook up to `last_day` and compute its daily KPIs."""
    frames = retailer.frames()
    frames["Sales"] = frames["Sales"][pd.to_datetime(frames["Sales"]["sold_at"]).dt.date <= last_day]
    frames["Stock"] = frames["Stock"][pd.to_datetime(frames["Stock"]["as_of"]).dt.date <= last_day]
    for name in ("archive", "rejected"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    workbook = write_sheets_workbook(folder / f"retailer_{last_day}.xlsx", frames)
    settings = ImportSettings(folder / "archive", folder / "rejected", timezone="UTC")
    result = import_workbook(partial(transaction, url), workbook, settings)
    assert result.status == "loaded", result.reason
    with transaction(url) as cursor:
        cursor.execute("SELECT min(sale_date), max(sale_date) FROM core.sales")
        first, last = cursor.fetchone()
        marts.refresh_daily_kpis(cursor, first, last, "UTC")


def resources(url: str, workers: int = 2) -> dict:
    return {
        "warehouse": WarehouseResource(database_url=url),
        "analytics": AnalyticsResource(timezone="UTC", dashboard_dir=str(Path(url.split("host=")[-1]).parent)),
        "forecasting": ForecastingResource(timezone="UTC", workers=workers),
    }


def materialize(url: str, assets: list, workers: int = 2) -> dg.ExecuteInProcessResult:
    return dg.materialize([*assets], resources=resources(url, workers), raise_on_error=True)


def metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == name]
    materialization = event.materialization
    values = {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
    return values | {"data_version": materialization.tags.get("dagster/data_version")}


@pytest.fixture(scope="module")
def retailer_warehouse(warehouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    empty_tables(warehouse_url)
    load(warehouse_url, tmp_path_factory.mktemp("retailer"))
    return warehouse_url


@pytest.fixture(scope="module")
def forecast_run(retailer_warehouse: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*forecast_assets, *anomaly_assets, *forecast_checks], resources=resources(retailer_warehouse)
    )


def test_every_scope_gets_a_seven_day_forecast_with_ordered_non_negative_bounds(retailer_warehouse, forecast_run):
    assert forecast_run.success
    series = query(
        retailer_warehouse,
        "SELECT scope, count(*), count(*) FILTER (WHERE status = 'skipped') FROM ml.forecast_series"
        " WHERE target = 'sales' GROUP BY scope ORDER BY scope",
    )
    counts = {scope: (n, skipped) for scope, n, skipped in series}
    assert counts["all"] == (1, 0) and counts["store"] == (2, 0)
    assert counts["category"][0] == RETAILER.products["category"].nunique()
    assert counts["product"][0] >= 0.9 * len(RETAILER.products)
    rows = query(
        retailer_warehouse,
        "SELECT f.scope, f.scope_id, count(*), min(f.day), max(f.day), bool_and(f.yhat_lower_95 >= 0"
        " AND f.yhat_lower_95 <= f.yhat_lower_80 AND f.yhat_lower_80 <= f.yhat AND f.yhat <= f.yhat_upper_80"
        " AND f.yhat_upper_80 <= f.yhat_upper_95)"
        " FROM ml.forecasts f JOIN ml.forecast_series s USING (target, scope, scope_id, origin)"
        " WHERE f.target = 'sales' GROUP BY 1, 2",
    )
    assert rows and all(n == 7 and first == END + timedelta(days=1) and ordered for _, _, n, first, _, ordered in rows)
    # Store S02 is closed on Sundays (the generator shuts the second store): the forecast says so.
    [(closed_day, yhat)] = query(
        retailer_warehouse,
        "SELECT day, yhat FROM ml.forecasts WHERE target = 'sales' AND scope = 'store' AND scope_id = 'S02' AND closed",
    )
    assert closed_day.weekday() == 6 and yhat == 0
    assert forecast_run.get_asset_check_evaluations() and all(
        check.passed for check in forecast_run.get_asset_check_evaluations()
        if check.check_name == "published_forecasts_complete_and_ordered"
    )  # fmt: skip


def test_the_stores_and_the_categories_add_up_to_the_total_to_the_cent(retailer_warehouse, forecast_run):
    """What a planner checks: the published forecasts of the stores, and of the categories, summed per day."""
    sums = query(
        retailer_warehouse,
        "SELECT f.day, f.scope, sum(f.yhat::numeric) FROM ml.forecasts f"
        " JOIN ml.forecast_series s USING (target, scope, scope_id, origin)"
        " WHERE f.target = 'sales' AND f.scope IN ('all', 'store', 'category') GROUP BY 1, 2",
    )
    per_day: dict[date, dict[str, Decimal]] = {}
    for day, scope, total in sums:
        per_day.setdefault(day, {})[scope] = total
    assert len(per_day) == 7 and all(scopes["all"] > 0 for scopes in per_day.values())
    assert all(scopes["store"] == scopes["all"] == scopes["category"] for scopes in per_day.values()), per_day
    assert all(total == round(total, 2) for _, _, total in sums)  # published to the cent


def test_the_total_is_backtested_against_seasonal_naive_and_says_which_model_publishes(retailer_warehouse):
    accuracy = query(
        retailer_warehouse,
        "SELECT model, origins, mase, smape, chosen FROM ml.forecast_accuracy"
        " WHERE target = 'sales' AND scope = 'all' ORDER BY model",
    )
    scores = {model: (origins, mase, smape, chosen) for model, origins, mase, smape, chosen in accuracy}
    assert {"prophet", "seasonal_naive", "auto_ets", "auto_theta", "combination", "reconciled"} == set(scores)
    assert all(origins >= 4 and mase > 0 and 0 <= smape <= 200 for origins, mase, smape, _ in scores.values())
    [(model, reason, reconciliation)] = query(
        retailer_warehouse,
        "SELECT model, reason, reconciliation FROM ml.forecast_series WHERE target = 'sales' AND scope = 'all'",
    )
    winner = min(set(scores) - {"reconciled"}, key=lambda m: scores[m][1])
    assert model == winner and scores[winner][3]
    assert "wins" in reason and "MASE" in reason and reconciliation in ("bottom_up", "wls_var", "ols")
    # Intermittent products publish their TSB rate, and say why.
    intermittent = query(
        retailer_warehouse,
        "SELECT count(*) FROM ml.forecast_series WHERE target = 'demand' AND model = 'tsb'"
        " AND demand_class IN ('intermittent', 'lumpy') AND reason LIKE '%%TSB daily rate%%'",
    )
    assert intermittent[0][0] > 0


def test_a_rerun_on_unchanged_history_refits_nothing(retailer_warehouse, forecast_run):
    first = metadata(forecast_run, "sales_forecast")
    again = materialize(retailer_warehouse, forecast_assets)
    second = metadata(again, "sales_forecast")
    assert first["fitted"] == first["series"] > 0 and first["prophet_fits"] > 0
    assert second["fitted"] == 0 and second["reused"] == first["series"] and second["prophet_fits"] == 0
    assert second["data_version"] == first["data_version"]
    assert metadata(again, "demand_forecast")["fitted"] == 0


def test_a_corrected_day_refits_only_the_series_it_touches(retailer_warehouse, forecast_run):
    store, day = "S01", END - timedelta(days=40)
    with transaction(retailer_warehouse) as cursor:
        cursor.execute(
            "UPDATE core.sales SET quantity = quantity + 5, revenue = revenue + 5 * unit_price"
            " WHERE (order_id, line_number) = (SELECT order_id, line_number FROM core.sales"
            " WHERE store_id = %s AND sale_date = %s ORDER BY order_id, line_number LIMIT 1)"
            " RETURNING product_id",
            (store, day),
        )
        [(product,)] = cursor.fetchall()
        marts.refresh_daily_kpis(cursor, day, day, "UTC")
    [(category,)] = query(retailer_warehouse, "SELECT category FROM core.products WHERE product_id = %s", (product,))
    before = metadata(forecast_run, "sales_forecast")
    result = materialize(retailer_warehouse, forecast_assets)
    sales = metadata(result, "sales_forecast")
    # The total, the stores and the categories are reconciled together: their published fits are redone
    # together (their folds only where the history changed); of the products, only the one corrected.
    together = 1 + len(RETAILER.stores) + RETAILER.products["category"].nunique()
    assert sales["fitted"] == together + 1 and sales["reused"] == sales["series"] - together - 1
    assert sales["data_version"] != before["data_version"]
    assert metadata(result, "demand_forecast")["fitted"] == 1
    refitted = query(
        retailer_warehouse,
        "SELECT scope, scope_id FROM ml.forecast_series WHERE target = 'sales'"
        f" ORDER BY updated_at DESC LIMIT {together + 1}",
    )
    assert {key for key in refitted if key[0] == "product"} == {("product", product)}
    assert {("all", ""), ("store", store), ("category", category)} <= set(refitted)


def test_the_planted_anomalies_are_found(retailer_warehouse, forecast_run):
    planted = RETAILER.planted
    active = query(
        retailer_warehouse,
        "SELECT kind, severity, entity_type, entity_id, message, dedupe_key FROM ml.anomalies WHERE active",
    )
    drops = {(entity_type, entity_id): severity for kind, severity, entity_type, entity_id, *_ in active
             if kind == "sales_drop"}  # fmt: skip
    assert drops[("store", planted.sales_drop_store_id)] == "critical"
    risks = {entity_id: severity for kind, severity, _, entity_id, *_ in active if kind == "stock_risk"}
    assert risks[f"{planted.stockout_product_id}@{planted.stockout_store_id}"] == "critical"
    # Churn: the regulars who stopped are flagged, except one whose rhythm (a purchase every 27 days,
    # silent for 106) makes the silence still plausible (p = 2%); it is at risk, not churned.
    churned = {entity_id for kind, _, _, entity_id, *_ in active if kind == "customer_churn"}
    assert len(set(planted.churned_customer_ids) & churned) >= 0.8 * len(planted.churned_customer_ids)
    statuses = dict(query(retailer_warehouse, "SELECT customer_id, status FROM ml.customer_churn"))
    assert all(statuses[customer] in {"churned", "at_risk"} for customer in planted.churned_customer_ids)
    assert len(churned - set(planted.churned_customer_ids)) <= len(planted.churned_customer_ids)
    assert all(message and key.startswith(kind) for kind, _, _, _, message, key in active)


def test_intervals_hold_their_share_of_held_out_actuals(retailer_warehouse):
    """Forecast from three origins before the planted drop; count the next 7 actuals inside each band."""
    settings = ForecastSettings()
    inside_80, inside_95, total = 0, 0, 0
    for weeks_back in (5, 6, 7):
        origin = END - timedelta(weeks=weeks_back)
        actual_end = origin + timedelta(days=7)
        with transaction(retailer_warehouse) as cursor:
            calendars = store_calendars(cursor, actual_end, settings.horizon)
            all_series = sales_series(cursor, actual_end, calendars, settings)
        for series in all_series:
            if series.scope not in {"all", "store", "category"}:
                continue
            held_out = series.values.iloc[-7:].to_numpy()
            series.values = series.values.iloc[:-7]
            result = forecast_series(series, settings)
            band = result.forecast
            open_ = ~band["closed"].to_numpy()
            inside_80 += int(((held_out >= band["yhat_lower_80"]) & (held_out <= band["yhat_upper_80"]))[open_].sum())
            inside_95 += int(((held_out >= band["yhat_lower_95"]) & (held_out <= band["yhat_upper_95"]))[open_].sum())
            total += int(open_.sum())
    assert total > 150
    assert 0.68 <= inside_80 / total <= 0.92, (inside_80, total)
    assert 0.86 <= inside_95 / total <= 1.0, (inside_95, total)


def test_a_calm_period_raises_no_alarm(warehouse_url, tmp_path, forecast_run):
    """Two months before the end: none of the planted anomalies has begun, and none is reported.

    The generator's normal life still has product stock-out gaps and discontinued products; what the
    detection reports then is those real collapses, never noise at the store, category or total level.
    """
    empty_tables(warehouse_url)
    load(warehouse_url, tmp_path, last_day=CALM_END)
    result = dg.materialize([*forecast_assets, *anomaly_assets], resources=resources(warehouse_url))
    assert result.success
    active = query(
        warehouse_url, "SELECT kind, severity, entity_type, entity_id, numbers FROM ml.anomalies WHERE active"
    )
    planted = RETAILER.planted
    assert not {entity_id for _, _, _, entity_id, _ in active} & {
        planted.sales_drop_store_id,
        f"{planted.stockout_product_id}@{planted.stockout_store_id}",
        *planted.churned_customer_ids,
    }
    drops = [(entity_type, numbers) for kind, _, entity_type, _, numbers in active if kind == "sales_drop"]
    assert all(entity_type == "product" for entity_type, _ in drops), drops
    assert all(numbers["actual"] <= 0.2 * numbers["expected"] for _, numbers in drops), drops
    [(customers,)] = query(warehouse_url, "SELECT repeat_customers FROM ml.churn_kpis")
    churned = [row for row in active if row[0] == "customer_churn"]
    assert len(churned) <= 0.01 * customers
