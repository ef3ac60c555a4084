"""Pulling the back office's API into the warehouse: real HTTP on loopback against the simulator."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest
import requests

from sales_pipeline.definitions import defs as code_location
from sales_pipeline.defs.analytics.sensors import RANGE_END_TAG, RANGE_START_TAG
from sales_pipeline.demo.retailer import generate_retailer, write_sheets_workbook
from sales_pipeline.demo.simulator import JavaApiSimulator
from sales_pipeline.excel.importer import import_workbook
from sales_pipeline.javaapi.client import JavaApiClient, JavaApiError
from sales_pipeline.javaapi.records import InvalidPage, SaleLine
from sales_pipeline.resources import JavaApiResource, WarehouseResource
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import PROJECT, query, table_counts
from sales_pipeline_tests.fault_proxy import FaultProxy, dropped_record, later_records, shifted_page, truncated

defs = code_location()  # the code location, as the code server loads it

SEED, SCALE, DAYS, END = 5, 1, 40, dt.date(2026, 11, 22)
TOKEN = "test-token-s3cret"


@pytest.fixture(scope="module")
def retailer():
    return generate_retailer(scale=SCALE, seed=SEED, days=DAYS, end=END)


@pytest.fixture(scope="module")
def simulator(retailer):
    with JavaApiSimulator(seed=SEED, scale=SCALE, days=DAYS, end=END, token=TOKEN, retailer=retailer) as server:
        yield server


@pytest.fixture
def api(simulator):
    simulator.clear_faults()
    simulator.reset_stats()
    return simulator


def resources(url: str, base_url: str, token: str = TOKEN, **client) -> dict:
    settings = {"connect_timeout_s": 1.0, "read_timeout_s": 2.0, "max_wait_s": 20.0, "page_size": 200} | client
    return {
        "warehouse": WarehouseResource(database_url=url),
        "java_api": JavaApiResource(base_url=base_url, token=token, **settings),
    }


def pull(url: str, base_url: str, partitions: tuple[str, str] | None = None, **client) -> dg.ExecuteInProcessResult:
    """Products and stock, then the sales of a range of UTC days, as the nightly pull does."""
    with dg.instance_for_test() as instance:
        master = defs.resolve_job_def("pull_products_and_stock").execute_in_process(
            instance=instance, resources=resources(url, base_url, **client), raise_on_error=False
        )
        if not master.success or partitions is None:
            return master
        tags = {
            RANGE_START_TAG: partitions[0],
            RANGE_END_TAG: partitions[1],
        }
        return defs.resolve_job_def("pull_sales").execute_in_process(
            instance=instance, tags=tags, resources=resources(url, base_url, **client), raise_on_error=False
        )


def utc_days(retailer) -> pd.Series:
    """The simulator's sales per UTC day: revenue sums, as the API serves them."""
    sales = retailer.sales.merge(retailer.stores[["store_id", "timezone"]], on="store_id")
    instants = [
        pd.Timestamp(local).tz_localize(zone).tz_convert("UTC")
        for local, zone in zip(sales["sold_at"], sales["timezone"], strict=True)
    ]
    return sales.assign(day=[i.date() for i in instants]).groupby("day")["revenue"].sum().round(2)


