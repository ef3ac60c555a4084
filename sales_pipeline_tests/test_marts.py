"""The analytics marts against the real embedded PostgreSQL, on small data with numbers worked out by hand.

Money is numeric in the warehouse, so expected values are Decimals written as the column rounds them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from sales_pipeline.analytics import marts
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import query

# --- helpers ---------------------------------------------------------------------------------


def run(url: str, refresh: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One refresh in its own transaction, as an asset would run it."""
    with transaction(url) as cursor:
        return refresh(cursor, *args, **kwargs)


def rows(url: str, table: str, order_by: str) -> list[tuple]:
    """Every row of a mart but its computed_at, in a stable order."""
    with transaction(url) as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY {order_by}")
        keep = [i for i, column in enumerate(cursor.description) if column.name != "computed_at"]
        return [tuple(row[i] for i in keep) for row in cursor.fetchall()]


def assert_idempotent(url: str, table: str, order_by: str, refresh: Callable[..., Any], *args: Any) -> None:
    """Running the refresh again for the same range writes the same rows (count and content)."""
    before = rows(url, table, order_by)
    run(url, refresh, *args)
    assert rows(url, table, order_by) == before


def add_products(url: str, *products: tuple) -> None:
    """(product_id, name, category, unit_cost, reorder_point)"""
    with transaction(url) as cursor:
        cursor.executemany(
            "INSERT INTO core.products (product_id, name, category, unit_cost, reorder_point, source)"
            " VALUES (%s, %s, %s, %s, %s, 'test')",
            products,
        )


def add_sales(url: str, *lines: tuple) -> None:
    """(order_id, line_number, sold_at, store_id, customer_id, product_id, quantity, unit_price, discount)

    The revenue is the net line amount, computed as the importer does; sale_date is not read by the marts.
    """
    with transaction(url) as cursor:
        cursor.executemany(
            "INSERT INTO core.sales (order_id, line_number, sold_at, sale_date, store_id, customer_id, product_id,"
            " quantity, unit_price, discount, revenue, source)"
            " VALUES (%(o)s, %(n)s, %(at)s, %(at)s::timestamptz::date, %(store)s, %(customer)s, %(product)s,"
            " %(q)s, %(price)s, %(discount)s, round(%(q)s * %(price)s::numeric * (1 - %(discount)s::numeric), 2),"
            " 'test')",
            [
                dict(zip(("o", "n", "at", "store", "customer", "product", "q", "price", "discount"), line, strict=True))
                for line in lines
            ],
        )


def add_daily_kpis(url: str, scope: str, scope_id: str, first: str, last: str, revenue: int, units: int = 1) -> None:
    """The same revenue on every day first..last: trends and top products read only revenue and units."""
    with transaction(url) as cursor:
        cursor.execute(
            "INSERT INTO marts.daily_kpis (day, scope, scope_id, revenue, units, orders, customers,"
            " revenue_with_cost, discount_given)"
            " SELECT d::date, %s, %s, %s, %s, 1, 0, 0, 0 FROM generate_series(%s::date, %s::date, interval '1 day') d",
            (scope, scope_id, revenue, units, first, last),
        )


KPI_COLUMNS = (
    "revenue, units, orders, customers, average_order_value, revenue_with_cost, gross_margin, margin_rate,"
    " discount_given"
)


def kpis(url: str) -> dict[tuple[date, str, str], tuple]:
    found = query(url, f"SELECT day, scope, scope_id, {KPI_COLUMNS} FROM marts.daily_kpis")
    return {(day, scope, scope_id): tuple(values) for day, scope, scope_id, *values in found}


# --- daily KPIs ------------------------------------------------------------------------------


@pytest.fixture
def shop(empty_warehouse: str) -> str:
    """Two stores, four products (B and C without cost; C alone in 'tea'), sales on 2 and 4 November."""
    url = empty_warehouse
    add_products(
        url,
        ("A", "Arabica", "coffee", 4, 10),
        ("B", "Blend", "coffee", None, 5),  # cost unknown, in a category with a known-cost product
        ("C", "Chai", "tea", None, 5),  # cost unknown, the only product of its category
        ("D", "Digestive", "snacks", D("1.5"), 5),
    )
    with transaction(url) as cursor:
        cursor.execute(
            "INSERT INTO core.stores (store_id, name, timezone, source) VALUES"
            " ('S1', 'London', 'Europe/London', 'test'), ('S2', 'New York', 'America/New_York', 'test')"
        )
    add_sales(
        url,
        # 2 November (UTC)
        ("O1", 1, "2026-11-02 09:00+00", "S1", "K1", "A", 2, 10, 0),  # 20.00
        ("O1", 2, "2026-11-02 09:00+00", "S1", "K1", "B", 1, 8, D("0.25")),  # 8 x 0.75 = 6.00
        ("O2", 1, "2026-11-02 15:00+00", "S2", None, "C", 3, 5, 0),  # 15.00, anonymous
        ("O3", 1, "2026-11-02 16:00+00", "S2", "K2", "A", 1, 10, D("0.10")),  # 9.00
        # 3 November: no sales at all
        # 4 November
        ("O4", 1, "2026-11-04 10:00+00", "S1", "K1", "D", 4, D("2.50"), 0),  # 10.00
        ("O4", 2, "2026-11-04 10:00+00", "S1", "K1", "C", 1, 5, 0),  # 5.00
    )
    return url


