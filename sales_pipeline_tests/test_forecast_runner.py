"""A run over many series in worker processes: the next day's run stores exactly what a cold run stores.

The daily run reuses the folds of the unchanged backtest origins and writes only what it fitted; the
worker pool hands out the heaviest series first. Neither may change a stored row: the ml tables after
Friday's run and then Saturday's are compared with a cold run of Saturday from empty tables.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial

import numpy as np
import pandas as pd
import pytest

from sales_pipeline.forecasting.models import PROPHET, ForecastSettings, Series
from sales_pipeline.forecasting.runner import run_forecasts
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import query

pytestmark = pytest.mark.slow  # about 90 model fits in two worker processes

SATURDAY = date(2026, 11, 21)  # the day after Friday: the same backtest origins (Sundays)
WEEKLY = np.array([1.0, 1.1, 1.0, 1.2, 1.4, 1.7, 0.6])  # Monday .. Sunday
ML_TABLES = ("ml.forecasts", "ml.forecast_series", "ml.backtest_forecasts", "ml.forecast_accuracy")


def products(last_day: date) -> list[Series]:
    """Three dense products (a weekly pattern, a trend) and five that sell a few days a month, to `last_day`."""
    days = pd.date_range(end=pd.Timestamp(SATURDAY), periods=400, freq="D")
    rng = np.random.default_rng(7)
    items = []
    for number in range(8):
        if number < 3:
            level = np.linspace(200, 260 + 20 * number, len(days)) * WEEKLY[days.day_of_week]
            values = level * np.exp(rng.normal(0, 0.1, len(days)))
        else:
            values = np.where(rng.random(len(days)) < 0.12, rng.integers(1, 4, len(days)) * 25.0, 0.0)
        upto = days[days <= pd.Timestamp(last_day)]
        calendar = pd.date_range(upto[0], periods=len(upto) + 7, freq="D")
        closed = pd.Series(False, index=calendar)
        items.append(Series("sales", "product", f"P{number:02d}", pd.Series(values[: len(upto)], index=upto), closed))
    return items


def ml_rows(url: str) -> dict[str, list[tuple]]:
    """What the ml tables hold; of the published forecasts Saturday's only (Friday's stay beside them)."""
    columns = {
        "ml.forecasts": "scope_id, origin, day, model, yhat, yhat_lower_95, yhat_upper_95",
        "ml.forecast_series": "scope_id, origin, input_hash, status, model, reason, sigma",
        "ml.backtest_forecasts": "scope_id, origin, model, day, yhat, input_hash",
        "ml.forecast_accuracy": "scope_id, model, origins, mase, smape, chosen",
    }
    rows = {table: query(url, f"SELECT {cols} FROM {table} ORDER BY {cols}") for table, cols in columns.items()}
    rows["ml.forecasts"] = [row for row in rows["ml.forecasts"] if row[1] == SATURDAY]
    return rows


def test_the_next_days_run_stores_what_a_cold_run_stores(empty_warehouse):
    settings, run = ForecastSettings(), partial(transaction, empty_warehouse)
    run_forecasts(run, "sales", products(SATURDAY - timedelta(days=1)), settings, workers=2)
    daily = run_forecasts(run, "sales", products(SATURDAY), settings, workers=2)
    after_daily = ml_rows(empty_warehouse)
    with transaction(empty_warehouse) as cursor:
        cursor.execute(f"TRUNCATE {', '.join(ML_TABLES)}")
    cold = run_forecasts(run, "sales", products(SATURDAY), settings, workers=2)

    folds = [fold for result in daily.results for fold in result.folds]
    assert daily.summary()["fitted"] == 8 and all(fold.reused for fold in folds)
    assert {PROPHET, "auto_ets", "tsb"} <= {fold.model for fold in folds}
    assert not any(fold.reused for result in cold.results for fold in result.folds)
    assert [r.scope_id for r in daily.results] == [r.scope_id for r in cold.results] == [f"P{n:02d}" for n in range(8)]
    assert ml_rows(empty_warehouse) == after_daily
    assert len(after_daily["ml.backtest_forecasts"]) == 7 * len(folds)
    assert len(after_daily["ml.forecasts"]) == 7 * 8