def test_a_full_pull_equals_what_the_simulator_serves(empty_warehouse, api, retailer):
    days = utc_days(retailer)
    first, last = str(days.index.min()), str(days.index.max())
    result = pull(empty_warehouse, api.base_url, (first, last))

    assert result.success
    assert query(empty_warehouse, "SELECT count(*) FROM core.products")[0][0] == len(retailer.products)
    assert query(empty_warehouse, "SELECT count(*) FROM core.sales WHERE source = 'api'")[0][0] == len(retailer.sales)
    per_day = dict(query(empty_warehouse, "SELECT (sold_at AT TIME ZONE 'UTC')::date, sum(revenue)::float"
                                          " FROM core.sales GROUP BY 1"))  # fmt: skip
    assert {day: round(value, 2) for day, value in per_day.items()} == days.to_dict()
    # A range of days is one pull: each day's materialization carries the pull's figures.
    materialization = result.asset_materializations_for_node("ingest__api_sales")[0]
    assert materialization.metadata["rows_pulled"].value == len(retailer.sales)
    assert materialization.metadata["pages"].value == -(-len(retailer.sales) // 200)


def test_a_streamed_pull_writes_every_line_and_record_as_the_validated_pages_have_them(empty_warehouse, api, retailer):
    """The pull lands pages as they come and the server cuts them into lines: the warehouse holds, line for
    line and field for field, what the client's validated records (`fetch_all`, the path before) say."""
    days = utc_days(retailer)
    first, end = days.index.min(), days.index.max() + dt.timedelta(days=1)
    window = {"from": first.isoformat(), "to": end.isoformat()}
    records, _ = JavaApiClient(api.base_url, TOKEN, page_size=200).fetch_all("sales", window)
    assert pull(empty_warehouse, api.base_url, (str(first), str(days.index.max()))).success

    zones = dict(zip(retailer.stores["store_id"], retailer.stores["timezone"], strict=True))
    expected = sorted(
        (r.order_id, r.line_number, r.sold_at, r.sold_at.astimezone(ZoneInfo(zones[r.store_id])).date(), r.store_id,
         r.customer_id, r.product_id, r.quantity, round(r.unit_price, 4), round(r.discount, 4), round(r.line_total, 2),
         r.promotion)
        for r in records
    )  # fmt: skip
    stored = query(
        empty_warehouse,
        "SELECT order_id, line_number, sold_at, sale_date, store_id, customer_id, product_id, quantity,"
        " unit_price::float, discount::float, revenue::float, promotion FROM core.sales"
        " WHERE source = 'api' AND time_given AND import_id IS NULL ORDER BY 1, 2",
    )
    assert stored == expected
    raw = query(empty_warehouse, "SELECT record::text FROM raw.api_records WHERE endpoint = 'sales'")
    assert sorted((SaleLine.model_validate_json(text) for (text,) in raw), key=lambda r: r.key) == sorted(
        records, key=lambda r: r.key
    )


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ({"fail_next": {"count": 3, "status": 500}}, "500"),
        ({"fail_next": {"count": 2, "status": 503}}, "503"),
        ({"rate_limit_next": {"count": 2, "retry_after": 1}}, "429"),
        ({"reset_next": 2}, "ConnectionError"),
    ],
)
def test_transient_failures_are_retried_and_counted(empty_warehouse, api, faults, reason):
    api.set_faults(faults)
    result = pull(empty_warehouse, api.base_url)

    assert result.success
    products = next(m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "api_products")
    metadata = products.materialization.metadata
    assert metadata["retries"].value >= 1
    assert reason in metadata["retry_reasons"].value
    assert query(empty_warehouse, "SELECT count(*) FROM core.products")[0][0] > 0


def step_restarts(result: dg.ExecuteInProcessResult) -> int:
    return sum(event.event_type == dg.DagsterEventType.STEP_RESTARTED for event in result.all_events)


def test_a_back_office_down_for_a_while_is_pulled_by_the_steps_retry(empty_warehouse, api):
    # Down for longer than the client's own retries (none here): the step fails, waits, and tries again.
    api.set_faults({"fail_next": {"count": 1, "status": 503}})
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("pull_products_and_stock").execute_in_process(
            instance=instance, resources=resources(empty_warehouse, api.base_url, max_retries=0), raise_on_error=False
        )

    assert result.success and step_restarts(result) == 1
    assert query(empty_warehouse, "SELECT count(*) FROM core.products")[0][0] > 0


def test_a_read_timeout_is_retried(api):
    api.set_faults({"latency_ms": 1500})  # longer than the read timeout below

    def back_office_recovers(seconds: float) -> None:  # between the attempts, the slowness goes away
        api.clear_faults()
        time.sleep(seconds)

    client = JavaApiClient(api.base_url, TOKEN, read_timeout_s=1.0, backoff_s=0.1, sleep=back_office_recovers)
    records, stats = client.fetch_all("products")

    assert len(records) > 0
    assert stats.retries == 1 and stats.retry_reasons == {"ReadTimeout": 1}