def test_daily_kpis_by_hand(shop: str) -> None:
    written = run(shop, marts.refresh_daily_kpis, date(2026, 11, 2), date(2026, 11, 4), "UTC")
    found = kpis(shop)
    # 2 November: all + 2 stores + 2 categories + 3 products = 8 rows; 4 November: 1 + 1 + 2 + 2 = 6 rows.
    assert written == len(found) == 14
    nov2, nov3, nov4 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)
    assert not [key for key in found if key[0] == nov3]  # a day without sales has no rows

    # columns: revenue, units, orders, customers, average_order_value, revenue_with_cost, gross_margin,
    # margin_rate, discount_given
    expected = {
        # revenue 20 + 6 + 15 + 9 = 50; units 2 + 1 + 3 + 1 = 7; orders O1, O2, O3 = 3; customers K1, K2 = 2
        # (O2 is anonymous); AOV 50 / 3 = 16.67; with cost: the A lines 20 + 9 = 29, cost (2 + 1) x 4 = 12,
        # margin 29 - 12 = 17, rate 17 / 29 = 0.58621; discount: list 20 + 8 + 15 + 10 = 53, minus 50 = 3.
        (nov2, "all", ""): (D("50.00"), 7, 3, 2, D("16.67"), D("29.00"), D("17.00"), D("0.5862"), D("3.00")),
        # S1 = O1: 20 + 6 = 26, units 3, 1 order, K1; with cost 20, margin 20 - 8 = 12, rate 0.6; list 28 - 26 = 2.
        (nov2, "store", "S1"): (D("26.00"), 3, 1, 1, D("26.00"), D("20.00"), D("12.00"), D("0.6000"), D("2.00")),
        # S2 = O2 + O3: 15 + 9 = 24, units 4, 2 orders, K2 only; AOV 12; with cost 9, margin 9 - 4 = 5,
        # rate 5 / 9 = 0.5556; list 15 + 10 = 25 - 24 = 1.
        (nov2, "store", "S2"): (D("24.00"), 4, 2, 1, D("12.00"), D("9.00"), D("5.00"), D("0.5556"), D("1.00")),
        # coffee = A + B: 20 + 6 + 9 = 35, units 4, orders O1, O3, customers K1, K2, AOV 17.50; B has no cost,
        # so it is out of revenue_with_cost (29) and the margin is A's: 17, 17 / 29; list 20 + 8 + 10 = 38 - 35 = 3.
        (nov2, "category", "coffee"): (D("35.00"), 4, 2, 2, D("17.50"), D("29.00"), D("17.00"), D("0.5862"), D("3.00")),
        # tea = C alone, cost unknown: margin and rate NULL, revenue_with_cost 0; O2 is anonymous: 0 customers.
        (nov2, "category", "tea"): (D("15.00"), 3, 1, 0, D("15.00"), D("0.00"), None, None, D("0.00")),
        # A: 20 + 9 = 29, units 3, orders O1, O3, AOV 14.50, margin 29 - 12 = 17; list 20 + 10 = 30 - 29 = 1.
        (nov2, "product", "A"): (D("29.00"), 3, 2, 2, D("14.50"), D("29.00"), D("17.00"), D("0.5862"), D("1.00")),
        (nov2, "product", "B"): (D("6.00"), 1, 1, 1, D("6.00"), D("0.00"), None, None, D("2.00")),
        (nov2, "product", "C"): (D("15.00"), 3, 1, 0, D("15.00"), D("0.00"), None, None, D("0.00")),
        # 4 November = O4: D 10 + C 5 = 15, units 5, 1 order, K1; with cost D's 10, cost 4 x 1.5 = 6, margin 4,
        # rate 0.4; no discount.
        (nov4, "all", ""): (D("15.00"), 5, 1, 1, D("15.00"), D("10.00"), D("4.00"), D("0.4000"), D("0.00")),
        (nov4, "store", "S1"): (D("15.00"), 5, 1, 1, D("15.00"), D("10.00"), D("4.00"), D("0.4000"), D("0.00")),
        (nov4, "category", "snacks"): (D("10.00"), 4, 1, 1, D("10.00"), D("10.00"), D("4.00"), D("0.4000"), D("0.00")),
        (nov4, "category", "tea"): (D("5.00"), 1, 1, 1, D("5.00"), D("0.00"), None, None, D("0.00")),
        (nov4, "product", "D"): (D("10.00"), 4, 1, 1, D("10.00"), D("10.00"), D("4.00"), D("0.4000"), D("0.00")),
        (nov4, "product", "C"): (D("5.00"), 1, 1, 1, D("5.00"), D("0.00"), None, None, D("0.00")),
    }
    assert found == expected

    assert_idempotent(
        shop, "marts.daily_kpis", "day, scope, scope_id",
        marts.refresh_daily_kpis, date(2026, 11, 2), date(2026, 11, 4), "UTC",
    )  # fmt: skip


def test_a_lines_own_cost_comes_before_its_products(shop: str) -> None:
    # O1's A line was bought at 3 (the product's current cost is 4); O2's C line at 2 (C has no cost).
    with transaction(shop) as cursor:
        cursor.execute("UPDATE core.sales SET unit_cost = 3 WHERE (order_id, line_number) = ('O1', 1)")
        cursor.execute("UPDATE core.sales SET unit_cost = 2 WHERE order_id = 'O2'")
    run(shop, marts.refresh_daily_kpis, date(2026, 11, 2), date(2026, 11, 4), "UTC")
    found = kpis(shop)
    nov2 = date(2026, 11, 2)

    # revenue_with_cost, gross_margin, margin_rate
    margins = {key[1:]: values[5:8] for key, values in found.items() if key[0] == nov2}
    # all: with cost A's 29 + C's 15 = 44; cost 2 x 3 (own) + 1 x 4 (A's) + 3 x 2 (own) = 16; 28 / 44.
    assert margins["all", ""] == (D("44.00"), D("28.00"), D("0.6364"))
    # A: 29, cost 6 + 4 = 10, margin 19, 19 / 29 = 0.65517.
    assert margins["product", "A"] == (D("29.00"), D("19.00"), D("0.6552"))
    # C: its line cost makes its margin known: 15 - 6 = 9, 0.6. B has neither cost: still unknown.
    assert margins["product", "C"] == margins["category", "tea"] == (D("15.00"), D("9.00"), D("0.6000"))
    assert margins["product", "B"] == (D("0.00"), None, None)
    # 4 November has no line cost: the products' costs, as before.
    assert found[date(2026, 11, 4), "all", ""][5:8] == (D("10.00"), D("4.00"), D("0.4000"))


