"""What is known about a day besides its sales: whether a store was (or will be) closed, and promotions.

Closed days
-----------
A closed day is known, not guessed from a zero:

- **The store calendar** (``core.store_calendar``, the workbook's Calendar sheet, the API's
  ``/store-calendar``): a date or every such weekday on which a store (or, with store ``''``, every
  store) is closed, or open by exception. A date outranks a weekday, a store's own row outranks an
  every-store row. It is the only source of closures ahead: its own rows for those days, and a
  weekday it closed the store on in each of the last ``REGULAR_WEEKS`` weeks (Rossmann's CSV gives a
  closed row per Sunday, never "every Sunday": the next Sunday is closed too).
- **Inferred, in the past only, and only for a physical store** (``core.stores.kind`` 'store' or
  blank): a day on which the store sold nothing at all while each of its other same weekdays within
  four weeks either side (at least three of them, within the store's history) had sales: a public
  holiday, a stock-take. A region, a channel (kind 'channel'), a category or a product with no sale
  is a zero, never a closure: Superstore's regions are channels, and a Wednesday without an order
  there is a day that sold nothing.
- **The chain** (the total, categories and products): closed on a day on which every store is closed
  (a store counts as closed before its first sale); with no store at all, never.

Promotions
----------
``core.promotions`` rows (the Promotions sheet, the API's ``/promotions``): a product, every product
of a category, or every product (both blank), in a store or every store (``''``), from ``starts_on``
to ``ends_on``. A series is on promotion on a day when a promotion of all of it runs that day: a
product when one names it, its category or everything (in any of its stores); a category when one
covers the category or everything; a store when one covers everything in it (Rossmann's Promo); the
total when one covers everything somewhere. One product on promotion is an input to that product's
forecast, not to its store's or the total's, which it barely moves.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.excel.layout import WEEKDAYS
from sales_pipeline.warehouse.db import read_frame

CHAIN = ""  # the calendar of the total, categories and products
NEIGHBOUR_WEEKS = 4  # same weekdays either side that must all have sold for a zero to be a closure
REGULAR_WEEKS = 8  # a weekday the calendar closed this many weeks running is closed ahead
MIN_NEIGHBOURS = 3


def closed_days(
    days: pd.DatetimeIndex,
    origin: date,
    sold: dict[str, np.ndarray],
    kinds: dict[str, str | None],
    calendar: pd.DataFrame,
) -> dict[str, pd.Series]:
    """Per store and for the chain (``CHAIN``): closed (True) or open per day of `days` (module rules).

    `sold`: per store, a bool array over `days` (a sale that day); `kinds`: 'store', 'channel' or None
    per store; `calendar`: rows of core.store_calendar (store_id, day, weekday, open). Days after
    `origin` are closed only when the calendar says so.
    """
    past = np.asarray(days <= pd.Timestamp(origin))
    closed: dict[str, pd.Series] = {}
    for store, sales in sold.items():
        known_closed, known_open = _known(days, calendar, store)
        shut = known_closed | _closed_every_week(days, past, known_closed, known_open)
        if kinds.get(store) != "channel":
            unknown = past & ~known_closed & ~known_open
            shut |= unknown & _inferred(sales, ~known_closed & past)
        closed[store] = pd.Series(shut, index=days)
    chain = np.ones(len(days), dtype=bool) if closed else np.zeros(len(days), dtype=bool)
    for store, shut in closed.items():
        active = np.asarray(days >= days[np.argmax(sold[store])]) if sold[store].any() else np.zeros(len(days), bool)
        chain &= shut.to_numpy() | (~active & past)
    closed[CHAIN] = pd.Series(chain, index=days)
    return closed


def _known(days: pd.DatetimeIndex, calendar: pd.DataFrame, store: str) -> tuple[np.ndarray, np.ndarray]:
    """(closed, open) by the calendar: every-store rows, then the store's own; weekdays, then dates."""
    state = np.full(len(days), np.nan)  # 1 closed, 0 open, NaN not said
    weekday = np.asarray(days.day_of_week)
    for rows in (calendar[calendar["store_id"] == ""], calendar[calendar["store_id"] == store]):
        for row in rows[rows["weekday"].notna() & rows["day"].isna()].itertuples(index=False):
            state[weekday == WEEKDAYS.index(row.weekday)] = 0.0 if row.open else 1.0
    for rows in (calendar[calendar["store_id"] == ""], calendar[calendar["store_id"] == store]):
        dated = rows[rows["day"].notna()]
        where = days.get_indexer(pd.to_datetime(dated["day"]))
        state[where[where >= 0]] = np.where(dated["open"].to_numpy(dtype=bool)[where >= 0], 0.0, 1.0)
    return state == 1.0, state == 0.0