def test_a_back_office_that_stays_down_is_a_clear_error(api):
    api.set_faults({"fail_next": {"count": 10, "status": 500}})
    client = JavaApiClient(api.base_url, TOKEN, max_retries=2, backoff_s=0.05)

    with pytest.raises(JavaApiError, match=r"^GET /api/v1/products page 0: gave up after 2 retries \(last: 500\)$"):
        client.fetch_all("products")


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (  # cut every time: retried (a cut body is transient), then a clear failure
            {"truncate_page": {"endpoint": "sales", "page": 1, "times": 100}},
            "GET /api/v1/sales page 1: gave up after 1 retries (last: the response is not valid JSON",
        ),
        ({"bad_record": {"endpoint": "sales", "page": 1}}, "GET /api/v1/sales page 1, record "),
    ],
)
def test_a_broken_page_fails_the_pull_and_changes_nothing(empty_warehouse, api, retailer, faults, message):
    days = utc_days(retailer)
    pull(empty_warehouse, api.base_url)  # products and stock first
    sales_pulls = "SELECT count(*) FROM ops.api_pulls WHERE endpoint = 'sales'"
    before = table_counts(empty_warehouse) | {"sales pulls": query(empty_warehouse, sales_pulls)[0][0]}
    api.set_faults(faults)

    result = pull(empty_warehouse, api.base_url, (str(days.index.min()), str(days.index.max())), max_retries=1)

    assert not result.success
    # A back office that kept failing is tried again later by the step (NETWORK_RETRY); a bad record is not.
    assert step_restarts(result) == (3 if "gave up" in message else 0)
    failure = next(e for e in result.all_events if e.is_failure).event_specific_data.error
    assert message in failure.to_string()
    after = table_counts(empty_warehouse) | {"sales pulls": query(empty_warehouse, sales_pulls)[0][0]}
    assert after == before


def test_a_wrong_token_names_the_setting_and_not_the_token(empty_warehouse, api, caplog):
    result = pull(empty_warehouse, api.base_url, token="wrong-token-value")

    assert not result.success
    error = next(e for e in result.all_events if e.is_failure).event_specific_data.error
    text = error.to_string()
    assert "JAVA_API_TOKEN" in text and "401" in text
    assert "wrong-token-value" not in text and TOKEN not in text
    assert "wrong-token-value" not in caplog.text
    with dg.instance_for_test() as instance:  # with the steps' RetryPolicy: a refused token is not retried
        again = defs.resolve_job_def("pull_products_and_stock").execute_in_process(
            instance=instance, resources=resources(empty_warehouse, api.base_url, token="wrong"), raise_on_error=False
        )
    assert not again.success and step_restarts(again) == 0


def test_a_total_that_changes_mid_pull_leaves_no_duplicate_and_no_gap(empty_warehouse, api, retailer):
    days = utc_days(retailer)
    pull(empty_warehouse, api.base_url)
    api.set_faults({"shifting_total": {"endpoint": "sales", "after_page": 0}})

    result = pull(empty_warehouse, api.base_url, (str(days.index.min()), str(days.index.max())))

    assert result.success
    served = requests.get(f"{api.base_url}/api/v1/sales", params={"from": str(days.index.min()),
                          "to": str(days.index.max() + dt.timedelta(days=1)), "size": 1},
                          headers={"Authorization": f"Bearer {TOKEN}"}).json()["page"]["totalElements"]  # fmt: skip
    loaded = query(empty_warehouse, "SELECT count(*), count(DISTINCT (order_id, line_number)) FROM core.sales")[0]
    assert loaded == (served, served) == (len(retailer.sales) + 1, len(retailer.sales) + 1)
    materialization = result.asset_materializations_for_node("ingest__api_sales")[0]
    assert materialization.metadata["restarts"].value >= 1


