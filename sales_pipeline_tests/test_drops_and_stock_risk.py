"""Sales drops and stock risks: the pure rules on hand-built frames, then the refresh against the real warehouse.

Every expected number is worked out by hand in the comment next to it.
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pytest

from sales_pipeline.anomalies.drops import detect_sales_drops, find_sales_drops, refresh_sales_drops
from sales_pipeline.anomalies.stock_risk import (
    DEFAULT_LEAD_TIME_DAYS,
    project_stockouts,
    refresh_stock_risks,
    stock_risk_alerts,
)
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import query

AS_OF = date(2026, 11, 20)
NOV = {n: date(2026, 11, n) for n in range(1, 31)}


def back(days: int) -> date:
    return AS_OF - timedelta(days=days)


# --- sales drops: the pure rule ----------------------------------------------------------------


def drop_days(*rows: tuple, scope: str = "store", scope_id: str = "S02", name: str | None = None) -> pd.DataFrame:
    """(day, actual, yhat, lower_95, closed); yhat None = no forecast; without sigma, (yhat - lower_95) / 1.96."""
    return pd.DataFrame(
        [
            {
                "scope": scope,
                "scope_id": scope_id,
                "name": name,
                "day": day,
                "actual": actual,
                "yhat": yhat,
                "lower_95": lower_95,
                "closed": closed,
            }
            for day, actual, yhat, lower_95, closed in rows
        ]
    )


FINE = (100.0, 100.0, 80.0, False)  # actual, yhat, lower_95, closed: on its forecast, not below it
LOW = (50.0, 100.0, 80.0, False)  # sigma 20 / 1.96 = 10.2: n days sum 50n < 100n - 3.0902 x 10.2 x sqrt(n)
CLOSED = (0.0, 0.0, 0.0, True)
NO_FORECAST = (50.0, None, None, False)


def series(*days: tuple) -> pd.DataFrame:
    """Consecutive days ending at AS_OF, each one of FINE, LOW, CLOSED, NO_FORECAST."""
    return drop_days(*((back(len(days) - 1 - i), *day) for i, day in enumerate(days)))


@pytest.mark.parametrize(("run", "severity"), [(1, "info"), (2, "warning"), (3, "critical"), (5, "critical")])
def test_severity_rises_with_consecutive_drop_days(run: int, severity: str) -> None:
    [alert] = find_sales_drops(series(*[FINE] * 3, *[LOW] * run), AS_OF)
    assert alert.severity == severity
    assert alert.numbers["days"] == run
    assert alert.numbers["first_day"] == back(run - 1).isoformat()
    assert alert.numbers["last_day"] == AS_OF.isoformat()
    assert alert.dedupe_key == f"sales_drop:store:S02:{back(run - 1).isoformat()}"
    assert (alert.kind, alert.entity_type, alert.entity_id, alert.detected_on) == ("sales_drop", "store", "S02", AS_OF)


def test_numbers_and_message_of_a_run() -> None:
    days = drop_days(
        (back(2), 300.0, 250.0, 200.0, False),
        (back(1), 40.0, 100.0, 70.0, False),
        (back(0), 60.0, 110.0, 75.0, False),
        name="Riverside",
    )
    [alert] = find_sales_drops(days, AS_OF)
    # The 18th (300 over 250) is not in the run: a day at or above the forecast joins a run only when a day below
    # comes before it. actual 40 + 60 = 100; expected 100 + 110 = 210; shortfall 110 = 52.4%.
    # sigma 30 / 1.96 and 35 / 1.96: sqrt(sum sigma^2) = sqrt(30^2 + 35^2) / 1.96 = sqrt(2125) / 1.96 = 23.519;
    # a store's run of 2 days is judged at 99%: bound 210 - 2.5758 x 23.519 = 210 - 60.58 = 149.42 (> 100: a drop).
    assert alert.numbers == {
        "first_day": "2026-11-19",
        "last_day": "2026-11-20",
        "days": 2,
        "days_below": 2,
        "closed_days": 0,
        "actual": 100.0,
        "expected": 210.0,
        "lower_bound": 149.42,
        "confidence": 0.99,
        "shortfall": 110.0,
        "shortfall_pct": 52.4,
        "latest_day": "2026-11-20",
        "latest_actual": 60.0,
        "latest_expected": 110.0,
        "latest_lower_95": 75.0,
    }
    assert alert.message == (
        "Store S02 (Riverside) revenue has been below its forecast for 2 days in a row (2026-11-19 to 2026-11-20):"
        " 100.00 against 210.00 expected (-52%), under the 99.0% lower bound of 149.42 for those days."
    )
    json.dumps(alert.numbers)  # plain JSON, no numpy types


def test_one_day_drop_of_the_total_and_of_a_category() -> None:
    total = drop_days((AS_OF, 1000.0, 2500.0, 1800.0, False), scope="all", scope_id="")
    uncategorised = drop_days((AS_OF, 10.0, 40.0, 20.0, False), scope="category", scope_id="")
    product = drop_days((AS_OF, 10.0, 40.0, 20.0, False), scope="product", scope_id="P7", name="Espresso beans")
    alerts = {a.entity_type: a for a in find_sales_drops(pd.concat([total, uncategorised, product]), AS_OF)}
    assert alerts["total"].entity_id == "all"
    assert alerts["total"].dedupe_key == "sales_drop:all::2026-11-20"
    assert alerts["total"].severity == "info"
    assert alerts["total"].message == (
        "Total revenue was below its forecast on 2026-11-20: 1,000.00 against 2,500.00 expected (-60%),"
        " under the 95% lower bound of 1,800.00."
    )
    assert alerts["category"].entity_id == ""
    assert alerts["category"].message.startswith("Revenue of products without a category was below its forecast")
    assert alerts["product"].message.startswith("Product P7 (Espresso beans) revenue was below its forecast")


def test_a_closed_day_inside_a_run_neither_breaks_it_nor_counts() -> None:
    [alert] = find_sales_drops(series(FINE, LOW, CLOSED, LOW), AS_OF)
    assert (alert.numbers["days"], alert.numbers["closed_days"], alert.severity) == (2, 1, "warning")
    assert alert.numbers["first_day"] == back(2).isoformat()
    assert "for 2 open days in a row" in alert.message


def test_a_closed_day_after_a_drop_keeps_it_going() -> None:
    [alert] = find_sales_drops(series(FINE, LOW, LOW, CLOSED, CLOSED), AS_OF)
    assert (alert.numbers["days"], alert.numbers["closed_days"]) == (2, 0)
    assert alert.numbers["last_day"] == back(2).isoformat()


def test_a_closed_day_is_never_a_drop() -> None:
    # Sold nothing against a forecast of 100, but the shop was shut.
    assert find_sales_drops(series(FINE, (0.0, 100.0, 80.0, True)), AS_OF) == []


def test_a_day_without_forecast_is_no_drop_and_breaks_a_run() -> None:
    [alert] = find_sales_drops(series(LOW, LOW, NO_FORECAST, LOW), AS_OF)
    assert (alert.numbers["days"], alert.severity, alert.numbers["first_day"]) == (1, "info", AS_OF.isoformat())
    assert find_sales_drops(series(NO_FORECAST, NO_FORECAST), AS_OF) == []


def test_the_latest_days_without_forecast_do_not_end_a_run() -> None:
    # The series' latest open day with a forecast is a drop: the run goes on until a forecast says otherwise.
    [alert] = find_sales_drops(series(FINE, LOW, LOW, NO_FORECAST), AS_OF)
    assert (alert.numbers["days"], alert.numbers["last_day"]) == (2, back(1).isoformat())


def test_a_run_that_ended_raises_nothing() -> None:
    # Two open days in a row on their forecast (100 = 100) or over it (130) after the drop days end the run.
    assert find_sales_drops(series(LOW, LOW, LOW, FINE, FINE), AS_OF) == []
    assert find_sales_drops(series(LOW, LOW, LOW, FINE, (130.0, 100.0, 80.0, False)), AS_OF) == []
    assert find_sales_drops(series(LOW, LOW, CLOSED, FINE, CLOSED, FINE), AS_OF) == []


def test_one_good_day_does_not_end_a_drop() -> None:
    # A noisy store losing revenue still has a good day now and then: one open day on or over its forecast,
    # inside the run or the latest, is carried (and counted); a day below must come before it.
    [inside] = find_sales_drops(series(FINE, FINE, LOW, LOW, (130.0, 100.0, 80.0, False), LOW), AS_OF)
    # 50 + 50 + 130 + 50 = 280 against 400, bound 400 - 2.5758 x 10.204 x 2 = 347.43: a drop of 4 open days.
    assert (inside.numbers["days"], inside.numbers["days_below"], inside.severity) == (4, 3, "critical")
    assert (inside.numbers["actual"], inside.numbers["lower_bound"]) == (280.0, 347.43)
    assert inside.numbers["first_day"] == back(3).isoformat()
    assert inside.message.startswith("Store S02 revenue has been below its forecast on 3 of the last 4 open days")
    [latest] = find_sales_drops(series(FINE, FINE, LOW, LOW, LOW, CLOSED, FINE), AS_OF)
    numbers = latest.numbers
    assert (numbers["days"], numbers["closed_days"], numbers["last_day"]) == (4, 1, AS_OF.isoformat())
    assert latest.dedupe_key == f"sales_drop:store:S02:{back(4).isoformat()}"
    # A day on its forecast before any day below is not a run.
    assert find_sales_drops(series(LOW, FINE, FINE), AS_OF) == []


def test_good_days_before_a_drop_do_not_hide_it() -> None:
    # The walk back carries the run through two good days of the week before the drop (200 over 100 each):
    # whole, 95 + 200 + 95 + 200 + 4 x 40 = 750 against 800, within its bound 800 - 2.5758 x 10 x sqrt(8) = 727.14.
    # From its second stretch (the 95 before the last good day): 95 + 200 + 160 = 455 against 600, under
    # 600 - 2.5758 x 10 x sqrt(6) = 536.91: a drop of 6 open days, 24% short, critical.
    below, good, drop = (95.0, 100.0, 80.0, False), (200.0, 100.0, 80.0, False), (40.0, 100.0, 80.0, False)
    days = series(FINE, FINE, below, good, below, good, drop, drop, drop, drop).assign(sigma=10.0)
    [alert] = find_sales_drops(days, AS_OF)
    numbers = alert.numbers
    assert (numbers["first_day"], numbers["days"], numbers["days_below"]) == (back(5).isoformat(), 6, 5)
    assert (numbers["actual"], numbers["expected"], numbers["lower_bound"]) == (455.0, 600.0, 536.91)
    assert alert.severity == "critical"
    # Its key is the run's first day, so that judged from another stretch tomorrow it is the same alert.
    assert alert.dedupe_key == f"sales_drop:store:S02:{back(7).isoformat()}"
    # Without the drop, neither the whole run nor a stretch of it is under its bound.
    assert find_sales_drops(series(FINE, FINE, below, good, below, good, below).assign(sigma=10.0), AS_OF) == []


def test_days_within_their_own_bound_add_up_to_a_drop() -> None:
    # yhat 100, lower_95 80: sigma 20 / 1.96 = 10.204 a day. One day is bounded by its own 80; a run of n >= 2
    # days of a store at 99% by 100n - 2.5758 x sqrt(n) x 10.204 = 100n - 26.284 sqrt(n).
    near = (81.0, 100.0, 80.0, False)  # below its forecast, above its own bound of 80
    days = series(FINE, near, near, near)
    assert find_sales_drops(days, back(2)) == []  # one day: 81 >= 80
    [two] = find_sales_drops(days, back(1))  # 162 < 200 - 26.284 x 1.4142 = 200 - 37.17 = 162.83
    [three] = find_sales_drops(days, AS_OF)  # 243 < 300 - 26.284 x 1.7321 = 300 - 45.52 = 254.48
    # Three days under the bound, but 57 short of 300 is 19%, under a fifth: a warning, not a critical.
    assert (two.severity, three.severity) == ("warning", "warning")
    assert two.dedupe_key == three.dedupe_key == f"sales_drop:store:S02:{back(2).isoformat()}"
    keys = ("days", "actual", "expected", "lower_bound", "confidence", "shortfall", "shortfall_pct")
    assert {k: three.numbers[k] for k in keys} == {
        "days": 3,
        "actual": 243.0,
        "expected": 300.0,
        "lower_bound": 254.48,  # 254.475 before rounding
        "confidence": 0.99,
        "shortfall": 57.0,
        "shortfall_pct": 19.0,
    }
    assert three.numbers["latest_lower_95"] == 80.0
    assert three.message == (
        "Store S02 revenue has been below its forecast for 3 days in a row (2026-11-18 to 2026-11-20):"
        " 243.00 against 300.00 expected (-19%), under the 99.0% lower bound of 254.48 for those days."
    )
    # A product's run is judged at 99.9%: the same two days, 162 >= 200 - 3.0902 x 10.204 x 1.4142 = 200 - 44.59
    # = 155.41, are no drop (a 2-day product run needs 3.0902 / 1.4142 = 2.19 sigma a day, more than a day's 1.96).
    assert find_sales_drops(days.assign(scope="product", scope_id="P7"), back(1)) == []
    # Below the forecast every day, but 3 x 90 = 270 is within the bound of 254.48: no drop.
    within = series(FINE, *[(90.0, 100.0, 80.0, False)] * 3)
    assert find_sales_drops(within, AS_OF) == []
    # A sigma column is the error scale when given: 5 a day, bound 300 - 2.5758 x 5 x sqrt(3) = 300 - 22.31 = 277.69
    # > 270.
    [alert] = find_sales_drops(within.assign(sigma=5.0), AS_OF)
    assert (alert.numbers["lower_bound"], alert.numbers["confidence"], alert.severity) == (277.69, 0.99, "warning")
    # A fifth of the expected revenue missing makes it critical: 3 x 80 = 240 is 20% short of 300.
    [alert] = find_sales_drops(series(FINE, *[(80.0, 100.0, 80.0, False)] * 3).assign(sigma=5.0), AS_OF)
    assert (alert.numbers["shortfall_pct"], alert.severity) == (20.0, "critical")


def test_the_dedupe_key_stays_while_the_run_extends() -> None:
    days = drop_days(*((back(2 - i), *day) for i, day in enumerate([FINE, LOW, LOW])), (AS_OF + timedelta(1), *LOW))
    [today] = find_sales_drops(days, AS_OF)  # the row after AS_OF is not seen yet
    [tomorrow] = find_sales_drops(days, AS_OF + timedelta(1))
    assert today.dedupe_key == tomorrow.dedupe_key == f"sales_drop:store:S02:{back(1).isoformat()}"
    assert (today.severity, tomorrow.severity) == ("warning", "critical")
    assert (today.numbers["days"], tomorrow.numbers["days"]) == (2, 3)
    assert tomorrow.detected_on == AS_OF + timedelta(1)


def test_series_are_judged_apart_and_nothing_is_nothing() -> None:
    recovered = drop_days((back(2), *LOW), (back(1), *FINE), (AS_OF, *FINE), scope_id="S01")
    days = pd.concat([series(FINE, LOW), recovered], ignore_index=True)
    assert [a.entity_id for a in find_sales_drops(days, AS_OF)] == ["S02"]
    assert find_sales_drops(series(FINE).iloc[0:0], AS_OF) == []
    with pytest.raises(ValueError, match="lacks columns"):
        find_sales_drops(pd.DataFrame({"scope": ["all"]}), AS_OF)


# --- stock risk: the pure rule -----------------------------------------------------------------

COUNTED = NOV[18]


def position(product: str = "P7", store: str = "S01", **values: Any) -> dict[str, Any]:
    return {
        "product_id": product,
        "store_id": store,
        "counted_on": COUNTED,
        "on_hand": 30,
        "on_order": 0,
        "sold_since_count": 0,
        "lead_time_days": 9,
    } | values


def forecast(product: str, store: str, *yhat: float, first: date = AS_OF + timedelta(1)) -> list[dict[str, Any]]:
    return [
        {"product_id": product, "store_id": store, "day": first + timedelta(k), "yhat": y} for k, y in enumerate(yhat)
    ]


def project(positions: list[dict], demand: list[dict]) -> pd.DataFrame:
    demand_frame = pd.DataFrame(demand, columns=["product_id", "store_id", "day", "yhat"])
    frame = project_stockouts(pd.DataFrame(positions), demand_frame, AS_OF)
    return frame.set_index(["product_id", "store_id"], drop=False)


def test_days_until_stockout_within_the_forecast() -> None:
    result = project(
        [position("P7", on_hand=30, sold_since_count=6), position("P8", on_hand=18)],
        forecast("P7", "S01", 10, 8, 9, 10, 10, 10, 10) + forecast("P8", "S01", 10, 8, 9, 10, 10, 10, 10),
    )
    p7 = result.loc[("P7", "S01")]
    # 30 - 6 = 24 on hand; cumulative 10, 18, 27: out during day 3, 2 + (24 - 18) / 9 = 2.667 days.
    assert p7["projected_on_hand"] == 24
    assert p7["days_until_stockout"] == pytest.approx(2 + 6 / 9)
    assert p7["stockout_day"] == AS_OF + timedelta(3)
    assert p7["daily_demand"] == pytest.approx(67 / 7)
    assert (p7["at_risk"], p7["severity"], p7["forecast_days"]) == (True, "critical", 7)  # 2.67 <= 9 / 2
    # 18 on hand is gone exactly at the end of day 2.
    p8 = result.loc[("P8", "S01")]
    assert p8["days_until_stockout"] == pytest.approx(2.0)
    assert p8["stockout_day"] == AS_OF + timedelta(2)


def test_a_stock_out_further_than_a_date_goes_has_no_day() -> None:
    # A slow mover: 1e-30 units a day (a TSB rate after years without a sale) would run out in 1e31 days.
    result = project([position("P9", on_hand=10)], forecast("P9", "S01", *[1e-30] * 7))

    p9 = result.loc[("P9", "S01")]
    assert p9["days_until_stockout"] > 1e30 and p9["stockout_day"] is None and not p9["at_risk"]


def test_beyond_the_forecast_the_mean_carries_on() -> None:
    result = project(
        [
            position("P1", on_hand=100, lead_time_days=21),
            position("P2", on_hand=100, lead_time_days=19),
            position("P3", on_hand=20, lead_time_days=10),
        ],
        forecast("P1", "S01", *[5] * 7) + forecast("P2", "S01", *[5] * 7) + forecast("P3", "S01", 0, 0, 0, 0, 0, 6, 8),
    )
    # 7 days sell 35, then 5 a day: 7 + 65 / 5 = 20 days.
    p1 = result.loc[("P1", "S01")]
    assert p1["days_until_stockout"] == pytest.approx(20.0)
    assert p1["stockout_day"] == AS_OF + timedelta(20)
    assert (p1["at_risk"], p1["severity"]) == (True, "warning")  # 20 <= 21 but > 10.5
    assert not result.loc[("P2", "S01")]["at_risk"]  # 20 > 19
    # Five closed days then 6 and 8: 14 in the week, 2 a day after it: 7 + (20 - 14) / 2 = 10 days = the lead time.
    p3 = result.loc[("P3", "S01")]
    assert p3["days_until_stockout"] == pytest.approx(10.0)
    assert (p3["daily_demand"], p3["at_risk"], p3["severity"]) == (2.0, True, "warning")


def test_zero_demand_never_runs_out() -> None:
    result = project(
        [position("P1", on_hand=10), position("P2", on_hand=0)],
        forecast("P1", "S01", *[0] * 7) + forecast("P2", "S01", *[0] * 7),
    )
    p1 = result.loc[("P1", "S01")]
    assert math.isinf(p1["days_until_stockout"])
    assert (p1["stockout_day"], p1["at_risk"], p1["severity"]) == (None, False, None)
    # An empty shelf nobody buys from (a delisted product) is out, but nothing is lost.
    p2 = result.loc[("P2", "S01")]
    assert (p2["days_until_stockout"], p2["at_risk"]) == (0.0, False)


def test_an_empty_shelf_of_a_product_that_barely_sells_is_no_risk() -> None:
    # A product silent for months keeps a tiny intermittent rate; under half a unit over the lead time
    # (9 days here, 1 at least) an empty shelf loses nothing worth a "reorder now".
    result = project(
        [position("P1", on_hand=0), position("P2", on_hand=0), position("P3", on_hand=0, lead_time_days=0)],
        forecast("P1", "S01", *[1e-5] * 7) + forecast("P2", "S01", *[0.06] * 7) + forecast("P3", "S01", *[0.4] * 7),
    )
    assert not result.loc[("P1", "S01")]["at_risk"]
    assert (result.loc[("P2", "S01")]["at_risk"], result.loc[("P2", "S01")]["severity"]) == (True, "critical")
    assert not result.loc[("P3", "S01")]["at_risk"]  # 0.4 over one day


def test_already_out_is_critical() -> None:
    result = project(
        [position("P1", on_hand=5, sold_since_count=8), position("P2", on_hand=0, lead_time_days=0)],
        forecast("P1", "S01", *[3] * 7) + forecast("P2", "S01", *[3] * 7),
    )
    p1 = result.loc[("P1", "S01")]
    assert (p1["projected_on_hand"], p1["days_until_stockout"], p1["stockout_day"]) == (0, 0.0, AS_OF)
    assert (p1["at_risk"], p1["severity"]) == (True, "critical")
    assert result.loc[("P2", "S01")]["severity"] == "critical"  # even with a supplier who delivers the same day
    alerts = {a.entity_id: a for a in stock_risk_alerts(result)}
    assert alerts["P1@S01"].message == (
        "Product P1 at store S01 has probably run out (5 counted on 2026-11-18, 8 sold since, ~3 sold a day)"
        " and the supplier needs 9 days: reorder now."
    )
    assert alerts["P2@S01"].message == (
        "Product P2 at store S01 is out of stock (none counted on 2026-11-18, ~3 sold a day)"
        " and the supplier needs 0 days: reorder now."
    )


def test_an_unknown_lead_time_takes_the_default_and_says_so() -> None:
    result = project([position("P1", on_hand=20, lead_time_days=None)], forecast("P1", "S01", *[4] * 7))
    p1 = result.loc[("P1", "S01")]
    assert (p1["lead_time_days"], p1["lead_time_known"]) == (DEFAULT_LEAD_TIME_DAYS, False)
    assert (p1["days_until_stockout"], p1["severity"]) == (5.0, "warning")  # 5 <= 7, > 3.5
    [alert] = stock_risk_alerts(result)
    assert alert.numbers["lead_time_known"] is False
    assert "the supplier's lead time is unknown (7 days assumed): reorder now." in alert.message


def test_units_on_order_lower_the_severity_one_step() -> None:
    result = project(
        [
            position("P1", on_hand=10, on_order=40),  # 2.5 days against 9: critical -> warning
            position("P2", on_hand=24, on_order=40, lead_time_days=7),  # 6 days against 7: warning -> info
        ],
        forecast("P1", "S01", *[4] * 7) + forecast("P2", "S01", *[4] * 7),
    )
    assert result.loc[("P1", "S01")]["severity"] == "warning"
    assert result.loc[("P2", "S01")]["severity"] == "info"
    alerts = {a.entity_id: a for a in stock_risk_alerts(result)}
    assert alerts["P1@S01"].message == (
        "Product P1 at store S01 will run out in about 2.5 days (projected 10 on hand, ~4 sold a day)"
        " but the supplier needs 9 days; 40 units are already on order."
    )


def test_without_a_demand_forecast_a_position_is_not_assessed() -> None:
    result = project([position("P1"), position("P2")], forecast("P2", "S01", *[1] * 7) + forecast("P1", "S09", 99))
    p1 = result.loc[("P1", "S01")]
    assert (p1["assessed"], p1["at_risk"], p1["severity"], p1["stockout_day"]) == (False, False, None, None)
    assert math.isnan(p1["days_until_stockout"]) and p1["forecast_days"] == 0
    assert bool(result.loc[("P2", "S01")]["assessed"])
    assert not bool(project([position("P1")], []).loc[("P1", "S01")]["assessed"])


def test_forecast_days_up_to_as_of_are_ignored() -> None:
    result = project([position("P1", on_hand=10)], forecast("P1", "S01", 1000, 2, 2, 2, 2, 2, 2, 2, first=AS_OF))
    # Day as_of (1000) is history; then 2 a day for 7 days: 10 units last 5 days.
    assert result.loc[("P1", "S01")]["days_until_stockout"] == pytest.approx(5.0)


def test_stock_risk_alert_record() -> None:
    result = project(
        [position("P0007", on_hand=30, sold_since_count=6, product_name="Espresso beans")],
        forecast("P0007", "S01", *[9.6] * 7),
    )
    [alert] = stock_risk_alerts(result)
    assert alert.message == (
        "Product P0007 (Espresso beans) at store S01 will run out in about 2.5 days"
        " (projected 24 on hand, ~9.6 sold a day) but the supplier needs 9 days: reorder now."
    )
    assert (alert.kind, alert.severity, alert.entity_type, alert.entity_id, alert.detected_on) == (
        "stock_risk",
        "critical",
        "product_store",
        "P0007@S01",
        AS_OF,
    )
    assert alert.dedupe_key == "stock_risk:P0007@S01:2026-11-18"
    assert alert.numbers == {
        "as_of": "2026-11-20",
        "counted_on": "2026-11-18",
        "on_hand": 30,
        "sold_since_count": 6,
        "projected_on_hand": 24,
        "on_order": 0,
        "daily_demand": 9.6,
        "forecast_days": 7,
        "days_until_stockout": 2.5,
        "stockout_day": "2026-11-23",
        "lead_time_days": 9,
        "lead_time_known": True,
    }
    assert json.loads(json.dumps(alert.numbers)) == alert.numbers


# --- the warehouse -----------------------------------------------------------------------------


def execute(url: str, statement: str, rows: list[tuple]) -> None:
    with transaction(url) as cursor:
        cursor.executemany(statement, rows)


def add_kpis(url: str, rows: list[tuple]) -> None:
    """(day, scope, scope_id, revenue)"""
    execute(
        url,
        "INSERT INTO marts.daily_kpis (day, scope, scope_id, revenue, units, orders, customers, average_order_value,"
        " revenue_with_cost, gross_margin, margin_rate, discount_given)"
        " VALUES (%s, %s, %s, %s, 1, 1, 0, %s, 0, NULL, NULL, 0)",
        [(*row, row[3]) for row in rows],
    )


def add_series(url: str, *series: tuple) -> None:
    """(target, scope, scope_id, status)"""
    execute(
        url,
        "INSERT INTO ml.forecast_series (target, scope, scope_id, origin, input_hash, status, model, reason,"
        " history_days) VALUES (%s, %s, %s, '2026-11-17', 'h', %s, 'prophet', 'test', 100)",
        list(series),
    )


def add_forecasts(
    url: str,
    target: str,
    scope: str,
    scope_id: str,
    origin: date,
    days: list[date],
    yhat: float,
    lower_95: float,
    lower_80: float | None = None,
    closed_on: tuple[date, ...] = (),
) -> None:
    lower_80 = lower_95 if lower_80 is None else lower_80
    execute(
        url,
        "INSERT INTO ml.forecasts (target, scope, scope_id, origin, day, model, yhat, yhat_lower_80, yhat_upper_80,"
        " yhat_lower_95, yhat_upper_95, closed) VALUES (%s, %s, %s, %s, %s, 'prophet', %s, %s, %s, %s, %s, %s)",
        [
            (
                target,
                scope,
                scope_id,
                origin,
                day,
                yhat,
                lower_80,
                2 * yhat - lower_80,
                lower_95,
                2 * yhat - lower_95,
                day in closed_on,
            )
            for day in days
        ],
    )


def add_backtest(url: str, scope: str, scope_id: str, model: str, origin: date, yhat: float, rmse: float) -> None:
    """A backtest of 7 days after origin and the model's accuracy; seasonal_naive is chosen (and sets sigma)."""
    execute(
        url,
        "INSERT INTO ml.backtest_forecasts (target, scope, scope_id, origin, model, day, yhat, input_hash)"
        " VALUES ('sales', %s, %s, %s, %s, %s, %s, 'h')",
        [(scope, scope_id, origin, model, origin + timedelta(k), yhat) for k in range(1, 8)],
    )
    execute(
        url,
        "INSERT INTO ml.forecast_accuracy (target, scope, scope_id, model, origins, first_origin, last_origin, mae,"
        " rmse, chosen) VALUES ('sales', %s, %s, %s, 4, '2026-10-01', %s, %s, %s, %s)"
        " ON CONFLICT (target, scope, scope_id, model) DO NOTHING",
        [(scope, scope_id, model, origin, rmse, rmse, model == "seasonal_naive")],
    )
    if model == "seasonal_naive":  # the published model's error scale is the series' sigma
        execute(
            url,
            "UPDATE ml.forecast_series SET sigma = %s WHERE (target, scope, scope_id) = ('sales', %s, %s)",
            [(rmse, scope, scope_id)],
        )


