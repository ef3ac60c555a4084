"""Closed days are known, not guessed from a zero: the store calendar, and the strict rule for a shop's past.

Pure functions on hand-built days (sales_pipeline/forecasting/calendar.py).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from sales_pipeline.forecasting.calendar import CHAIN, Promotions, closed_days

DAYS = pd.date_range("2026-09-28", "2026-11-29", freq="D")  # Monday 28 September .. Sunday 29 November: 9 weeks
ORIGIN = date(2026, 11, 22)  # the last day of history; the week after is ahead
NO_CALENDAR = pd.DataFrame(columns=["store_id", "day", "weekday", "open"])


def calendar(*rows: tuple) -> pd.DataFrame:
    """(store_id, day, weekday, open) rows; store '' is every store."""
    return pd.DataFrame(
        [{"store_id": store, "day": pd.Timestamp(day) if day else None, "weekday": weekday, "open": open_}
         for store, day, weekday, open_ in rows],
        columns=["store_id", "day", "weekday", "open"],
    )  # fmt: skip


def selling(*silent: str) -> np.ndarray:
    """A sale every past day but the `silent` ones; nothing ahead (it has not happened)."""
    sold = np.asarray(pd.Timestamp(ORIGIN) >= DAYS)
    sold[DAYS.isin(pd.to_datetime(list(silent)))] = False
    return sold


def shut(closed: pd.Series) -> list[str]:
    return [day.date().isoformat() for day in closed.index[closed.to_numpy()]]


def test_a_shop_is_closed_on_a_silent_day_only_when_its_same_weekdays_around_all_sold():
    # Wednesday 4 November sold nothing, every Wednesday around it did: a holiday, a stock-take. Tuesday 10 and
    # 17 November both sold nothing: each one's neighbours include a silent Tuesday, so neither is a closure.
    sold = selling("2026-11-04", "2026-11-10", "2026-11-17")
    closed = closed_days(DAYS, ORIGIN, {"S1": sold}, {"S1": "store"}, NO_CALENDAR)
    assert shut(closed["S1"]) == ["2026-11-04"]
    assert shut(closed[CHAIN]) == ["2026-11-04"]  # its only store shut: the chain was


def test_a_channel_or_a_store_without_enough_neighbours_is_never_inferred_closed():
    sold = selling("2026-11-04")
    closed = closed_days(DAYS, ORIGIN, {"East": sold, "S1": sold}, {"East": "channel", "S1": None}, NO_CALENDAR)
    assert shut(closed["East"]) == []  # a region with no order sold nothing; it was not closed
    assert shut(closed["S1"]) == ["2026-11-04"]  # kind blank: a shop
    assert shut(closed[CHAIN]) == []  # East was open
    # Sunday 22 November, the latest day, has four Sundays before it and none after: still enough (three).
    # A store that opened on Tuesday 10 November has two Tuesdays since: its silent 17th is a zero.
    late = selling("2026-11-22", "2026-11-17")
    late[pd.Timestamp("2026-11-10") > DAYS] = False
    closed = closed_days(DAYS, ORIGIN, {"S1": selling("2026-11-22"), "S3": late}, {}, NO_CALENDAR)
    assert shut(closed["S1"]) == ["2026-11-22"] and shut(closed["S3"]) == []


def test_the_calendar_says_when_a_store_is_closed_and_a_date_outranks_a_weekday():
    rows = calendar(
        ("", "2026-11-11", None, False),  # every store, one date
        ("S2", None, "Sunday", False),  # S2 every Sunday...
        ("S2", "2026-11-29", None, True),  # ...but open on Sunday 29 November
        ("S1", "2026-11-11", None, True),  # S1 open on the chain's closed date: its own row outranks it
    )
    sold = {"S1": selling("2026-11-11"), "S2": selling(*[d.date().isoformat() for d in DAYS if d.day_of_week == 6])}
    closed = closed_days(DAYS, ORIGIN, sold, {"S1": "store", "S2": "store"}, rows)
    sundays = [d.date().isoformat() for d in DAYS if d.day_of_week == 6 and d.date() != date(2026, 11, 29)]
    assert shut(closed["S2"]) == sorted([*sundays, "2026-11-11"])
    assert shut(closed["S1"]) == []  # open by its own row (and no inference against the calendar)
    assert shut(closed[CHAIN]) == []  # S1 open on the 11th, S2 on Sundays... S1 sells on Sundays


def test_closures_ahead_come_from_the_calendar_only_and_from_a_weekday_it_closed_every_week():
    # Rossmann-like: a closed row per Sunday, dated, for the eight weeks of history; Monday 23 November known.
    past_sundays = [d.date().isoformat() for d in DAYS if d.day_of_week == 6 and d.date() <= ORIGIN]
    rows = calendar(*[("S1", day, None, False) for day in past_sundays], ("S1", "2026-11-23", None, False))
    sold = {"S1": selling(*past_sundays), "S2": selling()}
    closed = closed_days(DAYS, ORIGIN, sold, {"S1": "store", "S2": "store"}, rows)
    ahead = closed["S1"][closed["S1"].index > pd.Timestamp(ORIGIN)]
    assert shut(ahead) == ["2026-11-23", "2026-11-29"]  # the dated Monday, and Sunday: closed 8 weeks running
    assert shut(closed["S2"]) == []  # nothing ahead is guessed
    assert shut(closed[CHAIN][closed[CHAIN].index > pd.Timestamp(ORIGIN)]) == []  # S2 is open


def test_a_promotion_covers_its_product_category_store_or_everything():
    promotions = pd.DataFrame(
        [("P1", "", "S1", date(2026, 11, 23), date(2026, 11, 24)),
         ("", "Tea", "", date(2026, 11, 26), date(2026, 11, 26))],
        columns=["product_id", "category", "store_id", "starts_on", "ends_on"],
    )  # fmt: skip
    ahead = pd.date_range("2026-11-23", "2026-11-29", freq="D")

    def days_on(**covers: str) -> list[int]:
        on = Promotions(promotions).covering(ahead, **covers)
        return [] if on is None else [day.day for day in ahead[on.to_numpy() > 0]]

    assert days_on(store="S1", product="P1", category="Coffee") == [23, 24]
    assert days_on(store="S2", product="P1", category="Coffee") == []  # P1's promotion is S1's
    assert days_on(store="S2", product="P7", category="Tea") == [26]  # every Tea product, every store
    assert days_on(category="Tea") == [26] and days_on(category="Coffee") == []
    # A store, the total: moved only by a promotion of everything (one product, one category barely move them).
    assert days_on(store="S1") == [] and days_on() == []
    promotions = pd.concat([promotions, pd.DataFrame(
        [("", "", "S2", date(2026, 11, 28), date(2026, 11, 29))], columns=promotions.columns
    )], ignore_index=True)  # fmt: skip
    assert days_on(store="S2") == [28, 29] and days_on(store="S1") == [] and days_on() == [28, 29]
    assert days_on(category="Coffee") == [28, 29] and days_on(store="S1", product="P1", category="Coffee") == [23, 24]