def test_a_line_from_a_workbook_and_from_the_api_counts_once_and_the_api_wins(
    empty_warehouse, api, retailer, import_settings, folders, warehouse
):
    days = utc_days(retailer)
    sales = retailer.sales.copy()
    sales.loc[sales.index[0], "quantity"] = sales.loc[sales.index[0], "quantity"] + 5  # the workbook's typo
    sales.loc[sales.index[0], "revenue"] = None
    workbook = write_sheets_workbook(
        folders["inbox"] / "shop.xlsx", {"Products": retailer.products, "Stores": retailer.stores, "Sales": sales}
    )
    import_workbook(warehouse.transaction, workbook, import_settings)
    first_line = sales.iloc[0]

    pull(empty_warehouse, api.base_url, (str(days.index.min()), str(days.index.max())))
    import_again = write_sheets_workbook(
        folders["inbox"] / "shop again.xlsx", {"Products": retailer.products, "Stores": retailer.stores, "Sales": sales}
    )
    again = import_workbook(warehouse.transaction, import_again, import_settings)

    assert query(empty_warehouse, "SELECT count(*) FROM core.sales")[0][0] == len(retailer.sales)
    stored = query(
        empty_warehouse,
        "SELECT source, quantity FROM core.sales WHERE order_id = %s AND line_number = %s",
        (first_line["order_id"], int(first_line["line_number"])),
    )
    assert stored == [("api", int(retailer.sales.iloc[0]["quantity"]))]
    sales_result = next(s for s in again.sheets if s.target == "Sales")
    assert sales_result.updated == 0  # the workbook no longer overwrites the API's lines


def test_products_pull_incrementally_from_a_cursor_kept_in_the_warehouse(empty_warehouse, api, retailer):
    pull(empty_warehouse, api.base_url)
    first_cursor = query(empty_warehouse, "SELECT cursor FROM ops.api_cursors WHERE endpoint = 'products'")[0][0]
    product_id = retailer.products["product_id"].iloc[3]
    api.touch_product(product_id)

    result = pull(empty_warehouse, api.base_url)

    products = next(m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "api_products")
    assert products.materialization.metadata["rows_pulled"].value <= 2  # the touched one (and the newest, inclusive)
    assert products.materialization.metadata["updated"].value == 1
    assert query(empty_warehouse, "SELECT cursor FROM ops.api_cursors WHERE endpoint = 'products'")[0][0] > first_cursor
    with pytest.raises(InvalidPage):
        from sales_pipeline.javaapi.records import parse_page

        parse_page("products", 0, {"content": [{"productId": ""}], "page": {}})


def test_the_store_calendar_and_promotions_come_from_the_back_office_and_replace_its_last_list(empty_warehouse):
    """Two stores over four months: a Sunday-closed store, holidays, and product promotion weeks."""
    url = empty_warehouse
    retailer = generate_retailer(scale=2, seed=SEED, days=120, end=END)
    assert len(retailer.promotions) and len(retailer.calendar)
    # Rows the back office sent before and no longer has go; a workbook's rows are not the API's to remove.
    with transaction(url) as cursor:
        cursor.execute(
            "INSERT INTO core.promotions (product_id, starts_on, ends_on, source) VALUES"
            " ('P0001', '2026-01-05', '2026-01-11', 'api'), ('P0002', '2026-01-05', '2026-01-11', 'excel')"
        )
        cursor.execute(
            "INSERT INTO core.store_calendar (store_id, weekday, source) VALUES ('S01', 'Monday', 'api'),"
            " (NULL, 'Tuesday', 'excel')"
        )

    with JavaApiSimulator(seed=SEED, scale=2, days=120, end=END, token=TOKEN, retailer=retailer) as api:
        result = pull(url, api.base_url)
        again = pull(url, api.base_url)  # the same lists: nothing changes

    assert result.success
    promotions = retailer.promotions
    assert query(
        url, "SELECT product_id, starts_on, ends_on FROM core.promotions WHERE source = 'api' ORDER BY 2, 1"
    ) == sorted(
        ((product, starts.date(), ends.date())
         for product, starts, ends in promotions[["product_id", "starts_on", "ends_on"]].itertuples(index=False)),
        key=lambda row: (row[1], row[0]),
    )  # fmt: skip
    assert query(url, "SELECT product_id FROM core.promotions WHERE source = 'excel'") == [("P0002",)]
    calendar = query(url, "SELECT store_id, day, weekday, open FROM core.store_calendar ORDER BY source, day")
    expected = [
        (store or None, None if pd.isna(day) else day.date(), weekday or None, bool(open_))
        for store, day, weekday, open_ in retailer.calendar[["store_id", "day", "weekday", "open"]].itertuples(
            index=False
        )
    ]  # fmt: skip
    in_order = sorted(expected, key=lambda row: (row[1] is None, row[1] or dt.date.min))
    assert calendar == [*in_order, (None, None, "Tuesday", False)]
    calendar_pull = next(
        m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "api_store_calendar"
    )
    assert calendar_pull.materialization.metadata["removed"].value == 1  # S01's Mondays, dropped by the back office

    counts = {
        m.asset_key.path[-1]: (m.materialization.metadata["updated"].value, m.materialization.metadata["removed"].value)
        for m in again.get_asset_materialization_events()
    }
    assert counts["api_store_calendar"] == counts["api_promotions"] == (0, 0)


