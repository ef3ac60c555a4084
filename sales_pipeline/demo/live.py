"""The synthetic retailer carried on past its last day: every later day's trade, the same whenever asked.

`generate_retailer` ends on a fixed day (so the sample workbooks keep their bytes); a demo that runs for
weeks needs a back office where business goes on. `LiveTrade` reads what the history's last weeks say
(each store's lines per weekday and its level of the last 10 days, its product mix, its regular customers,
basket sizes, quantities and hours of trade) and draws any later day from a generator seeded by
(seed, day) alone, so a day's lines never depend on which days were asked for before, or when.

The planted situations carry on: the store whose sales dropped stays at its dropped level, the churned
customers stay away (only customers seen in the last weeks buy), and the product that ran short in its
store sells what its last count left and then nothing (the count is not renewed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from sales_pipeline.demo.retailer import HOLIDAYS, Retailer, line_revenue

_LIVE_STREAM = 0x11FE  # a day's draws: default_rng([seed, _LIVE_STREAM, day ordinal])
_PROFILE_DAYS = 56  # the weeks of history a store's weekday pattern, mix and regulars are read from
_LEVEL_DAYS = 10  # a store carries on at its level of the history's last days (the drop store: dropped)


@dataclass(frozen=True)
class _Store:
    store_id: str
    lines_per_weekday: np.ndarray  # expected lines on Monday..Sunday (0: closed that weekday)
    mix: np.ndarray  # probability of each product in a line
    regulars: np.ndarray  # customer ids seen lately
    regular_p: np.ndarray
    anonymous_share: float  # of orders
    minutes: np.ndarray  # order times (minutes after midnight, local) seen lately, drawn from


class LiveTrade:
    """Sales lines, in the template's columns, of any day after the retailer's last (`end`)."""

    def __init__(self, retailer: Retailer, seed: int, end: date) -> None:
        self.seed, self.end = seed, end
        sales = retailer.sales
        day = sales["sold_at"].dt.normalize()
        recent = sales[day > pd.Timestamp(end - timedelta(days=_PROFILE_DAYS))]
        orders = recent.drop_duplicates("order_id")
        self.product_ids = retailer.products["product_id"].to_numpy(dtype=object)
        self.unit_price = retailer.products["unit_price"].to_numpy(dtype=float)
        self.basket = _distribution(recent.groupby("order_id").size())
        self.quantity = _distribution(recent["quantity"])
        known = recent["customer_id"].notna() & ~recent["promotion"]
        self.loyalty_share = float((recent.loc[known, "discount"] > 0).mean()) if known.any() else 0.0
        self.stores = [
            _store(store_id, recent, orders, end, self.product_ids) for store_id in retailer.stores["store_id"]
        ]
        planted = retailer.planted
        last_count = retailer.stock[
            (retailer.stock["product_id"] == planted.stockout_product_id)
            & (retailer.stock["store_id"] == planted.stockout_store_id)
        ].sort_values("as_of")
        self.short = (planted.stockout_store_id, planted.stockout_product_id, int(last_count["on_hand"].iloc[-1]))
        self._days: dict[date, pd.DataFrame] = {}
        self._draws: dict[date, pd.DataFrame] = {}  # before the short shelf: what each day's customers asked for
        self._lock = threading.Lock()

    def day(self, day: date) -> pd.DataFrame:
        """Every line of `day` (local business day), ordered by store, time and order; empty up to `end`."""
        with self._lock:
            if day not in self._days:
                self._days[day] = self._with_short_shelf(day)
            return self._days[day]

    def _with_short_shelf(self, day: date) -> pd.DataFrame:
        """The day's lines, less the short product's in its store once the last count's units are sold."""
        lines = self._drawn(day)
        store_id, product_id, on_hand = self.short
        sold_before = sum(
            int(_pair_units(self._drawn(d), store_id, product_id).sum())
            for d in _days_between(self.end + timedelta(days=1), day)
        )
        pair = (lines["store_id"] == store_id) & (lines["product_id"] == product_id)
        units = np.where(pair, lines["quantity"], 0)
        gone = pair & (sold_before + np.cumsum(units) > on_hand)
        return lines[~gone].reset_index(drop=True)

    def _drawn(self, day: date) -> pd.DataFrame:
        if day not in self._draws:
            self._draws[day] = self._draw(day)
        return self._draws[day]

    def _draw(self, day: date) -> pd.DataFrame:
        if day <= self.end:
            return _frame([])
        rng = np.random.default_rng([self.seed, _LIVE_STREAM, day.toordinal()])
        holiday = (day.month, day.day) in HOLIDAYS
        parts = [] if holiday else [self._store_day(rng, store, day) for store in self.stores]
        return _frame(parts)

    def _store_day(self, rng: np.random.Generator, store: _Store, day: date) -> pd.DataFrame:
        mean_basket = float((self.basket[0] * self.basket[1]).sum())
        n_orders = int(rng.poisson(store.lines_per_weekday[day.weekday()] / mean_basket))
        minute = np.sort(rng.choice(store.minutes, n_orders))
        known = (rng.random(n_orders) >= store.anonymous_share) & (len(store.regulars) > 0)
        customer = (
            np.where(known, rng.choice(store.regulars, n_orders, p=store.regular_p), None)
            if known.any()
            else [None] * n_orders
        )
        rows = []
        for k in range(n_orders):
            size = int(rng.choice(self.basket[0], p=self.basket[1]))
            products = rng.choice(len(store.mix), min(size, int((store.mix > 0).sum())), replace=False, p=store.mix)
            loyal = bool(known[k]) and rng.random() < self.loyalty_share
            sold_at = pd.Timestamp(day) + pd.Timedelta(minutes=int(minute[k]))
            for line, product in enumerate(products, start=1):
                rows.append(
                    {
                        "order_id": f"O-{day:%Y%m%d}-{store.store_id}-{k + 1:04d}",
                        "line_number": line,
                        "sold_at": sold_at,
                        "store_id": store.store_id,
                        "customer_id": customer[k],
                        "product_id": self.product_ids[product],
                        "quantity": int(rng.choice(self.quantity[0], p=self.quantity[1])),
                        "unit_price": float(self.unit_price[product]),
                        "discount": 0.05 if loyal else 0.0,
                    }
                )
        return pd.DataFrame(rows)


