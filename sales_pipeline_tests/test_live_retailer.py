"""The living demo retailer: `simulate-api --live` carries the sample retailer on to now, over real HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import requests

from sales_pipeline.cli import SAMPLE_DIR, SIMULATED_RETAILER
from sales_pipeline.definitions import defs as code_location
from sales_pipeline.defs.analytics.sensors import range_tags
from sales_pipeline.demo.retailer import DEFAULT_END, Retailer, generate_retailer
from sales_pipeline.demo.simulator import JavaApiSimulator
from sales_pipeline.resources import JavaApiResource, WarehouseResource
from sales_pipeline_tests.conftest import query

TOKEN = "live-token"
PROJECT = Path(__file__).resolve().parents[1]
FIRST_LIVE = DEFAULT_END + dt.timedelta(days=1)
# The committed sample workbooks: the live days are served, never written into them.
SAMPLE_DIGEST = "46c43d8759a37c8d3c110e4d7bb00b826d95c72adfe682d668dfba3a61dcdd7a"


class Clock:
    """The simulator's now, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def retailer() -> Retailer:
    return generate_retailer(**SIMULATED_RETAILER)


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock(dt.datetime(2026, 12, 27, 12, 0, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def live(retailer: Retailer, clock: Clock) -> Iterator[JavaApiSimulator]:
    with JavaApiSimulator(token=TOKEN, retailer=retailer, live=True, clock=clock, **SIMULATED_RETAILER) as api:
        yield api


def sales(api: JavaApiSimulator, first: dt.date, stop: dt.date) -> list[dict]:
    """Every sale line of the UTC days [first, stop), page by page, as the pull reads them."""
    lines: list[dict] = []
    page, pages = 0, 1
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        while page < pages:
            params = {"from": first.isoformat(), "to": stop.isoformat(), "page": page, "size": 1000}
            body = session.get(api.base_url + "/api/v1/sales", params=params, timeout=30).json()
            lines += body["content"]
            page, pages = page + 1, body["page"]["totalPages"]
    return lines


def frame(lines: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(lines)
    out["instant"] = pd.to_datetime(out["soldAt"], utc=True)
    out["day"] = [dt.date.fromisoformat(text[:10]) for text in out["soldAt"]]  # the store's own day
    return out


def test_every_day_after_the_history_is_served_up_to_now(live: JavaApiSimulator, clock: Clock) -> None:
    served = frame(sales(live, FIRST_LIVE - dt.timedelta(days=2), clock.now.date() + dt.timedelta(days=1)))
    assert served["instant"].max() <= clock.now
    by_day = served.groupby(["day", "storeId"]).size()
    for k in range((clock.now.date() - FIRST_LIVE).days):
        day = FIRST_LIVE + dt.timedelta(days=k)
        stores = set(by_day[day].index) if day in by_day.index.get_level_values(0) else set()
        if day == dt.date(2026, 12, 25):
            assert stores == set(), "Christmas: every store is closed"
        elif day.weekday() == 6:
            assert stores == {"S01"}, "the second store stays shut on Sundays"
        else:
            assert stores == {"S01", "S02"}, day
    assert served["orderId"].str.fullmatch(r"O-\d{7}|O-\d{8}-S\d{2}-\d{4}").all()
    assert not served.duplicated(["orderId", "lineNumber"]).any()


def test_the_history_is_served_as_without_live(live: JavaApiSimulator, retailer: Retailer) -> None:
    first, stop = DEFAULT_END - dt.timedelta(days=6), FIRST_LIVE
    with JavaApiSimulator(token=TOKEN, retailer=retailer, **SIMULATED_RETAILER) as plain:
        assert sales(live, first, stop - dt.timedelta(days=1)) == sales(plain, first, stop - dt.timedelta(days=1))


def test_a_day_is_the_same_whenever_and_whatever_was_asked_before(retailer: Retailer, clock: Clock) -> None:
    day = dt.date(2026, 12, 10)
    window = (day, day + dt.timedelta(days=1))
    with JavaApiSimulator(token=TOKEN, retailer=retailer, live=True, clock=clock, **SIMULATED_RETAILER) as fresh:
        alone = sales(fresh, *window)
    later = Clock(clock.now + dt.timedelta(days=40))
    with JavaApiSimulator(token=TOKEN, retailer=retailer, live=True, clock=later, **SIMULATED_RETAILER) as other:
        sales(other, FIRST_LIVE, later.now.date())  # every day first, then the one
        again = sales(other, *window)
    assert len(alone) > 20 and alone == again


def test_todays_lines_appear_as_the_clock_passes_their_time(retailer: Retailer) -> None:
    today = dt.date(2026, 12, 8)
    clock = Clock(dt.datetime.combine(today, dt.time(9, 30), dt.UTC))
    window = (today, today + dt.timedelta(days=1))
    with JavaApiSimulator(token=TOKEN, retailer=retailer, live=True, clock=clock, **SIMULATED_RETAILER) as api:
        morning = sales(api, *window)
        clock.now = clock.now.replace(hour=15)
        afternoon = sales(api, *window)
        clock.now = clock.now.replace(hour=23, minute=59)
        evening = sales(api, *window)
    assert 0 < len(morning) < len(afternoon) < len(evening)
    assert afternoon[: len(morning)] == morning and evening[: len(afternoon)] == afternoon
    assert frame(morning)["instant"].max() <= dt.datetime.combine(today, dt.time(9, 30), dt.UTC)


def test_the_planted_situations_carry_on(live: JavaApiSimulator, retailer: Retailer, clock: Clock) -> None:
    planted = retailer.planted
    served = frame(sales(live, FIRST_LIVE, clock.now.date()))
    history = pd.DataFrame({"store": retailer.sales["store_id"], "day": retailer.sales["sold_at"].dt.date,
                            "amount": retailer.sales["revenue"]})  # fmt: skip
    live_days = pd.DataFrame({"store": served["storeId"], "day": served["day"], "amount": served["lineTotal"]})

    def daily_revenue(lines: pd.DataFrame, store: str, first: dt.date, last: dt.date) -> float:
        """The store's revenue per day it could open (not Sundays, which one store keeps shut, nor Christmas)."""
        days = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
        days = [d for d in days if d.weekday() != 6 and (d.month, d.day) != (12, 25)]
        return float(lines.loc[(lines["store"] == store) & lines["day"].isin(days), "amount"].sum()) / len(days)

    drop, start = planted.sales_drop_store_id, planted.sales_drop_start
    before = daily_revenue(history, drop, start - dt.timedelta(days=28), start - dt.timedelta(days=1))
    lately = daily_revenue(live_days, drop, FIRST_LIVE, clock.now.date() - dt.timedelta(days=1))
    assert lately < 0.75 * before, "the dropped store stays at its dropped level"

    assert not served["customerId"].isin(planted.churned_customer_ids).any(), "the churned customers stay away"

    pair = served[
        (served["storeId"] == planted.stockout_store_id) & (served["productId"] == planted.stockout_product_id)
    ]
    stock = retailer.stock
    counts = stock[
        (stock["store_id"] == planted.stockout_store_id) & (stock["product_id"] == planted.stockout_product_id)
    ]
    last_count = counts.sort_values("as_of").iloc[-1]
    assert pair["quantity"].sum() <= last_count["on_hand"], "the short product sells what its count left, then none"
    elsewhere = served[
        (served["storeId"] != planted.stockout_store_id) & (served["productId"] == planted.stockout_product_id)
    ]
    assert elsewhere["quantity"].sum() > 2 * last_count["on_hand"], "it still sells where it is on the shelf"


def test_the_sample_workbooks_are_the_served_history(live: JavaApiSimulator) -> None:
    workbook = pd.read_excel(PROJECT / SAMPLE_DIR / "sales_2026-11.xlsx", engine="calamine")
    served = frame(sales(live, dt.date(2026, 10, 31), dt.date(2026, 12, 2)))
    served = served[served["day"].between(dt.date(2026, 11, 1), DEFAULT_END)]
    keys = set(zip(workbook["Order ID"], workbook["Line"], strict=True))
    assert keys == set(zip(served["orderId"], served["lineNumber"], strict=True))
    assert round(workbook["Line Total"].sum(), 2) == round(served["lineTotal"].sum(), 2)


def test_the_committed_sample_workbooks_keep_their_bytes() -> None:
    digest = hashlib.sha256()
    for path in sorted((PROJECT / SAMPLE_DIR).glob("*.xlsx")):
        digest.update(path.name.encode() + path.read_bytes())
    assert digest.hexdigest() == SAMPLE_DIGEST


def test_simulate_api_live_serves_yesterday_by_the_real_clock() -> None:
    command = [
        str(Path(sys.executable).with_name("sales-pipeline")),
        "simulate-api",
        "--live",
        "--port",
        "0",
        "--token",
        TOKEN,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT)
    try:
        line = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        assert match and "every day to now (live)" in line, line + process.stderr.read()
        today = dt.datetime.now(dt.UTC).date()  # the last three days: one at least is not a holiday
        params = {"from": (today - dt.timedelta(days=3)).isoformat(), "to": today.isoformat(), "size": 5}
        body = requests.get(match.group(1) + "/api/v1/sales", params=params, timeout=30,
                            headers={"Authorization": f"Bearer {TOKEN}"}).json()  # fmt: skip
        assert body["page"]["totalElements"] > 0
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_the_nightly_pull_finds_yesterday(empty_warehouse: str, retailer: Retailer) -> None:
    """The jobs the nightly schedules run, against the live back office the morning after a day of trade."""
    yesterday = dt.date(2026, 12, 7)
    clock = Clock(dt.datetime.combine(yesterday + dt.timedelta(days=1), dt.time(5, 0), dt.UTC))
    defs = code_location()
    with (
        JavaApiSimulator(token=TOKEN, retailer=retailer, live=True, clock=clock, **SIMULATED_RETAILER) as api,
        dg.instance_for_test() as instance,
    ):
        resources = {
            "warehouse": WarehouseResource(database_url=empty_warehouse),
            "java_api": JavaApiResource(base_url=api.base_url, token=TOKEN),
        }
        for job, tags in (("pull_products_and_stock", {}), ("pull_sales", range_tags(yesterday, yesterday))):
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, resources=resources, tags=tags)
            assert result.success
        served = sales(api, yesterday, yesterday + dt.timedelta(days=1))
    statement = (
        "SELECT count(*), sum(revenue)::float FROM core.sales"
        " WHERE source = 'api' AND (sold_at AT TIME ZONE 'UTC')::date = %s"
    )
    pulled = query(empty_warehouse, statement, (yesterday,))
    assert len(served) > 30
    assert pulled[0][0] == len(served)
    assert round(pulled[0][1], 2) == round(sum(line["lineTotal"] for line in served), 2)