# Eight UTC days, inclusive, of about 27 lines a day: 5 pages of 50; 30 days later still holds sales.
WINDOW, PAGE = ("2026-10-15", "2026-10-22"), 50
WINDOW_QUERY = {"from": WINDOW[0], "to": "2026-10-23"}


@pytest.fixture
def proxy(api) -> Iterator[FaultProxy]:
    with FaultProxy(api.base_url, TOKEN) as fault_proxy:
        yield fault_proxy


def warehouse_state(url: str) -> dict:
    """What a user compares before and after a failed pull: counts, every sales line, the sales pulls on record."""
    return table_counts(url) | {
        "sales lines": query(url, "SELECT order_id, line_number, sold_at, quantity, revenue, source FROM core.sales"
                                  " ORDER BY order_id, line_number"),
        "sales pulls": query(url, "SELECT count(*) FROM ops.api_pulls WHERE endpoint = 'sales'"),
        "sales records landed": query(url, "SELECT count(*) FROM raw.api_records WHERE endpoint = 'sales'"),
    }  # fmt: skip


def failure_reason(result: dg.ExecuteInProcessResult) -> str:
    """The one line `sales-pipeline pull-sales` prints for a failed run."""
    from sales_pipeline.cli import _outcome

    return _outcome("pull", result)["reason"]


def served_lines(api, page: int | None = None) -> dict:
    params = WINDOW_QUERY | ({"page": page, "size": PAGE} if page is not None else {"size": 1})
    return requests.get(f"{api.base_url}/api/v1/sales", params=params, headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=10).json()  # fmt: skip


def in_other_words(proxy: FaultProxy, endpoint: str, query: dict[str, str], body: bytes) -> bytes:
    """Page 1 of the sales says the same lines otherwise, as the contract allows: soldAt without its seconds,
    whole amounts as JSON integers, a field the client does not know."""
    if endpoint != "sales" or query.get("page") != "1":
        return body
    payload = json.loads(body)
    for record in payload["content"]:
        record["soldAt"] = re.sub(r"T(\d\d:\d\d):00", r"T\1", record["soldAt"])
        record |= {name: int(record[name]) for name in ("unitPrice", "discount") if record[name] == int(record[name])}
        record["channel"] = "till"
    return json.dumps(payload).encode()