def test_daily_kpis_replace_only_their_range(shop: str) -> None:
    run(shop, marts.refresh_daily_kpis, date(2026, 11, 2), date(2026, 11, 4), "UTC")
    # A late correction of 4 November: refreshing that day alone leaves 2 November as it was.
    with transaction(shop) as cursor:
        cursor.execute("UPDATE core.sales SET quantity = 8, revenue = 20.00 WHERE order_id = 'O4' AND line_number = 1")
    assert run(shop, marts.refresh_daily_kpis, date(2026, 11, 4), date(2026, 11, 4), "UTC") == 6
    found = kpis(shop)
    assert len(found) == 14
    assert found[date(2026, 11, 4), "all", ""][:2] == (D("25.00"), 9)  # 20 + 5, 8 + 1
    assert found[date(2026, 11, 2), "all", ""][:2] == (D("50.00"), 7)


def test_day_boundaries_follow_the_pipeline_time_zone(empty_warehouse: str) -> None:
    url = empty_warehouse
    add_products(url, ("A", "Arabica", "coffee", 4, 10))
    # 23:30 in New York on 2 November 2026 (EST, UTC-5, since DST ended on 1 November) = 04:30 UTC on 3 November.
    add_sales(url, ("NY1", 1, "2026-11-02 23:30-05", "NY", "K1", "A", 1, 10, 0))

    run(url, marts.refresh_daily_kpis, date(2026, 11, 2), date(2026, 11, 3), "UTC")
    assert query(url, "SELECT day, revenue FROM marts.daily_kpis WHERE scope = 'all'") == [
        (date(2026, 11, 3), D("10.00"))
    ]
    run(url, marts.refresh_daily_kpis, date(2026, 11, 2), date(2026, 11, 3), "America/New_York")
    assert query(url, "SELECT day, revenue FROM marts.daily_kpis WHERE scope = 'all'") == [
        (date(2026, 11, 2), D("10.00"))
    ]
    # A one-day refresh selects the sale between the zone's midnights too (4 rows: all, store, category, product).
    assert run(url, marts.refresh_daily_kpis, date(2026, 11, 2), date(2026, 11, 2), "America/New_York") == 4
    assert run(url, marts.refresh_daily_kpis, date(2026, 11, 2), date(2026, 11, 2), "UTC") == 0
    assert run(url, marts.refresh_daily_kpis, date(2026, 11, 3), date(2026, 11, 3), "UTC") == 4


# --- sales trends ----------------------------------------------------------------------------

TRENDS_FIRST, TRENDS_LAST = date(2026, 11, 15), date(2026, 11, 30)


@pytest.fixture
def series(empty_warehouse: str) -> str:
    """Daily revenue per scope, written straight into marts.daily_kpis."""
    url = empty_warehouse
    # all: 50 a day a year ago, nothing in between, 100 a day from October, 200 a day from 23 November,
    # except 26 November, which has no row (no sales: counts as 0).
    add_daily_kpis(url, "all", "", "2025-11-01", "2025-12-31", 50)
    add_daily_kpis(url, "all", "", "2026-10-01", "2026-11-22", 100)
    add_daily_kpis(url, "all", "", "2026-11-23", "2026-11-25", 200)
    add_daily_kpis(url, "all", "", "2026-11-27", "2026-11-30", 200)
    add_daily_kpis(url, "product", "steady", "2026-09-01", "2026-11-30", 10)
    add_daily_kpis(url, "product", "falling", "2026-09-01", "2026-11-20", 100)
    add_daily_kpis(url, "product", "falling", "2026-11-21", "2026-11-30", 50)
    add_daily_kpis(url, "product", "new", "2026-11-20", "2026-11-30", 30)
    return url


def trends(url: str) -> dict[tuple[date, str, str], tuple]:
    found = query(
        url,
        "SELECT day, scope, scope_id, revenue, ma_7, ma_28, wow_growth, mom_growth, yoy_growth, direction"
        " FROM marts.sales_trends",
    )
    return {(day, scope, scope_id): tuple(values) for day, scope, scope_id, *values in found}