def _store(store_id: str, recent: pd.DataFrame, orders: pd.DataFrame, end: date, product_ids: np.ndarray) -> _Store:
    """What a store's last weeks say: lines per weekday at its latest level, mix, regulars, hours."""
    mine = recent[recent["store_id"] == store_id]
    day = mine["sold_at"].dt.normalize()
    lines_per_day = mine.groupby(day).size()
    first = pd.Timestamp(end - timedelta(days=_PROFILE_DAYS - 1))
    every_day = pd.date_range(first, pd.Timestamp(end), freq="D")
    lines_per_day = lines_per_day.reindex(every_day, fill_value=0)
    open_days = every_day[[(d.month, d.day) not in HOLIDAYS for d in every_day]]
    by_weekday = lines_per_day[open_days].groupby(open_days.weekday).mean().reindex(range(7), fill_value=0.0)
    # The level of the last days against what the weekday pattern expected of them (the dropped store: ~0.55).
    last = open_days[open_days > pd.Timestamp(end - timedelta(days=_LEVEL_DAYS))]
    expected = float(by_weekday.to_numpy()[last.weekday].sum())
    level = float(lines_per_day[last].sum()) / expected if expected else 1.0
    counts = mine["product_id"].value_counts().reindex(product_ids, fill_value=0).to_numpy(dtype=float)
    regulars = mine.loc[mine["customer_id"].notna()].drop_duplicates("order_id")["customer_id"].value_counts()
    my_orders = orders[orders["store_id"] == store_id]
    times = my_orders["sold_at"]
    return _Store(
        store_id=str(store_id),
        lines_per_weekday=by_weekday.to_numpy() * level,
        mix=counts / counts.sum(),
        regulars=regulars.index.to_numpy(dtype=object),
        regular_p=(regulars / regulars.sum()).to_numpy(),
        anonymous_share=float(my_orders["customer_id"].isna().mean()),
        minutes=(times.dt.hour * 60 + times.dt.minute).to_numpy(),
    )


def _distribution(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, probabilities) of what was seen."""
    shares = values.value_counts(normalize=True).sort_index()
    return shares.index.to_numpy(), shares.to_numpy()


def _pair_units(lines: pd.DataFrame, store_id: str, product_id: str) -> pd.Series:
    return lines.loc[(lines["store_id"] == store_id) & (lines["product_id"] == product_id), "quantity"]


def _days_between(first: date, stop: date) -> list[date]:
    """first, first + 1, ... up to the day before `stop`."""
    return [first + timedelta(days=k) for k in range((stop - first).days)]


_COLUMNS = ["order_id", "line_number", "sold_at", "store_id", "customer_id", "product_id", "quantity", "unit_price",
            "discount"]  # fmt: skip


def _frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The lines as the Sales sheet has them (no promotions after the history: none were planned)."""
    parts = [part for part in parts if len(part)]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_COLUMNS)
    frame = frame.astype({"sold_at": "datetime64[us]", "line_number": np.int64, "quantity": np.int64})
    frame = frame.astype({"unit_price": float, "discount": float})
    frame["promotion"] = False
    frame["revenue"] = line_revenue(frame["quantity"].to_numpy(), frame["unit_price"].to_numpy(), frame["discount"])
    frame["unit_cost"] = None
    return frame