def test_a_page_in_other_words_lands_the_same_lines(empty_warehouse, api, proxy):
    """Pages are read by a fast check of each column, and a page it leaves to pydantic (an instant written
    otherwise) lands what pydantic reads: the same lines, nothing changed; the raw records keep every field."""
    pull(empty_warehouse, api.base_url, WINDOW, page_size=PAGE)
    before = warehouse_state(empty_warehouse)
    proxy.rewrite = in_other_words

    assert pull(empty_warehouse, proxy.base_url, WINDOW, page_size=PAGE).success

    assert warehouse_state(empty_warehouse)["sales lines"] == before["sales lines"]
    last_sales_pull = "(SELECT max(pull_id) FROM ops.api_pulls WHERE endpoint = 'sales')"
    changed = query(
        empty_warehouse,
        f"SELECT records, inserted, updated, removed FROM ops.api_pulls WHERE pull_id = {last_sales_pull}",
    )
    assert changed == [(len(before["sales lines"]), 0, 0, 0)]
    channels = query(
        empty_warehouse,
        "SELECT count(*) FILTER (WHERE record ->> 'channel' = 'till'), count(*) FILTER (WHERE record ->> 'soldAt'"
        " ~ 'T\\d\\d:\\d\\d[-+Z]') FROM raw.api_records WHERE pull_id = " + last_sales_pull,
    )
    assert channels == [(PAGE, PAGE)]


def not_finite(field: str, number: float) -> Callable[[FaultProxy, str, dict[str, str], bytes], bytes]:
    """Page 1's record 3 says `field` is NaN or Infinity: numbers JSON does not have, though some servers write them."""

    def rewrite(proxy: FaultProxy, endpoint: str, query: dict[str, str], body: bytes) -> bytes:
        if endpoint != "sales" or query.get("page") != "1":
            return body
        payload = json.loads(body)
        payload["content"][3][field] = number
        return json.dumps(payload).encode()

    return rewrite


@pytest.mark.parametrize(
    ("field", "number", "message"),
    [
        ("lineTotal", float("nan"), "lineTotal: must be a finite number (got NaN)"),
        ("unitPrice", float("inf"), "unitPrice: must be a finite number (got Infinity)"),
        ("channel", float("nan"), "a number that is not finite (NaN or Infinity), which JSON does not allow"),
    ],
    ids=["NaN revenue", "infinite price", "NaN in a field the client does not know"],
)
def test_a_number_json_does_not_have_fails_the_pull_naming_its_record(empty_warehouse, api, proxy, field, number,
                                                                       message):  # fmt: skip
    pull(empty_warehouse, api.base_url, WINDOW, page_size=PAGE)
    before = warehouse_state(empty_warehouse)
    proxy.rewrite = not_finite(field, number)

    result = pull(empty_warehouse, proxy.base_url, WINDOW, page_size=PAGE)

    assert not result.success
    assert f"GET /api/v1/sales page 1, record 3: {message}" in failure_reason(result), failure_reason(result)
    assert warehouse_state(empty_warehouse) == before


@pytest.mark.parametrize(
    ("lie", "message"),
    [
        (
            lambda: later_records(page=1, days=30),
            r"GET /api/v1/sales page 1, record 0 \(orderId \S+, lineNumber \d+\): soldAt 2026-11-\S+ is outside"
            r" the requested window 2026-10-15 \.\. 2026-10-23 \(UTC days, to exclusive\); nothing was written$",
        ),
        (
            lambda: shifted_page(page=1),
            r"GET /api/v1/sales page 1, record 0 \(orderId \S+, lineNumber \d+\): already served on page 0",
        ),
        (
            lambda: dropped_record(page=1, index=5, deleted=False),
            r"GET /api/v1/sales page \d: the \d pages hold (\d+) distinct records, but totalElements is \d+",
        ),
    ],
    ids=["records from 30 days later", "shifted offset page", "a record lost on the way"],
)
def test_a_page_that_lies_fails_the_pull_and_changes_nothing(empty_warehouse, api, proxy, lie, message):
    pull(empty_warehouse, api.base_url, WINDOW, page_size=PAGE)  # the truth first: real lines a lie would delete
    before = warehouse_state(empty_warehouse)
    proxy.rewrite = lie()

    result = pull(empty_warehouse, proxy.base_url, WINDOW, page_size=PAGE)

    assert not result.success
    assert re.search(message, failure_reason(result)), failure_reason(result)
    assert warehouse_state(empty_warehouse) == before