def test_sales_trends_by_hand(series: str) -> None:
    written = run(series, marts.refresh_sales_trends, TRENDS_FIRST, TRENDS_LAST)
    found = trends(series)
    # 16 days for all, steady and falling; 'new' from its first sale on 20 November: 11 days.
    assert written == len(found) == 16 + 16 + 16 + 11
    assert min(day for day, _, scope_id in found if scope_id == "new") == date(2026, 11, 20)

    # columns: revenue, ma_7, ma_28, wow_growth, mom_growth, yoy_growth, direction
    # all on 30 November:
    #   7 days 24-30 Nov: 6 x 200 (26th missing = 0) = 1200 -> ma_7 171.43; the 7 days before (17-23 Nov):
    #   6 x 100 + 200 = 800 -> wow 1200 / 800 - 1 = 0.5.
    #   28 days 3-30 Nov: 20 x 100 + 7 x 200 = 3400 -> ma_28 121.43; 28 days before (6 Oct - 2 Nov): 2800
    #   -> mom 3400 / 2800 - 1 = 0.21429. A year (364 days) earlier, 4 Nov - 1 Dec 2025: 28 x 50 = 1400
    #   -> yoy 3400 / 1400 - 1 = 1.42857. wow and mom both above +5%: rising.
    assert found[date(2026, 11, 30), "all", ""] == (
        D("200.00"), D("171.43"), D("121.43"), D("0.5000"), D("0.2143"), D("1.4286"), "rising",
    )  # fmt: skip
    # all on 26 November, a day without sales: revenue 0. 7 days 20-26 Nov: 3 x 100 + 3 x 200 + 0 = 900 ->
    # ma_7 128.57; 13-19 Nov: 700 -> wow 900 / 700 - 1 = 0.28571. 28 days 30 Oct - 26 Nov: 24 x 100 + 3 x 200 =
    # 3000 -> ma_28 107.14; 2-29 Oct: 28 x 100 = 2800 -> mom 0.07143. 28 days 31 Oct - 27 Nov 2025: 27 x 50 =
    # 1350 -> yoy 3000 / 1350 - 1 = 1.22222.
    assert found[date(2026, 11, 26), "all", ""] == (
        D("0.00"), D("128.57"), D("107.14"), D("0.2857"), D("0.0714"), D("1.2222"), "rising",
    )  # fmt: skip
    # all on 22 November, before the jump: ma_7 = ma_28 = 100, wow 0. The 28 days before (28 Sep - 25 Oct) miss
    # 28-30 Sep: 25 x 100 = 2500 -> mom 2800 / 2500 - 1 = 0.12. A year before (27 Oct - 23 Nov 2025): 23 x 50 =
    # 1150 -> yoy 2800 / 1150 - 1 = 1.43478. wow 0 is within 5%, mom +12%: rising.
    assert found[date(2026, 11, 22), "all", ""] == (
        D("100.00"), D("100.00"), D("100.00"), D("0.0000"), D("0.1200"), D("1.4348"), "rising",
    )  # fmt: skip
    # steady: 10 a day since September: no growth at all; no sales a year ago: yoy NULL.
    assert found[date(2026, 11, 30), "product", "steady"] == (
        D("10.00"), D("10.00"), D("10.00"), D("0.0000"), D("0.0000"), None, "steady",
    )  # fmt: skip
    # falling: 100 a day, 50 from 21 November. 24-30 Nov: 7 x 50 = 350; 17-23 Nov: 4 x 100 + 3 x 50 = 550
    # -> wow 350 / 550 - 1 = -0.36364. 3-30 Nov: 18 x 100 + 10 x 50 = 2300 -> ma_28 82.14; 6 Oct - 2 Nov: 2800
    # -> mom 2300 / 2800 - 1 = -0.17857. Both below -5%: falling.
    assert found[date(2026, 11, 30), "product", "falling"] == (
        D("50.00"), D("50.00"), D("82.14"), D("-0.3636"), D("-0.1786"), None, "falling",
    )  # fmt: skip
    # new: 30 a day since 20 November. 24-30 Nov: 210 -> ma_7 30; 17-23 Nov: 4 x 30 = 120 -> wow 0.75.
    # 3-30 Nov: 11 x 30 = 330 -> ma_28 11.79; nothing the month before: mom NULL. First sale 10 days ago: new.
    assert found[date(2026, 11, 30), "product", "new"] == (
        D("30.00"), D("30.00"), D("11.79"), D("0.7500"), None, None, "new",
    )  # fmt: skip
    # its first day: 20 Nov alone -> ma_7 30 / 7 = 4.29, ma_28 30 / 28 = 1.07, nothing before: growth NULL.
    assert found[date(2026, 11, 20), "product", "new"] == (
        D("30.00"), D("4.29"), D("1.07"), None, None, None, "new",
    )  # fmt: skip

    assert_idempotent(
        series, "marts.sales_trends", "day, scope, scope_id", marts.refresh_sales_trends, TRENDS_FIRST, TRENDS_LAST
    )


def test_sales_trends_of_one_day_match_a_range_refresh(series: str) -> None:
    """An incremental refresh of the last day reads only the days its windows need, and agrees."""
    run(series, marts.refresh_sales_trends, TRENDS_FIRST, TRENDS_LAST)
    full = trends(series)
    assert run(series, marts.refresh_sales_trends, TRENDS_LAST, TRENDS_LAST) == 4  # all, steady, falling, new
    assert trends(series) == full
    # and for a day of the range's first week, whose ma_28 of a year ago reaches back 391 days
    assert run(series, marts.refresh_sales_trends, TRENDS_FIRST, TRENDS_FIRST) == 3  # 'new' starts later
    assert trends(series) == full


def test_direction_from_nothing_and_back(empty_warehouse: str) -> None:
    url = empty_warehouse
    # Sold 10 a day through September, nothing in October and November, back on 30 November.
    add_daily_kpis(url, "product", "P", "2026-09-01", "2026-09-30", 10)
    add_daily_kpis(url, "product", "P", "2026-11-30", "2026-11-30", 10)
    run(url, marts.refresh_sales_trends, date(2026, 11, 29), date(2026, 11, 30))
    found = trends(url)
    # 29 November: nothing this week, month or the ones before: every growth NULL, steady (not new).
    assert found[date(2026, 11, 29), "product", "P"] == (D("0.00"), D("0.00"), D("0.00"), None, None, None, "steady")
    # 30 November: sales after an empty week and month: growth NULL (no base), but the direction is rising.
    assert found[date(2026, 11, 30), "product", "P"] == (
        D("10.00"), D("1.43"), D("0.36"), None, None, None, "rising",
    )  # fmt: skip


# --- stock health ----------------------------------------------------------------------------