def _closed_every_week(
    days: pd.DatetimeIndex, past: np.ndarray, known_closed: np.ndarray, known_open: np.ndarray
) -> np.ndarray:
    """Days ahead on a weekday the calendar closed in each of its last REGULAR_WEEKS weeks (unless open then)."""
    weekday = np.asarray(days.day_of_week)
    ahead = np.zeros(len(days), dtype=bool)
    for day_of_week in range(7):
        recent = np.flatnonzero(past & (weekday == day_of_week))[-REGULAR_WEEKS:]
        if len(recent) == REGULAR_WEEKS and known_closed[recent].all():
            ahead |= ~past & (weekday == day_of_week) & ~known_open
    return ahead


def _inferred(sales: np.ndarray, comparable: np.ndarray) -> np.ndarray:
    """Days without a sale whose other same weekdays within four weeks either side all sold (at least three).

    `comparable`: days that may serve as a neighbour (in the past and not a known closure); days before
    the store's first sale are never neighbours.
    """
    started = np.cumsum(sales) > 0
    usable = comparable & started
    neighbours = np.zeros(len(sales), dtype=int)
    selling = np.zeros(len(sales), dtype=int)
    for weeks in range(1, NEIGHBOUR_WEEKS + 1):
        for shift in (7 * weeks, -7 * weeks):
            other_usable = _shifted(usable, shift)
            neighbours += other_usable
            selling += other_usable & _shifted(sales, shift)
    return ~sales & started & (neighbours >= MIN_NEIGHBOURS) & (selling == neighbours)


def _shifted(values: np.ndarray, shift: int) -> np.ndarray:
    """values[i + shift] at i, False beyond the ends."""
    out = np.zeros(len(values), dtype=bool)
    if shift > 0:
        out[:-shift] = values[shift:]
    else:
        out[-shift:] = values[:shift]
    return out


def load_closed_days(cursor: Cursor, origin: date, horizon: int) -> dict[str, pd.Series]:
    """Closed days of every store and the chain, from the first day of the marts to `origin` + `horizon`.

    Empty when the marts have no day yet.
    """
    kpis = read_frame(
        cursor,
        "SELECT scope_id AS store_id, day FROM marts.daily_kpis WHERE scope = 'store' AND day <= %s",
        (origin,),
    )
    cursor.execute("SELECT min(day) FROM marts.daily_kpis WHERE scope = 'all' AND day <= %s", (origin,))
    first = cursor.fetchone()[0]
    if first is None:
        return {}
    days = pd.date_range(first, pd.Timestamp(origin) + pd.Timedelta(days=horizon), freq="D")
    kinds = dict(read_frame(cursor, "SELECT store_id, kind FROM core.stores", ()).itertuples(index=False))
    calendar = read_frame(
        cursor, "SELECT coalesce(store_id, '') AS store_id, day, weekday, open FROM core.store_calendar", ()
    )
    sold = {
        str(store): days.isin(pd.to_datetime(frame["day"]).to_numpy())
        for store, frame in kpis.groupby("store_id", sort=True)
    }
    return closed_days(days, origin, sold, kinds, calendar)


def load_promotions(cursor: Cursor, last_day: date) -> pd.DataFrame:
    """Every promotion starting by `last_day` (product_id, category, store_id, starts_on, ends_on)."""
    return read_frame(
        cursor,
        """
        SELECT coalesce(product_id, '') AS product_id, coalesce(category, '') AS category,
               coalesce(store_id, '') AS store_id, starts_on, ends_on
        FROM core.promotions WHERE starts_on <= %s
        """,
        (last_day,),
    )


class Promotions:
    """A run's promotions, indexed once by product and by category: a run asks which cover each of its series
    (tens of thousands of products in stores), so each question looks only at the promotions that can."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.store = frame["store_id"].to_numpy(dtype=object)
        self.starts = pd.to_datetime(frame["starts_on"]).to_numpy()
        self.ends = pd.to_datetime(frame["ends_on"]).to_numpy()
        self.of_product: dict[str, list[int]] = {}
        self.of_category: dict[str, list[int]] = {}  # promotions of every product of a category ('' = of all)
        for row, (product, category) in enumerate(zip(frame["product_id"], frame["category"], strict=True)):
            (self.of_product.setdefault(product, []) if product else self.of_category.setdefault(category, [])).append(
                row
            )

    def __len__(self) -> int:
        return len(self.store)

    def covering(
        self,
        days: pd.DatetimeIndex,
        *,
        store: str | None = None,
        category: str | None = None,
        product: str | None = None,
    ) -> pd.Series | None:
        """1.0 on the days of `days` a promotion covers the series, else 0.0; None when none ever does.

        None for a filter means every one (the total: every store, category and product). A store, a category
        or the total moves as a whole only under a promotion of all its products.
        """
        rows = {*self.of_category.get("", []), *self.of_category.get(category or "", [])}
        if product is not None:
            rows.update(self.of_product.get(product, []))
        if store is not None:
            rows = {row for row in rows if self.store[row] in ("", store)}
        if not rows:
            return None
        on = np.zeros(len(days))
        values = days.to_numpy()
        for row in rows:
            on[(values >= self.starts[row]) & (values <= self.ends[row])] = 1.0
        return pd.Series(on, index=days) if on.any() else None