def test_a_line_deleted_in_the_back_office_goes_and_the_marts_refresh_its_day(empty_warehouse, api, proxy):
    pull(empty_warehouse, api.base_url, WINDOW, page_size=PAGE)
    gone = served_lines(api, page=1)["content"][5]
    query(empty_warehouse, "UPDATE ops.api_pulls SET marts_absorbed_at = now() RETURNING pull_id")  # marts up to date
    proxy.rewrite = dropped_record(page=1, index=5, deleted=True)

    result = pull(empty_warehouse, proxy.base_url, WINDOW, page_size=PAGE)

    assert result.success
    assert result.asset_materializations_for_node("ingest__api_sales")[0].metadata["removed"].value == 1
    line = "SELECT count(*) FROM core.sales WHERE order_id = %s AND line_number = %s"
    assert query(empty_warehouse, line, (gone["orderId"], gone["lineNumber"])) == [(0,)]
    # Nothing else changed, yet the pull is pending for the marts over the day the line left.
    pending = query(empty_warehouse, "SELECT first_sale, last_sale FROM ops.pending_sales_changes('UTC')")
    day = dt.datetime.fromisoformat(gone["soldAt"]).astimezone(dt.UTC).date()
    assert pending == [(day, day)]


SLOWNESS = {"40 s latency": {"latency_s": 40.0}, "dripped body": {"drip_s": 0.05}}


@pytest.mark.parametrize("slowness", SLOWNESS.values(), ids=SLOWNESS.keys())
def test_a_back_office_too_slow_fails_at_the_deadline_and_changes_nothing(empty_warehouse, api, proxy, slowness):
    pull(empty_warehouse, api.base_url, WINDOW, page_size=PAGE)
    before = warehouse_state(empty_warehouse)
    proxy.where = lambda endpoint, page: endpoint == "sales" and page == 1
    for name, value in slowness.items():
        setattr(proxy, name, value)

    result = pull(empty_warehouse, proxy.base_url, WINDOW, page_size=PAGE, read_timeout_s=1.0, deadline_s=3.0)

    assert not result.success
    assert re.search(
        r"GET /api/v1/sales page 1: the pull did not finish within 3 s \(JAVA_API_DEADLINE_S; last: ",
        failure_reason(result),
    ), failure_reason(result)
    assert warehouse_state(empty_warehouse) == before


@pytest.mark.parametrize("slowness", SLOWNESS.values(), ids=SLOWNESS.keys())
def test_a_pull_never_outlasts_its_deadline(api, proxy, slowness):
    for name, value in slowness.items():
        setattr(proxy, name, value)
    client = JavaApiClient(proxy.base_url, TOKEN, page_size=PAGE, read_timeout_s=1.0, deadline_s=2.5)

    started = time.monotonic()
    with pytest.raises(JavaApiError, match=r"^GET /api/v1/sales page 0: .*\(JAVA_API_DEADLINE_S; last: "):
        client.fetch_all("sales", WINDOW_QUERY)
    assert time.monotonic() - started < 2.5 + 0.5


ONCE: dict[str, tuple[Callable[[FaultProxy], None], str]] = {
    "truncated body": (lambda p: setattr(p, "rewrite", truncated(page=1)), "invalid JSON"),
    "connection cut mid-body": (lambda p: setattr(p, "cut_times", 1), "ProtocolError"),
    "dripped body": (lambda p: (setattr(p, "drip_s", 0.05), setattr(p, "drip_times", 1)), "slow response"),
}


@pytest.mark.parametrize(("fault", "reason"), ONCE.values(), ids=ONCE.keys())
def test_a_body_broken_once_is_retried_and_the_pull_completes(empty_warehouse, api, proxy, fault, reason):
    proxy.where = lambda endpoint, page: endpoint == "sales" and page == 1
    fault(proxy)

    result = pull(empty_warehouse, proxy.base_url, WINDOW, page_size=PAGE, read_timeout_s=1.0)

    assert result.success
    metadata = result.asset_materializations_for_node("ingest__api_sales")[0].metadata
    assert metadata["retry_reasons"].value == {reason: 1}
    loaded = query(empty_warehouse, "SELECT count(*) FROM core.sales WHERE source = 'api'")[0][0]
    assert loaded == metadata["rows_pulled"].value == served_lines(api)["page"]["totalElements"]