def test_stock_health_by_hand(empty_warehouse: str) -> None:
    url = empty_warehouse
    add_products(
        url,
        ("A", "Arabica", "coffee", 4, 10),
        ("B", "Blend", "coffee", None, 5),
        ("C", "Chai", "tea", 2, 5),
        ("E", "Earl Grey", "tea", 1, 5),
        ("F", "Fudge", "snacks", 3, 5),
    )
    with transaction(url) as cursor:
        cursor.execute(
            "INSERT INTO core.stock (product_id, store_id, as_of, on_hand, on_order, source) VALUES"
            " ('A', 'S1', '2026-11-20', 50, 0, 'test'),"  # an older snapshot: not the latest
            " ('A', 'S1', '2026-11-30', 0, 20, 'test'),"
            " ('B', 'S1', '2026-11-30', 4, 0, 'test'),"
            " ('C', 'S1', '2026-11-30', 50, 0, 'test'),"
            " ('E', 'S1', '2026-11-30', 200, 0, 'test'),"
            " ('F', 'S1', '2026-11-30', 30, 0, 'test')"
        )
    # The demand window of a 30 November snapshot is 3-30 November (28 days).
    add_sales(
        url,
        ("a1", 1, "2026-11-03 00:00+00", "S1", None, "A", 28, 1, 0),  # first instant of the window
        ("a2", 1, "2026-11-02 23:59+00", "S1", None, "A", 100, 1, 0),  # the day before: outside
        ("a3", 1, "2026-12-01 00:00+00", "S1", None, "A", 100, 1, 0),  # after the snapshot: outside
        ("a4", 1, "2026-11-10 12:00+00", "S2", None, "A", 100, 1, 0),  # another store: outside
        ("b1", 1, "2026-11-15 12:00+00", "S1", None, "B", 14, 1, 0),
        ("c1", 1, "2026-11-15 12:00+00", "S1", None, "C", 50, 1, 0),
        ("c2", 1, "2026-11-30 23:59+00", "S1", None, "C", 6, 1, 0),  # last instant of the window
        ("e1", 1, "2026-11-15 12:00+00", "S1", None, "E", 10, 1, 0),
    )
    written = run(url, marts.refresh_stock_health, "UTC")
    found = query(
        url,
        "SELECT product_id, store_id, as_of, on_hand, on_order, reorder_point, avg_daily_demand, days_of_cover,"
        " status, stock_value_at_cost FROM marts.stock_health ORDER BY product_id, store_id",
    )
    assert written == 5
    nov30 = date(2026, 11, 30)
    assert found == [
        # on hand 0: out of stock, whatever else. 28 units / 28 = 1 a day; cover 0 / 1 = 0; value 0 x 4.
        ("A", "S1", nov30, 0, 20, 10, D("1.000"), D("0.0"), "out_of_stock", D("0.00")),
        # 4 <= reorder point 5. 14 / 28 = 0.5 a day; cover 4 / 0.5 = 8 days; cost unknown: value NULL.
        ("B", "S1", nov30, 4, 0, 5, D("0.500"), D("8.0"), "below_reorder_point", None),
        # 56 / 28 = 2 a day; cover 50 / 2 = 25 days <= 90: healthy; value 50 x 2 = 100.
        ("C", "S1", nov30, 50, 0, 5, D("2.000"), D("25.0"), "healthy", D("100.00")),
        # 10 / 28 = 0.357 a day; cover 200 x 28 / 10 = 560 days (from the exact rate, not 200 / 0.357 = 560.2)
        # > 90: overstock; value 200 x 1 = 200.
        ("E", "S1", nov30, 200, 0, 5, D("0.357"), D("560.0"), "overstock", D("200.00")),
        # nothing sold in 28 days: no cover figure, and stock that does not move is overstock; value 30 x 3.
        ("F", "S1", nov30, 30, 0, 5, D("0.000"), None, "overstock", D("90.00")),
    ]
    assert_idempotent(url, "marts.stock_health", "product_id, store_id", marts.refresh_stock_health, "UTC")

    # The overstock threshold is a setting: 560 days of cover is healthy under a 600-day one.
    run(url, marts.refresh_stock_health, "UTC", overstock_days=600)
    assert query(url, "SELECT status FROM marts.stock_health WHERE product_id = 'E'") == [("healthy",)]


# --- top products ----------------------------------------------------------------------------

AS_OF = date(2026, 11, 20)


