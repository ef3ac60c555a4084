"""Forecasts fanned out (FORECAST_SHARDS): the same published result whatever the number of shards.

A generated retailer is imported the real way and forecast through Dagster with one shard, then from
empty ml tables with three: the ml tables hold the same rows, the assets the same data versions. Shards
that ran without their `publish` (it failed, or has not run yet) publish nothing; the next run takes
over what they fitted.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import dagster as dg
import numpy as np
import pytest

from sales_pipeline.defs.forecasting.assets import build_demand_forecast, build_sales_forecast
from sales_pipeline.demo.retailer import generate_retailer
from sales_pipeline.forecasting.handoff import decoded, encoded
from sales_pipeline.forecasting.models import ForecastSettings, forecast_series
from sales_pipeline.forecasting.runner import Shard, forecast_target, shard_of
from sales_pipeline.warehouse.db import read_frame, transaction
from sales_pipeline_tests.test_forecast_models import retail, series
from sales_pipeline_tests.test_forecasting import load, metadata, resources

ML_TABLES = ("ml.forecasts", "ml.forecast_series", "ml.backtest_forecasts", "ml.forecast_accuracy")
WHEN_AND_HOW_LONG = ["fit_seconds", "updated_at", "computed_at"]  # the clock's, not the forecasts'
STEPS = ("shard_0", "shard_1", "shard_2", "publish")
END = date(2026, 11, 22)
RETAILER = generate_retailer(scale=2, seed=11, days=420, end=END)


def test_a_series_shard_is_a_stable_hash_of_its_id():
    ids = [f"P{number:04d}@S{number % 7:02d}" for number in range(3000)]

    assert shard_of("P0001@S01", 3) == shard_of("P0001@S01", 3) == 1  # the same in every process and release
    assert {shard_of(series_id, 1) for series_id in ids} == {0}
    assert all(count > 900 for count in Counter(shard_of(series_id, 3) for series_id in ids).values())


def test_a_result_handed_over_reads_back_as_it_was_fitted():
    result = forecast_series(series(retail(200)), ForecastSettings())
    result.accuracy[0]["mase"] = float("nan")  # a score that could not be computed stays NaN, not NULL

    back = decoded(encoded(result))

    plain = ("forecast", "folds", "accuracy")
    assert {k: v for k, v in vars(back).items() if k not in plain} == {
        k: v for k, v in vars(result).items() if k not in plain
    }
    assert back.forecast.equals(result.forecast) and back.forecast.dtypes.equals(result.forecast.dtypes)
    assert type(back.forecast["day"].iloc[0]) is type(result.forecast["day"].iloc[0])
    assert [(f.origin, f.model, f.input_hash, f.reused) for f in back.folds] == [
        (f.origin, f.model, f.input_hash, f.reused) for f in result.folds
    ]
    assert all(np.array_equal(a.yhat, b.yhat) for a, b in zip(back.folds, result.folds, strict=True))
    assert repr(back.accuracy) == repr(result.accuracy)  # NaN != NaN: compared as written


def ml_tables(url: str) -> dict[str, list[tuple]]:
    """Every row of the ml tables but when and how long they were written, in order."""
    tables = {}
    with transaction(url) as cursor:
        for table in ML_TABLES:
            frame = read_frame(cursor, f"SELECT * FROM {table}").drop(columns=WHEN_AND_HOW_LONG, errors="ignore")
            frame = frame.astype(object).where(frame.notna(), None)  # NaN != NaN: a missing score compares as None
            tables[table] = sorted(frame.itertuples(index=False, name=None), key=repr)
    return tables


def forecast(url: str, shards: int) -> dg.ExecuteInProcessResult:
    assets = [build_sales_forecast(holiday_country=None, shards=shards), build_demand_forecast(shards)]
    return dg.materialize(assets, resources=resources(url), raise_on_error=True)


@pytest.mark.slow  # a retailer imported and forecast three times
def test_three_shards_publish_row_for_row_what_one_publishes(empty_warehouse, tmp_path):
    load(empty_warehouse, tmp_path, END, retailer=RETAILER)
    one = forecast(empty_warehouse, shards=1)
    published = ml_tables(empty_warehouse)
    with transaction(empty_warehouse) as cursor:
        cursor.execute(f"TRUNCATE {', '.join(ML_TABLES)}")

    three = forecast(empty_warehouse, shards=3)

    assert ml_tables(empty_warehouse) == published
    assert len(published["ml.forecasts"]) > 7 * 50
    steps = {event.step_key for event in three.all_events if event.is_step_success}
    sharded = {f"forecasting__{name}.{step}" for name in ("sales_forecast", "demand_forecast") for step in STEPS}
    assert sharded <= steps
    for name in ("sales_forecast", "demand_forecast"):
        assert metadata(three, name)["data_version"] == metadata(one, name)["data_version"]
        assert metadata(three, name)["series"] == metadata(one, name)["series"]
    again = forecast(empty_warehouse, shards=3)  # nothing changed: nothing refits
    assert metadata(again, "demand_forecast")["fitted"] == 0 and ml_tables(empty_warehouse) == published

    with transaction(empty_warehouse) as cursor:
        cursor.execute(f"TRUNCATE {', '.join(ML_TABLES)}")
    handed = shards_without_publish(empty_warehouse, shards=3)
    assert handed > 50 and all(not rows for rows in ml_tables(empty_warehouse).values())  # nothing published

    taken_over = forecast(empty_warehouse, shards=1)

    assert ml_tables(empty_warehouse) == published
    assert sum(metadata(taken_over, name)["from_shards"] for name in ("sales_forecast", "demand_forecast")) == handed
    assert handed_over(empty_warehouse) == 0


def shards_without_publish(url: str, shards: int) -> int:
    """Every shard of both targets run as their steps run them, and no `publish`: how many series they handed over."""
    warehouse, forecasting = resources(url)["warehouse"], resources(url)["forecasting"]
    for target in ("sales", "demand"):
        for number in range(shards):
            forecast_target(
                warehouse.transaction, target, "UTC", forecasting.settings(), forecasting.workers, Shard(number, shards)
            )
    return handed_over(url)


def handed_over(url: str) -> int:
    with transaction(url) as cursor:
        cursor.execute("SELECT count(*) FROM ml.forecast_handoff")
        return cursor.fetchone()[0]