@pytest.mark.slow
def test_pull_sales_prints_the_clients_message_and_exits_1(warehouse_url, empty_warehouse, proxy, pipeline_home):
    shutil.rmtree(pipeline_home / "cli-pull", ignore_errors=True)  # a Dagster home of its own, fresh
    proxy.rewrite = truncated(page=0, times=1000)  # every answer cut: the deadline ends the retries
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "JAVA_API_"))} | {
        "SALES_PIPELINE_DATABASE_URL": warehouse_url,
        "SALES_PIPELINE_HOME": str(pipeline_home / "cli-pull"),
        "JAVA_API_BASE_URL": proxy.base_url,
        "JAVA_API_TOKEN": TOKEN,
        "JAVA_API_DEADLINE_S": "3",
    }
    command = [str(Path(sys.executable).with_name("sales-pipeline")), "pull-sales"]
    done = subprocess.run([*command, "--from", WINDOW[0], "--to", WINDOW[1]], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip

    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    expected = (
        r"^Error: (\S+JavaApiError: )?GET /api/v1/sales page 0: the pull did not finish within 3 s"
        r" \(JAVA_API_DEADLINE_S; last: the response is not valid JSON \([\d,]+ bytes: truncated\?\)\)"
    )
    assert re.match(expected, last), done.stderr
    assert "JSONDecodeError" not in done.stderr and "Traceback" not in done.stderr
    assert query(warehouse_url, "SELECT count(*) FROM core.sales")[0][0] == 0


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_a_deadline_that_is_not_a_number_of_seconds_names_the_setting(monkeypatch, value):
    from sales_pipeline.settings import Settings

    monkeypatch.setenv("JAVA_API_DEADLINE_S", value)
    with pytest.raises(ValueError, match=rf"^JAVA_API_DEADLINE_S='{value}' is not a number of seconds"):
        Settings.from_environment()
    monkeypatch.setenv("JAVA_API_DEADLINE_S", "90")
    assert Settings.from_environment().java_api_deadline_s == 90.0


def test_a_product_another_writer_adds_meanwhile_is_merged_not_a_failure(empty_warehouse):
    """The merge inserts new keys without ON CONFLICT; a key another transaction commits in between falls back
    to the upsert: the pull's values win, and the pull counts that product as changed, not new."""
    from concurrent.futures import ThreadPoolExecutor

    from sales_pipeline.javaapi.load import merge_products
    from sales_pipeline.javaapi.records import Product

    def product(product_id: str, price: float) -> Product:
        return Product(
            product_id=product_id, sku=f"SKU-{product_id}", name=f"Product {product_id}", category="Tea",
            unit_price=price, reorder_point=5, lead_time_days=3, supplier="Leaf & Co", active=True,
            updated_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
        )  # fmt: skip

    waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    with ThreadPoolExecutor(1) as pool:
        with transaction(empty_warehouse) as other:  # commits (or, failing, rolls back) before the pool ends
            other.execute("INSERT INTO core.products (product_id, unit_price, source) VALUES ('P-1', 1, 'excel')")
            merging = pool.submit(
                _merge_in_transaction, empty_warehouse, merge_products, [product("P-1", 9.5), product("P-2", 4)]
            )
            for _ in range(400):  # until the pull's INSERT waits on the other writer's uncommitted P-1
                if query(empty_warehouse, waiting)[0][0]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the pull's merge never waited on the other writer")
        counts = merging.result(timeout=60)

    assert (counts.inserted, counts.updated) == (1, 1)
    assert query(empty_warehouse, "SELECT product_id, unit_price::float, source FROM core.products ORDER BY 1") == [
        ("P-1", 9.5, "api"),
        ("P-2", 4.0, "api"),
    ]


def _merge_in_transaction(url: str, merge: Callable, records: list):
    with transaction(url) as cursor:
        return merge(cursor, records)