@pytest.fixture
def rankings(empty_warehouse: str) -> str:
    """Product revenue per day for as_of 20 November 2026, units = revenue / 10.

    Periods: yesterday 20 Nov (before: 19 Nov); last 7 days 14-20 Nov (before: 7-13 Nov);
    last 30 days 22 Oct - 20 Nov (before: 22 Sep - 21 Oct); month to date 1-20 Nov (before: 12-31 Oct).
    """
    url = empty_warehouse
    add_products(url, *[(f"P{i}", f"Product {i}", "shelf" if i % 2 else "counter", 1, 5) for i in range(1, 9)])
    for product_id, day, revenue in [
        # 18 Nov: P5 and P6 tie
        ("P1", "2026-11-18", 600), ("P2", "2026-11-18", 400), ("P3", "2026-11-18", 300),
        ("P5", "2026-11-18", 150), ("P6", "2026-11-18", 150), ("P7", "2026-11-18", 50),
        ("P8", "2026-11-20", 350),  # yesterday's only sale
        # 10 Nov: the previous 7 days
        ("P2", "2026-11-10", 900), ("P1", "2026-11-10", 800), ("P5", "2026-11-10", 200),
        ("P3", "2026-11-10", 100), ("P7", "2026-11-10", 50),
        ("P2", "2026-10-15", 1000),  # before both last 30 days and month to date
        ("P1", "2026-10-11", 500),  # before last 30 days only: month to date's previous period starts 12 Oct
    ]:  # fmt: skip
        add_daily_kpis(url, "product", product_id, day, day, revenue, units=revenue // 10)
    return url


def top(url: str, period: str, scope: str = "all", scope_id: str = "") -> list[tuple]:
    return query(
        url,
        "SELECT rank, product_id, product_name, units, revenue, share, previous_rank, rank_change"
        " FROM marts.top_products WHERE as_of = %s AND period = %s AND scope = %s AND scope_id = %s"
        " ORDER BY rank, product_id",
        (AS_OF, period, scope, scope_id),
    )


def test_top_products_by_hand(rankings: str) -> None:
    written = run(rankings, marts.refresh_top_products, AS_OF, 5, "UTC")

    # Last 7 days (14-20 Nov): P1 600, P2 400, P8 350, P3 300, P5 150, P6 150, P7 50; total 2000.
    # P5 and P6 tie for 5th: both kept, 6 rows. Previous 7 days (7-13 Nov): P2 900 (1), P1 800 (2), P5 200 (3),
    # P3 100 (4), P7 50 (5); P8 and P6 did not sell: previous rank NULL.
    assert top(rankings, "last_7_days") == [
        (1, "P1", "Product 1", 60, D("600.00"), D("0.3000"), 2, 1),  # 600 / 2000; climbed 2 -> 1
        (2, "P2", "Product 2", 40, D("400.00"), D("0.2000"), 1, -1),
        (3, "P8", "Product 8", 35, D("350.00"), D("0.1750"), None, None),  # new in this period
        (4, "P3", "Product 3", 30, D("300.00"), D("0.1500"), 4, 0),
        (5, "P5", "Product 5", 15, D("150.00"), D("0.0750"), 3, -2),
        (5, "P6", "Product 6", 15, D("150.00"), D("0.0750"), None, None),
    ]
    # Yesterday (20 Nov): P8 alone, all of the revenue; nothing sold on 19 Nov.
    assert top(rankings, "yesterday") == [(1, "P8", "Product 8", 35, D("350.00"), D("1.0000"), None, None)]
    # Last 30 days (22 Oct - 20 Nov) = 10, 18 and 20 Nov: P1 1400, P2 1300, P3 400, P8 350, P5 350, P6 150,
    # P7 100; total 4050. P8 and P5 tie for 4th, then P6 is 6th: out of the top 5.
    # Previous 30 days (22 Sep - 21 Oct): P2 1000 (1), P1 500 (2).
    assert top(rankings, "last_30_days") == [
        (1, "P1", "Product 1", 140, D("1400.00"), D("0.3457"), 2, 1),  # 1400 / 4050 = 0.34568
        (2, "P2", "Product 2", 130, D("1300.00"), D("0.3210"), 1, -1),  # 0.32099
        (3, "P3", "Product 3", 40, D("400.00"), D("0.0988"), None, None),  # 0.09877
        (4, "P5", "Product 5", 35, D("350.00"), D("0.0864"), None, None),  # 0.08642
        (4, "P8", "Product 8", 35, D("350.00"), D("0.0864"), None, None),
    ]
    # Month to date (1-20 Nov) sums the same days; its previous period is the 20 days before 1 Nov
    # (12-31 Oct): P2 alone (P1's 11 Oct sale falls before it).
    assert [row[:2] + row[6:] for row in top(rankings, "month_to_date")] == [
        (1, "P1", None, None),
        (2, "P2", 1, -1),
        (3, "P3", None, None),
        (4, "P5", None, None),
        (4, "P8", None, None),
    ]
    # Each category ranks its own products (odd ones are on the shelf, even ones at the counter), with its
    # own shares and previous ranks. Shelf, last 7 days: P1 600, P3 300, P5 150, P7 50 (total 1100); the 7 days
    # before: P1 800, P5 200, P3 100, P7 50.
    assert [row[:2] + row[5:] for row in top(rankings, "last_7_days", "category", "shelf")] == [
        (1, "P1", D("0.5455"), 1, 0),
        (2, "P3", D("0.2727"), 3, 1),
        (3, "P5", D("0.1364"), 2, -1),
        (4, "P7", D("0.0455"), 4, 0),
    ]
    assert [row[:2] for row in top(rankings, "last_7_days", "category", "counter")] == [(1, "P2"), (2, "P8"), (3, "P6")]
    # Nothing sold on the shelf yesterday: no ranking for it.
    assert top(rankings, "yesterday", "category", "shelf") == []
    # The whole business 6 + 1 + 5 + 5; the shelf 0 + 4 + 4 + 4 and the counter 1 + 3 + 3 + 3; no store (the
    # rankings have no order lines).
    assert written == 17 + 12 + 10

    assert_idempotent(rankings, "marts.top_products", "as_of, period, scope, scope_id, rank, product_id",
                      marts.refresh_top_products, AS_OF, 5, "UTC")  # fmt: skip
    # N is a setting: top 2 of the last 7 days.
    run(rankings, marts.refresh_top_products, AS_OF, 2, "UTC")
    assert [row[1] for row in top(rankings, "last_7_days")] == ["P1", "P2"]


def test_top_products_per_store_reach_the_earliest_previous_period(empty_warehouse: str) -> None:
    """On the 31st, month to date's previous period starts 61 days back: a store's ranking reads order lines that far,
    a sale's day (pipeline time zone) one day after its sale_date included."""
    url = empty_warehouse
    as_of = date(2026, 10, 31)
    add_products(url, ("A", "Arabica", "coffee", 4, 10))
    add_sales(
        url,
        ("O1", 1, "2026-10-30 10:00+00", "S1", "K1", "A", 1, 10, 0),  # this month
        ("O2", 1, "2026-08-30 23:30+00", "S1", "K1", "A", 1, 10, 0),  # 31 Aug in Paris: 1 Oct - 31 days
    )
    with transaction(url) as cursor:
        marts.refresh_daily_kpis(cursor, date(2026, 8, 1), as_of, "Europe/Paris")
        marts.refresh_top_products(cursor, as_of, 5, "Europe/Paris")

    assert query(
        url,
        "SELECT product_id, rank, previous_rank FROM marts.top_products"
        " WHERE as_of = %s AND period = 'month_to_date' AND scope = 'store' AND scope_id = 'S1'",
        (as_of,),
    ) == [("A", 1, 1)]


def test_top_products_per_store_from_the_order_lines(empty_warehouse: str) -> None:
    url = empty_warehouse
    add_products(url, ("A", "Arabica", "coffee", 4, 10), ("B", "Blend", "coffee", 3, 5))
    add_sales(
        url,
        ("O1", 1, "2026-11-20 10:00+00", "S1", "K1", "A", 2, 10, 0),  # S1: A 20
        ("O1", 2, "2026-11-19 10:00+00", "S1", "K1", "B", 1, 5, 0),  # S1: B 5
        ("O2", 1, "2026-11-18 23:30+00", "S2", "K2", "B", 10, 5, 0),  # S2: B 50 (19 Nov in Paris)
        ("O3", 1, "2026-11-10 11:00+00", "S2", "K2", "A", 1, 10, 0),  # S2, the 7 days before: A 10
    )
    with transaction(url) as cursor:
        marts.refresh_daily_kpis(cursor, date(2026, 11, 1), AS_OF, "Europe/Paris")
        marts.refresh_top_products(cursor, AS_OF, 5, "Europe/Paris")

    assert [row[:5] for row in top(url, "last_7_days", "store", "S1")] == [
        (1, "A", "Arabica", 2, D("20.00")),
        (2, "B", "Blend", 1, D("5.00")),
    ]
    assert [row[:5] + row[6:] for row in top(url, "last_7_days", "store", "S2")] == [
        (1, "B", "Blend", 10, D("50.00"), None, None),
    ]
    assert [row[:2] + row[6:] for row in top(url, "last_30_days", "store", "S2")] == [
        (1, "B", None, None),
        (2, "A", None, None),
    ]
    assert [row[1] for row in top(url, "yesterday", "store", "S2")] == []
    # The stores add up to the whole business, whose ranking reads the daily KPIs.
    assert sum(
        row[4] for row in top(url, "last_30_days", "store", "S1") + top(url, "last_30_days", "store", "S2")
    ) == sum(row[4] for row in top(url, "last_30_days"))


# --- dashboard -------------------------------------------------------------------------------


def test_two_refreshes_at_once_take_turns(rankings: str) -> None:
    """Two imports finishing together each refresh the marts: the second waits, then replaces the rows."""
    alone = run(rankings, marts.refresh_top_products, AS_OF, 5, "UTC")
    outcomes: list[object] = []

    def second_refresh() -> None:
        try:
            outcomes.append(run(rankings, marts.refresh_top_products, AS_OF, 5, "UTC"))
        except Exception as error:  # the thread's error must reach the test
            outcomes.append(error)

    with transaction(rankings) as first:
        marts.refresh_top_products(first, AS_OF, 5, "UTC")
        second = threading.Thread(target=second_refresh)
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive()  # waiting for the first transaction
    second.join(timeout=30)
    assert outcomes == [alone]
    assert query(rankings, "SELECT count(*) FROM marts.top_products")[0][0] == alone


def test_dashboard_document(empty_warehouse: str) -> None:
    url = empty_warehouse
    add_products(url, ("A", "Arabica", "coffee", 4, 10), ("B", "Blend", "coffee", None, 5))
    with transaction(url) as cursor:
        cursor.execute(
            "INSERT INTO core.stock (product_id, store_id, as_of, on_hand, on_order, source)"
            " VALUES ('A', 'S1', '2026-11-20', 0, 0, 'test')"
        )
    add_sales(
        url,
        # this week (14-20 Nov)
        ("O1", 1, "2026-11-20 10:00+00", "S1", "K1", "A", 2, 10, 0),  # 20
        ("O2", 1, "2026-11-20 11:00+00", "S1", "K2", "A", 1, 10, 0),  # 10
        ("O3", 1, "2026-11-16 11:00+00", "S1", "K1", "B", 1, 30, 0),  # 30, cost unknown
        # the week before (7-13 Nov)
        ("O4", 1, "2026-11-10 11:00+00", "S1", "K1", "A", 3, 10, 0),  # 30
        ("O5", 1, "2026-11-10 12:00+00", "S1", None, "A", 1, 10, 0),  # 10, anonymous
    )
    with transaction(url) as cursor:
        marts.refresh_daily_kpis(cursor, date(2026, 11, 1), AS_OF, "UTC")
        marts.refresh_stock_health(cursor, "UTC")
        marts.refresh_top_products(cursor, AS_OF, 5, "UTC")
        assert marts.last_complete_day(cursor) == AS_OF
        document = marts.build_dashboard(cursor, AS_OF, timezone="UTC")

    assert list(document) == [
        "as_of", "refreshed_at", "currency", "scope", "scope_id", "scope_name", "headline", "headline_day",
        "revenue_30d", "stock_health", "stock_at_risk", "top_products", "alerts",
    ]  # fmt: skip
    assert (document["scope"], document["scope_id"], document["scope_name"]) == ("all", "", None)
    assert document["as_of"] == "2026-11-20"
    assert document["currency"] is None
    assert document["alerts"] == []
    # This week: revenue 20 + 10 + 30 = 60, 3 orders, units 2 + 1 + 1 = 4, customers K1, K2 = 2 (K1 bought on two
    # days: a sum of daily counts would say 3), AOV 60 / 3 = 20, margin rate: A's 30 with cost 3 x 4 = 12 ->
    # 18 / 30 = 0.6. The week before: 40, 2 orders, 4 units, K1 only, AOV 20, margin (40 - 16) / 40 = 0.6.
    assert document["headline"] == {
        "revenue": {"value": 60.0, "previous": 40.0, "change": 0.5},
        "orders": {"value": 3, "previous": 2, "change": 0.5},
        "units": {"value": 4, "previous": 4, "change": 0.0},
        "average_order_value": {"value": 20.0, "previous": 20.0, "change": 0.0},
        "gross_margin_rate": {"value": 0.6, "previous": 0.6, "change": 0.0},
        "customers": {"value": 2, "previous": 1, "change": 1.0},
    }
    series = document["revenue_30d"]
    assert [point["day"] for point in series] == [
        (AS_OF - timedelta(days=29 - i)).isoformat() for i in range(30)
    ]  # 22 Oct .. 20 Nov, zero-filled
    assert {point["day"]: point["revenue"] for point in series if point["revenue"]} == {
        "2026-11-10": 40.0, "2026-11-16": 30.0, "2026-11-20": 30.0,
    }  # fmt: skip
    assert document["stock_health"] == {"out_of_stock": 1, "below_reorder_point": 0, "healthy": 0, "overstock": 0}
    # Last 7 days: A 30 and B 30 tie for 1st (shown by product id); A was 1st the week before, B did not sell.
    assert document["top_products"] == [
        {"rank": 1, "product_id": "A", "name": "Arabica", "revenue": 30.0, "units": 3, "share": 0.5, "rank_change": 0},
        {"rank": 1, "product_id": "B", "name": "Blend", "revenue": 30.0, "units": 1, "share": 0.5, "rank_change": None},
    ]
    # The last day (20 Nov: 30, 2 orders) against the same weekday a week before (13 Nov: nothing).
    assert document["headline_day"]["revenue"] == {"value": 30.0, "previous": 0.0, "change": None}
    assert document["headline_day"]["customers"] == {"value": 2, "previous": 0, "change": None}
    assert document["stock_at_risk"] == [
        {"product_id": "A", "name": "Arabica", "store_id": "S1", "on_hand": 0, "on_order": 0, "reorder_point": 10,
         "days_of_cover": 0.0, "status": "out_of_stock"},
    ]  # fmt: skip
    # Stored as the same JSON, one row per refresh and scope: the business and its one store (S1 is not in
    # core.stores, and still has its document), whose figures are the same here.
    stored = query(url, "SELECT as_of, scope, scope_id, document FROM marts.dashboard ORDER BY scope")
    assert [row[:3] for row in stored] == [(AS_OF, "all", ""), (AS_OF, "store", "S1")]
    assert stored[0][3] == json.loads(json.dumps(document))
    store = stored[1][3]
    assert (store["scope"], store["scope_id"], store["refreshed_at"]) == ("store", "S1", document["refreshed_at"])
    assert store["headline"] == document["headline"] and store["stock_at_risk"] == document["stock_at_risk"]
    assert store["top_products"] == document["top_products"]

    # A week after a week without sales: no change to speak of.
    earlier = run(url, marts.build_dashboard, date(2026, 11, 13), timezone="UTC")
    assert earlier["headline"]["revenue"] == {"value": 40.0, "previous": 0.0, "change": None}
    assert earlier["headline"]["gross_margin_rate"]["previous"] is None
    assert earlier["top_products"] == []
    assert query(url, "SELECT count(*) FROM marts.dashboard WHERE scope = 'all'")[0][0] == 2


def test_the_dashboard_lists_chain_wide_and_store_alerts_together(empty_warehouse: str, tmp_path) -> None:
    """A chain-wide alert (no store) beside a store's: the store reads back as None, never NaN (not JSON)."""
    from sales_pipeline.alerts.store import follow_anomalies
    from sales_pipeline.anomalies.store import record_anomalies
    from sales_pipeline.defs.analytics.marts import open_alert_records
    from sales_pipeline.records import Alert
    from sales_pipeline.resources import AlertingResource

    url = empty_warehouse
    add_products(url, ("A", "Arabica", "coffee", 4, 10))
    add_sales(url, ("O1", 1, "2026-11-20 10:00+00", "S1", "K1", "A", 2, 10, 0))
    numbers = {"days": 2, "first_day": "2026-11-19", "last_day": "2026-11-20", "actual": 20.0, "expected": 40.0,
               "shortfall": 20.0, "shortfall_pct": 50.0, "lower_bound": 30.0}  # fmt: skip
    chain = Alert("sales_drop", "warning", "all", "", AS_OF, "The chain's revenue fell.", numbers,
                  f"sales_drop:all::{AS_OF}")  # fmt: skip
    store = Alert("sales_drop", "warning", "store", "S1", AS_OF, "Store S1's revenue fell.", numbers,
                  f"sales_drop:store:S1:{AS_OF}")  # fmt: skip
    alerting = AlertingResource(locale="en", outbox_dir=str(tmp_path / "outbox"), timezone="UTC")
    with transaction(url) as cursor:
        marts.refresh_daily_kpis(cursor, date(2026, 11, 1), AS_OF, "UTC")
        record_anomalies(cursor, "sales_drop", [chain, store])
        follow_anomalies(cursor, "sales_drop")
        alerts = open_alert_records(cursor, alerting)
        document = marts.build_dashboard(cursor, AS_OF, timezone="UTC", alerts=alerts)
    assert sorted((a["store_id"] or "") for a in document["alerts"]) == ["", "S1"]
    stored = query(url, "SELECT scope_id, document FROM marts.dashboard WHERE scope = 'store'")
    assert [(scope_id, [a["store_id"] for a in doc["alerts"]]) for scope_id, doc in stored] == [("S1", ["S1"])]


def test_an_empty_warehouse(empty_warehouse: str) -> None:
    url = empty_warehouse
    with transaction(url) as cursor:
        assert marts.refresh_daily_kpis(cursor, date(2026, 11, 1), date(2026, 11, 30), "UTC") == 0
        assert marts.refresh_sales_trends(cursor, date(2026, 11, 1), date(2026, 11, 30)) == 0
        assert marts.refresh_stock_health(cursor, "UTC") == 0
        assert marts.refresh_top_products(cursor, date(2026, 11, 30), 5, "UTC") == 0
        assert marts.last_complete_day(cursor) is None
        document = marts.build_dashboard(cursor, date(2026, 11, 30), timezone="UTC")
    assert document["headline"]["revenue"] == {"value": 0.0, "previous": 0.0, "change": None}
    assert document["headline"]["average_order_value"]["value"] is None
    assert len(document["revenue_30d"]) == 30
    assert document["stock_health"] == dict.fromkeys(marts.STOCK_STATUSES, 0)
    assert document["top_products"] == []