def anomalies(url: str, kind: str) -> dict[str, dict[str, Any]]:
    with transaction(url) as cursor:
        cursor.execute(
            "SELECT dedupe_key, severity, entity_type, entity_id, detected_on, message, numbers, active,"
            " first_seen_at, resolved_at FROM ml.anomalies WHERE kind = %s",
            (kind,),
        )
        names = [column.name for column in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def span(first: int, last: int) -> list[date]:
    return [NOV[n] for n in range(first, last + 1)]


@pytest.fixture
def chain(empty_warehouse: str) -> str:
    """Two stores and a category, 7..20 November, the chain shut on the 15th (the store calendar says so).

    - S02 (Riverside): 400 a day, on its forecast (origin 13th), but 200 on the 16th, shut on the 17th, 150 on
      the 18th..20th against 400 (the 13th's forecast, issued before the 17th's 390, which covers the 21st on);
      sigma (upper_95 - yhat) / 1.96 = 100 / 1.96 from both origins: a drop of 4 open days from the 16th (the
      13th and 14th, on their forecast, come before it).
    - S01: 600 a day, on its forecast, 100 on the 20th, a day its forecast expected it closed: no drop.
    - the total: 950 a day, on its forecast, but 600 on the 17th (under its bound of 700), which the 18th ends.
    - category Toys: no published forecast; its chosen backtest (seasonal_naive, 500 a day, the series' sigma 50)
      against 380 and 390 on the 19th and 20th: a drop of 2 days. The prophet backtest (1000) is not chosen.
    - product P9 falls to 0 but its series was skipped.
    """
    url = empty_warehouse
    execute(
        url,
        "INSERT INTO core.stores (store_id, name, source) VALUES (%s, %s, 'test')",
        [("S01", "Central"), ("S02", "Riverside")],
    )
    # Too short a history to infer a closure from (it needs three same weekdays around it): they are known.
    execute(
        url,
        "INSERT INTO core.store_calendar (store_id, day, source) VALUES (%s, %s, 'test')",
        [(None, NOV[15]), ("S02", NOV[17])],
    )
    kpis = []
    for day in span(7, 20):
        if day == NOV[15]:
            continue
        s01 = 100 if day == NOV[20] else 600
        s02 = {NOV[16]: 200, NOV[17]: None, NOV[18]: 150, NOV[19]: 150, NOV[20]: 150}.get(day, 400)
        toys = {NOV[19]: 380, NOV[20]: 390}.get(day, 500)
        total = 600 if day == NOV[17] else 950
        kpis += [(day, "store", "S01", s01), (day, "all", "", total), (day, "category", "Toys", toys)]
        if s02 is not None:
            kpis.append((day, "store", "S02", s02))
        if day <= NOV[14]:
            kpis.append((day, "product", "P9", 50))
    add_kpis(url, kpis)
    add_series(
        url,
        ("sales", "all", "", "forecast"),
        ("sales", "store", "S01", "forecast"),
        ("sales", "store", "S02", "forecast"),
        ("sales", "category", "Toys", "fallback"),
        ("sales", "product", "P9", "skipped"),
    )
    for origin, days in ((NOV[13], span(14, 20)), (NOV[17], span(18, 24))):
        add_forecasts(url, "sales", "all", "", origin, days, 950, 700)
        add_forecasts(url, "sales", "store", "S01", origin, days, 600, 450, closed_on=(NOV[20],))
        add_forecasts(url, "sales", "product", "P9", origin, days, 50, 30)
    add_forecasts(url, "sales", "store", "S02", NOV[13], span(14, 20), 400, 300)
    add_forecasts(url, "sales", "store", "S02", NOV[17], span(18, 24), 390, 290)
    for origin in (NOV[12], NOV[16]):
        add_backtest(url, "category", "Toys", "seasonal_naive", origin, 500, 50)
        add_backtest(url, "category", "Toys", "prophet", origin, 1000, 10)
    return url


def refresh_drops(url: str, **kwargs: Any) -> list:
    with transaction(url) as cursor:
        return refresh_sales_drops(cursor, **kwargs)


def test_sales_drops_in_the_warehouse(chain: str) -> None:
    alerts = refresh_drops(chain)  # as_of: the latest KPI day, the 20th
    assert sorted(a.dedupe_key for a in alerts) == [
        "sales_drop:category:Toys:2026-11-19",
        "sales_drop:store:S02:2026-11-16",
    ]
    rows = anomalies(chain, "sales_drop")
    s02 = rows["sales_drop:store:S02:2026-11-16"]
    assert (s02["severity"], s02["entity_type"], s02["entity_id"], s02["detected_on"], s02["active"]) == (
        "critical",
        "store",
        "S02",
        NOV[20],
        True,
    )
    # 200 + 3 x 150 = 650 against 4 x 400 = 1600 (the 13th's forecast, issued first); 950 short = 59.4%.
    # A store's run of 4 days, at 99%: 1600 - 2.5758 x sqrt(4 x (100 / 1.96)^2) = 1600 - 2.5758 x 2 x 51.020
    # = 1600 - 262.84 = 1337.16.
    assert s02["numbers"] == {
        "first_day": "2026-11-16",
        "last_day": "2026-11-20",
        "days": 4,
        "days_below": 4,
        "closed_days": 1,
        "actual": 650.0,
        "expected": 1600.0,
        "lower_bound": 1337.16,
        "confidence": 0.99,
        "shortfall": 950.0,
        "shortfall_pct": 59.4,
        "latest_day": "2026-11-20",
        "latest_actual": 150.0,
        "latest_expected": 400.0,
        "latest_lower_95": 300.0,
        "forecast_sources": ["published"],
    }
    assert s02["message"] == (
        "Store S02 (Riverside) revenue has been below its forecast for 4 open days in a row"
        " (2026-11-16 to 2026-11-20): 650.00 against 1,600.00 expected (-59%), under the 99.0% lower bound of"
        " 1,337.16 for those days."
    )


def test_a_series_without_published_forecast_falls_back_to_its_backtest(chain: str) -> None:
    refresh_drops(chain)
    toys = anomalies(chain, "sales_drop")["sales_drop:category:Toys:2026-11-19"]
    assert (toys["severity"], toys["entity_type"], toys["entity_id"]) == ("warning", "category", "Toys")
    # seasonal_naive from the 16th: 500 a day with the series' sigma 50, a day's bound 500 - 1.96 x 50 = 402;
    # the run's, a category's 2 days at 99%: 1000 - 2.5758 x sqrt(2 x 50^2) = 1000 - 2.5758 x 70.711 = 1000 - 182.14
    # = 817.86 (> 770: a drop). 770 is 230 short = 23.0%.
    assert toys["numbers"] == {
        "first_day": "2026-11-19",
        "last_day": "2026-11-20",
        "days": 2,
        "days_below": 2,
        "closed_days": 0,
        "actual": 770.0,
        "expected": 1000.0,
        "lower_bound": 817.86,
        "confidence": 0.99,
        "shortfall": 230.0,
        "shortfall_pct": 23.0,
        "latest_day": "2026-11-20",
        "latest_actual": 390.0,
        "latest_expected": 500.0,
        "latest_lower_95": 402.0,
        "forecast_sources": ["backtest"],
    }
    assert toys["message"].startswith("Category Toys revenue has been below its forecast for 2 days in a row")


def test_rerunning_keeps_one_row_per_situation_and_closes_what_is_over(chain: str) -> None:
    refresh_drops(chain)
    first = anomalies(chain, "sales_drop")
    refresh_drops(chain, as_of=NOV[20])
    again = anomalies(chain, "sales_drop")
    assert again.keys() == first.keys()
    assert {k: (r["first_seen_at"], r["severity"], r["active"]) for k, r in again.items()} == {
        k: (r["first_seen_at"], r["severity"], r["active"]) for k, r in first.items()
    }
    # The 21st: S02 still low (the run goes on under the same key); Toys at 600, over its forecast: one good day
    # is carried in a run, but 380 + 390 + 600 = 1370 is within the 3 days' bound of 1500 - 2.5758 x 50 x sqrt(3)
    # = 1276.93, so its drop is over; the total 900: below its forecast of 950 but within its bound of 700.
    add_kpis(
        chain,
        [
            (NOV[21], "all", "", 900),
            (NOV[21], "store", "S01", 600),
            (NOV[21], "store", "S02", 100),
            (NOV[21], "category", "Toys", 600),
        ],
    )
    refresh_drops(chain)
    later = anomalies(chain, "sales_drop")
    assert later.keys() == first.keys()
    s02 = later["sales_drop:store:S02:2026-11-16"]
    assert (s02["active"], s02["numbers"]["days"], s02["detected_on"], s02["resolved_at"]) == (True, 5, NOV[21], None)
    assert s02["first_seen_at"] == first["sales_drop:store:S02:2026-11-16"]["first_seen_at"]
    # 650 + 100 = 750 against 1600 + 390 (the 21st: the 17th's forecast) = 1990, bound at 99%:
    # 1990 - 2.5758 x sqrt(5 x (100 / 1.96)^2) = 1990 - 2.5758 x 51.020 x 2.2361 = 1990 - 293.86 = 1696.14.
    assert [s02["numbers"][k] for k in ("actual", "expected", "lower_bound")] == [750.0, 1990.0, 1696.14]
    toys = later["sales_drop:category:Toys:2026-11-19"]
    assert toys["active"] is False and toys["resolved_at"] is not None
    assert toys["numbers"] == first["sales_drop:category:Toys:2026-11-19"]["numbers"]  # as it was when it ended


def test_a_run_longer_than_the_window_keeps_its_start(chain: str) -> None:
    with transaction(chain) as cursor:
        [_toys, s02] = sorted(detect_sales_drops(cursor, NOV[20], window_days=2), key=lambda a: a.entity_type)
    assert (s02.entity_id, s02.dedupe_key, s02.numbers["days"]) == ("S02", "sales_drop:store:S02:2026-11-16", 4)


def test_sales_drops_as_of_a_past_day(chain: str) -> None:
    with transaction(chain) as cursor:
        alerts = detect_sales_drops(cursor, NOV[18])
    # On the 18th: S02 has dropped on the 16th and 18th (the 17th shut); Toys not yet; the total's 17th
    # (600 < 700) ended with the 18th.
    assert [(a.dedupe_key, a.severity) for a in alerts] == [("sales_drop:store:S02:2026-11-16", "warning")]


def test_an_empty_warehouse_has_no_drops(empty_warehouse: str) -> None:
    assert refresh_drops(empty_warehouse) == []
    assert query(empty_warehouse, "SELECT count(*) FROM ml.anomalies") == [(0,)]


@pytest.fixture
def stocked(empty_warehouse: str) -> str:
    """Store S01, counts on the 18th, demand forecasts from the 20th (P2's from the 19th).

    - P1 (lead 9): 30 counted (the 17th's 50 is older, the 21st's 999 is after as_of), 3 + 3 sold after the
      count day (the count day's 4, S02's 5 and the 21st's 7 do not count): 24 left at 9.6 a day = 2.5 days.
      An older forecast (origin 19th, 100 a day) is superseded.
    - P2 (lead unknown -> 7, 10 on order): 20 at 4 a day = 5 days: warning, lowered to info.
    - P3: no demand forecast, not assessed. P4: 500 at 5 a day, 100 days: fine.
    """
    url = empty_warehouse
    execute(
        url,
        "INSERT INTO core.products (product_id, name, lead_time_days, source) VALUES (%s, %s, %s, 'test')",
        [("P1", "Espresso beans", 9), ("P2", "Milk", None), ("P3", "Cups", 5), ("P4", "Sugar", 10)],
    )
    execute(
        url,
        "INSERT INTO core.stock (product_id, store_id, as_of, on_hand, on_order, source) VALUES (%s, 'S01', %s, %s,"
        " %s, 'test')",
        [
            ("P1", NOV[17], 50, 0),
            ("P1", NOV[18], 30, 0),
            ("P1", NOV[21], 999, 0),
            ("P2", NOV[18], 20, 10),
            ("P3", NOV[18], 1, 0),
            ("P4", NOV[18], 500, 0),
        ],
    )
    execute(
        url,
        "INSERT INTO core.sales (order_id, line_number, sold_at, sale_date, store_id, product_id, quantity,"
        " unit_price, revenue, source) VALUES (%s, 1, %s::date + time '12:00', %s, %s, %s, %s, 1, %s, 'test')",
        [
            (f"O{i}", day, day, store, product, quantity, quantity)
            for i, (day, store, product, quantity) in enumerate(
                [
                    (NOV[18], "S01", "P1", 4),
                    (NOV[19], "S01", "P1", 3),
                    (NOV[20], "S01", "P1", 3),
                    (NOV[19], "S02", "P1", 5),
                    (NOV[21], "S01", "P1", 7),
                ]
            )
        ],
    )
    add_forecasts(url, "demand", "product_store", "P1@S01", NOV[19], span(20, 26), 100, 80)
    add_forecasts(url, "demand", "product_store", "P1@S01", NOV[20], span(21, 27), 9.6, 5)
    add_forecasts(url, "demand", "product_store", "P2@S01", NOV[19], span(20, 26), 4, 2)
    add_forecasts(url, "demand", "product_store", "P4@S01", NOV[20], span(21, 27), 5, 2)
    add_forecasts(url, "demand", "product_store", "P5@S09", NOV[20], span(21, 27), 5, 2)  # no stock count
    return url


def refresh_stock(url: str, **kwargs: Any) -> tuple[pd.DataFrame, list]:
    with transaction(url) as cursor:
        return refresh_stock_risks(cursor, **kwargs)


def test_stock_risks_in_the_warehouse(stocked: str) -> None:
    projection, alerts = refresh_stock(stocked)  # as_of: the latest demand origin, the 20th
    projection = projection.set_index("product_id")
    assert list(projection.index) == ["P1", "P2", "P3", "P4"]
    assert projection["assessed"].tolist() == [True, True, False, True]
    assert projection.loc["P1", ["counted_on", "on_hand", "sold_since_count", "projected_on_hand"]].tolist() == [
        NOV[18],
        30,
        6,
        24,
    ]
    assert projection.loc["P1", "days_until_stockout"] == pytest.approx(2.5)
    # P2's forecast is from the 19th: the 21st..26th count, 4 a day, 20 units last exactly 5 days.
    assert (projection.loc["P2", "forecast_days"], projection.loc["P2", "days_until_stockout"]) == (6, 5.0)
    assert projection.loc["P4", "days_until_stockout"] == pytest.approx(100.0)
    assert projection["at_risk"].tolist() == [True, True, False, False]
    assert len(alerts) == 2

    rows = anomalies(stocked, "stock_risk")
    assert sorted(rows) == ["stock_risk:P1@S01:2026-11-18", "stock_risk:P2@S01:2026-11-18"]
    p1, p2 = rows["stock_risk:P1@S01:2026-11-18"], rows["stock_risk:P2@S01:2026-11-18"]
    assert (p1["severity"], p1["entity_type"], p1["entity_id"], p1["detected_on"]) == (
        "critical",
        "product_store",
        "P1@S01",
        NOV[20],
    )
    assert p1["message"] == (
        "Product P1 (Espresso beans) at store S01 will run out in about 2.5 days (projected 24 on hand,"
        " ~9.6 sold a day) but the supplier needs 9 days: reorder now."
    )
    assert p1["numbers"]["stockout_day"] == "2026-11-23" and p1["numbers"]["lead_time_days"] == 9
    assert p2["severity"] == "info"
    assert p2["message"] == (
        "Product P2 (Milk) at store S01 will run out in about 5 days (projected 20 on hand, ~4 sold a day)"
        " but the supplier's lead time is unknown (7 days assumed); 10 units are already on order."
    )
    assert p2["numbers"]["lead_time_known"] is False and p2["numbers"]["on_order"] == 10


def test_a_new_count_is_a_new_situation(stocked: str) -> None:
    refresh_stock(stocked)
    before = anomalies(stocked, "stock_risk")
    refresh_stock(stocked)
    assert {k: r["first_seen_at"] for k, r in anomalies(stocked, "stock_risk").items()} == {
        k: r["first_seen_at"] for k, r in before.items()
    }
    # A delivery counted on the 20th: 200 on hand, no longer at risk; P2 goes on as it was.
    execute(
        stocked,
        "INSERT INTO core.stock (product_id, store_id, as_of, on_hand, source) VALUES ('P1', 'S01', %s, 200, 'test')",
        [(NOV[20],)],
    )
    projection, alerts = refresh_stock(stocked)
    assert [a.entity_id for a in alerts] == ["P2@S01"]
    after = anomalies(stocked, "stock_risk")
    assert after.keys() == before.keys()
    p1 = after["stock_risk:P1@S01:2026-11-18"]
    assert p1["active"] is False and p1["resolved_at"] is not None
    p2 = after["stock_risk:P2@S01:2026-11-18"]
    assert p2["active"] is True and p2["first_seen_at"] == before["stock_risk:P2@S01:2026-11-18"]["first_seen_at"]
    # The count of the 20th: nothing sold after it up to the 20th; 200 at 9.6 a day lasts 7 + 132.8 / 9.6 days.
    p1_now = projection.set_index("product_id").loc["P1"]
    assert (p1_now["counted_on"], p1_now["sold_since_count"], p1_now["projected_on_hand"]) == (NOV[20], 0, 200)
    assert p1_now["days_until_stockout"] == pytest.approx(7 + (200 - 7 * 9.6) / 9.6)


def test_stock_risks_without_demand_forecasts(empty_warehouse: str) -> None:
    projection, alerts = refresh_stock(empty_warehouse)
    assert projection.empty and alerts == []
