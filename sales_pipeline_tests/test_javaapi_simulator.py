"""The back office's API simulator, over real HTTP on loopback: contract, data, faults, records, OpenAPI file."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from sales_pipeline.demo.retailer import DEFAULT_END, generate_retailer
from sales_pipeline.demo.simulator import JavaApiSimulator
from sales_pipeline.javaapi.records import RECORD_MODELS, InvalidPage, SaleLine, parse_page

SEED, SCALE, DAYS = 11, 1, 60
TOKEN = "test-token-0123"
FIRST_DAY = DEFAULT_END - dt.timedelta(days=DAYS - 1)
WHOLE = {"from": FIRST_DAY.isoformat(), "to": (DEFAULT_END + dt.timedelta(days=1)).isoformat()}
OPENAPI = Path(__file__).resolve().parents[1] / "sales_pipeline" / "javaapi" / "openapi.yaml"


@pytest.fixture(scope="module")
def retailer():
    return generate_retailer(scale=SCALE, seed=SEED, days=DAYS)


@pytest.fixture(scope="module")
def api() -> Iterator[JavaApiSimulator]:
    with JavaApiSimulator(seed=SEED, scale=SCALE, days=DAYS, token=TOKEN) as simulator:
        yield simulator


@pytest.fixture
def session(api: JavaApiSimulator) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        yield s
    requests.delete(api.base_url + "/admin/faults", timeout=5).raise_for_status()
    requests.delete(api.base_url + "/admin/stats", timeout=5).raise_for_status()


def get(session: requests.Session, api: JavaApiSimulator, endpoint: str, **params) -> requests.Response:
    return session.get(f"{api.base_url}/api/v1/{endpoint}", params=params, timeout=10)


def pull(session, api, endpoint: str, size: int, **params) -> tuple[list, list]:
    """Every page, validated by parse_page: (records, page infos)."""
    records, pages, number, total_pages = [], [], 0, 1
    while number < total_pages:
        response = get(session, api, endpoint, page=number, size=size, **params)
        assert response.status_code == 200, response.text
        page_records, info = parse_page(endpoint, number, response.json())
        records += page_records
        pages.append(info)
        total_pages = info.total_pages
        number += 1
    return records, pages


def faults(api: JavaApiSimulator, **spec) -> dict:
    response = requests.post(api.base_url + "/admin/faults", json=spec, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def stats(api: JavaApiSimulator) -> dict:
    return requests.get(api.base_url + "/admin/stats", timeout=5).json()


def sales_with_instants(retailer) -> pd.DataFrame:
    """The generator's lines with their UTC instant: sold_at is the store's local wall time."""
    zones = dict(zip(retailer.stores["store_id"], retailer.stores["timezone"], strict=True))
    parts = []
    for store, lines in retailer.sales.groupby("store_id"):
        lines = lines.copy()
        lines["instant"] = lines["sold_at"].dt.tz_localize(zones[store]).dt.tz_convert("UTC")
        parts.append(lines)
    return pd.concat(parts, ignore_index=True)


def assert_error(response: requests.Response, status: int, path: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"timestamp", "status", "error", "message", "path"}
    assert body["status"] == status and body["path"] == path
    assert body["error"] == HTTPStatus(status).phrase
    dt.datetime.fromisoformat(body["timestamp"])
    return body


# Data ------------------------------------------------------------------------------------------------


def test_sales_pages_match_the_generated_retailer(api, session, retailer):
    records, pages = pull(session, api, "sales", 250, **WHOLE)
    expected = sales_with_instants(retailer)

    total = len(expected)
    assert [p.total_elements for p in pages] == [total] * len(pages)
    assert len(pages) == pages[0].total_pages == math.ceil(total / 250)
    assert len(records) == total
    assert len({r.key for r in records}) == total
    order = [(r.sold_at.astimezone(dt.UTC), r.order_id, r.line_number) for r in records]
    assert order == sorted(order)

    got = pd.DataFrame([r.model_dump() for r in records])
    got["day"] = [r.sold_at.astimezone(dt.UTC).date() for r in records]
    expected["day"] = expected["instant"].dt.date
    per_day = got.groupby("day").agg(lines=("order_id", "size"), revenue=("line_total", "sum"))
    want = expected.groupby("day").agg(lines=("order_id", "size"), revenue=("revenue", "sum"))
    pd.testing.assert_series_equal(per_day["lines"], want["lines"], check_names=False)
    assert (per_day["revenue"] - want["revenue"]).abs().max() < 1e-6

    # Same ids, same values, line by line.
    merged = got.merge(expected, on=["order_id", "line_number"], suffixes=("", "_x"), validate="1:1")
    assert len(merged) == total
    for column in ("store_id", "product_id", "quantity", "unit_price", "discount", "promotion"):
        assert (merged[column] == merged[f"{column}_x"]).all(), column
    assert (merged["customer_id"].fillna("") == merged["customer_id_x"].fillna("")).all()
    assert (merged["line_total"] == merged["revenue"]).all()
    instants = pd.to_datetime(merged["sold_at"].map(lambda t: t.astimezone(dt.UTC)))
    assert (instants == merged["instant"]).all()
    # soldAt carries the store's offset: its wall time is the workbook's sold_at.
    assert all(
        r.sold_at.replace(tzinfo=None) == s for r, s in zip(records[:50], _local(expected, records[:50]), strict=True)
    )


def _local(expected: pd.DataFrame, records: list) -> list:
    by_key = expected.set_index(["order_id", "line_number"])["sold_at"]
    return [by_key[(r.order_id, r.line_number)].to_pydatetime() for r in records]


def test_sales_date_windows_are_utc_days_from_inclusive_to_exclusive(api, session, retailer):
    expected = sales_with_instants(retailer)
    per_day = expected.groupby(expected["instant"].dt.date).size()
    for day in (per_day.index[0], per_day.index[len(per_day) // 2], per_day.index[-1]):
        window = {"from": day.isoformat(), "to": (day + dt.timedelta(days=1)).isoformat()}
        records, _ = pull(session, api, "sales", 1000, **window)
        assert len(records) == per_day[day]
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        assert all(start <= r.sold_at < start + dt.timedelta(days=1) for r in records)
    week = {"from": per_day.index[0].isoformat(), "to": (per_day.index[0] + dt.timedelta(days=7)).isoformat()}
    body = get(session, api, "sales", size=1, **week).json()
    first_week = expected["instant"].dt.date < per_day.index[0] + dt.timedelta(days=7)
    assert body["page"]["totalElements"] == int(first_week.sum())

    empty = get(session, api, "sales", **{"from": "2026-11-10", "to": "2026-11-10"}).json()
    assert empty == {"content": [], "page": {"size": 20, "number": 0, "totalElements": 0, "totalPages": 0}}
    before = get(session, api, "sales", **{"from": "2020-01-01", "to": "2020-02-01"}).json()
    assert before["page"]["totalElements"] == 0
    past_the_end = get(session, api, "sales", page=99, size=1000, **WHOLE).json()
    assert past_the_end["content"] == [] and past_the_end["page"]["number"] == 99
    assert past_the_end["page"]["totalElements"] == len(expected)


def test_utc_day_windows_cut_a_new_york_evening_into_the_next_day():
    three = generate_retailer(scale=3, seed=SEED, days=30)
    expected = sales_with_instants(three)
    new_york = three.stores.loc[three.stores["timezone"] == "America/New_York", "store_id"].item()
    crossing = expected[expected["instant"].dt.date != expected["sold_at"].dt.date]
    assert len(crossing) and set(crossing["store_id"]) == {new_york}
    day = crossing["instant"].dt.date.iloc[len(crossing) // 2]
    window = {"from": day.isoformat(), "to": (day + dt.timedelta(days=1)).isoformat(), "size": 1000}
    with JavaApiSimulator(seed=SEED, scale=3, days=30, token=TOKEN, retailer=three) as sim:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        body = requests.get(sim.base_url + "/api/v1/sales", params=window, headers=headers, timeout=5).json()
    assert body["page"]["totalElements"] == int((expected["instant"].dt.date == day).sum())
    offsets = {line["soldAt"][-6:] for line in body["content"] if line["storeId"] == new_york}
    assert offsets == {"-05:00"}  # November: EST
    assert any(line["soldAt"][:10] != day.isoformat() for line in body["content"])  # local evening of the day before


def test_products_match_and_updated_since_filters(api, session, retailer):
    records, pages = pull(session, api, "products", 7)
    assert len(pages) == math.ceil(len(retailer.products) / 7)
    got = pd.DataFrame([r.model_dump() for r in records])
    want = retailer.products.sort_values("product_id", ignore_index=True)
    assert got["product_id"].tolist() == want["product_id"].tolist()
    for column in ("sku", "name", "category", "unit_price", "reorder_point", "lead_time_days", "supplier", "active"):
        assert got[column].tolist() == want[column].tolist(), column
    assert got["unit_cost"].isna().tolist() == want["unit_cost"].isna().tolist()
    assert (got["unit_cost"].dropna() == want["unit_cost"].dropna()).all()

    # Believable updatedAt: most long ago, some recent, none after the last day.
    updated = sorted(r.updated_at for r in records)
    end = dt.datetime.combine(DEFAULT_END + dt.timedelta(days=1), dt.time(), dt.UTC)
    assert updated[-1] < end
    assert sum(u < end - dt.timedelta(days=DAYS) for u in updated) > len(updated) / 2
    assert 2 <= sum(u >= end - dt.timedelta(days=14) for u in updated) < len(updated) / 4
    assert all(u.microsecond % 1000 == 0 for u in updated)  # Instant with milliseconds

    since = updated[-5]  # inclusive: exactly five products at or after it
    changed, _ = pull(session, api, "products", 2, updatedSince=since.isoformat().replace("+00:00", "Z"))
    assert sorted(r.updated_at for r in changed) == updated[-5:]
    assert [r.product_id for r in changed] == sorted(r.product_id for r in changed)
    in_paris = since.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()
    assert get(session, api, "products", updatedSince=in_paris).json()["page"]["totalElements"] == 5
    # An unencoded '+' arrives as a space; it is read as the offset it was.
    raw = session.get(f"{api.base_url}/api/v1/products?updatedSince={in_paris}", timeout=5)
    assert raw.json()["page"]["totalElements"] == 5
    future = get(session, api, "products", updatedSince="2030-01-01T00:00:00Z").json()
    assert future["content"] == [] and future["page"]["totalPages"] == 0


def test_touch_moves_one_product_for_the_next_incremental_pull(retailer):
    with JavaApiSimulator(seed=SEED, scale=SCALE, days=DAYS, token=TOKEN, retailer=retailer) as sim:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        products = requests.get(sim.base_url + "/api/v1/products?size=1000", headers=headers, timeout=5).json()
        cursor = max(p["updatedAt"] for p in products["content"])
        target = products["content"][3]
        response = requests.post(f"{sim.base_url}/admin/products/{target['productId']}/touch", timeout=5)
        assert response.status_code == 200, response.text
        touched = response.json()
        assert touched["unitPrice"] == round(target["unitPrice"] * 1.05, 2)
        assert touched["updatedAt"] > cursor
        params = {"updatedSince": cursor, "size": 1000}
        after = requests.get(sim.base_url + "/api/v1/products", params=params, headers=headers, timeout=5).json()
        ids = [p["productId"] for p in after["content"]]
        assert target["productId"] in ids and len(ids) == 2  # the touched one and the cursor's own (inclusive)
        explicit = {"unitPrice": 1.23, "updatedAt": "2026-12-01T10:00:00.000Z"}
        again = requests.post(f"{sim.base_url}/admin/products/{target['productId']}/touch", json=explicit, timeout=5)
        assert again.json()["unitPrice"] == 1.23 and again.json()["updatedAt"] == "2026-12-01T10:00:00.000Z"
        missing = requests.post(f"{sim.base_url}/admin/products/NOPE/touch", timeout=5)
        assert_error(missing, 404, "/admin/products/NOPE/touch")


def test_stock_is_the_latest_count_per_store_and_product(api, session, retailer):
    records, _ = pull(session, api, "stock", 1000)
    latest = retailer.stock[retailer.stock["as_of"] == retailer.stock["as_of"].max()]
    latest = latest.sort_values(["store_id", "product_id"], ignore_index=True)
    assert [(r.store_id, r.product_id) for r in records] == list(
        zip(latest["store_id"], latest["product_id"], strict=True)
    )
    assert [r.on_hand for r in records] == latest["on_hand"].tolist()
    assert [r.on_order for r in records] == latest["on_order"].tolist()
    assert {r.as_of for r in records} == {DEFAULT_END}


# Contract: auth and parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"])
def test_missing_or_wrong_token_is_a_401_spring_error(api, session, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(f"{api.base_url}/api/v1/sales", params=WHOLE, headers=headers, timeout=5)
    body = assert_error(response, 401, "/api/v1/sales")
    assert body["error"] == "Unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in response.text


@pytest.mark.parametrize(
    ("endpoint", "params", "says"),
    [
        ("sales", {**WHOLE, "size": 1001}, "size: must be at most 1000 (got 1001)"),
        ("products", {"size": 5000}, "size: must be at most 1000"),
        ("stock", {"size": 0}, "size: must be 1 or more"),
        ("stock", {"page": -1}, "page: must be 0 or more"),
        ("stock", {"page": "two"}, "page: must be a whole number"),
        ("sales", {"to": "2026-11-02"}, "'from'"),
        ("sales", {"from": "2026-11-01"}, "'to'"),
        ("sales", {"from": "2026-02-30", "to": "2026-03-02"}, "from: must be an ISO date"),
        ("sales", {"from": "01/11/2026", "to": "2026-11-02"}, "from: must be an ISO date"),
        ("sales", {"from": "2026-11-03", "to": "2026-11-02"}, "must not be after to"),
        ("products", {"updatedSince": "2026-11-01"}, "updatedSince: must be an ISO-8601 instant with an offset"),
        ("products", {"updatedSince": "2026-11-01T00:00:00"}, "updatedSince: must be an ISO-8601 instant"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_parameter(api, session, endpoint, params, says):
    body = assert_error(get(session, api, endpoint, **params), 400, f"/api/v1/{endpoint}")
    assert says in body["message"]


def test_size_1000_is_allowed_and_unknown_paths_are_404(api, session):
    assert get(session, api, "stock", size=1000).status_code == 200
    assert_error(session.get(api.base_url + "/api/v1/orders", timeout=5), 404, "/api/v1/orders")
    assert_error(session.get(api.base_url + "/nowhere", timeout=5), 404, "/nowhere")
    assert_error(session.post(api.base_url + "/api/v1/sales", timeout=5), 405, "/api/v1/sales")
    assert requests.get(api.base_url + "/actuator/health", timeout=5).json() == {"status": "UP"}


# Faults ------------------------------------------------------------------------------------------------------


def test_latency_is_added_to_every_api_response(api, session):
    faults(api, latency_ms=150)
    started = time.perf_counter()
    assert get(session, api, "stock", size=1).status_code == 200
    assert requests.get(api.base_url + "/api/v1/stock", timeout=5).status_code == 401
    assert time.perf_counter() - started >= 0.3


@pytest.mark.parametrize(("status", "retry_after"), [(503, "2"), (500, None)])
def test_fail_next_fails_exactly_the_next_requests(api, session, status, retry_after):
    state = faults(api, fail_next={"count": 2, "status": status, "retry_after": 2})
    assert state["fail_next"]["count"] == 2
    for _ in range(2):
        response = get(session, api, "sales", **WHOLE)
        assert_error(response, status, "/api/v1/sales")
        assert response.headers.get("Retry-After") == retry_after
    assert get(session, api, "sales", **WHOLE).status_code == 200
    assert stats(api)["requests"]["sales"] == 3
    assert stats(api)["statuses"] == {str(status): 2, "200": 1}
    assert requests.get(api.base_url + "/admin/faults", timeout=5).json()["fail_next"]["count"] == 0


def test_fail_next_can_target_one_endpoint(api, session):
    faults(api, fail_next={"count": 1, "endpoint": "products"})
    assert get(session, api, "stock").status_code == 200
    assert get(session, api, "products").status_code == 503
    assert get(session, api, "products").status_code == 200


def test_rate_limit_is_a_429_with_retry_after(api, session):
    faults(api, rate_limit_next={"count": 1, "retry_after": 3})
    response = get(session, api, "products")
    body = assert_error(response, 429, "/api/v1/products")
    assert response.headers["Retry-After"] == "3"
    assert body["error"] == "Too Many Requests"
    assert get(session, api, "products").status_code == 200


def test_reset_closes_the_connection_without_a_response(api, session):
    assert get(session, api, "stock").status_code == 200  # a kept-alive connection, as a pull has
    faults(api, reset_next=1)
    with pytest.raises(requests.ConnectionError):
        get(session, api, "stock")
    assert get(session, api, "stock").status_code == 200
    assert stats(api)["statuses"]["reset"] == 1


def test_truncated_page_fails_to_parse_once(api, session):
    faults(api, truncate_page={"endpoint": "sales", "page": 1, "times": 1})
    assert get(session, api, "sales", page=0, size=100, **WHOLE).json()["content"]
    response = get(session, api, "sales", page=1, size=100, **WHOLE)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    with pytest.raises(ValueError):
        response.json()
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert len(get(session, api, "sales", page=1, size=100, **WHOLE).json()["content"]) == 100


def test_bad_record_makes_parse_page_name_page_record_and_field(api, session):
    faults(api, bad_record={"endpoint": "sales", "page": 1, "index": 3})
    first, _ = parse_page("sales", 0, get(session, api, "sales", page=0, size=10, **WHOLE).json())
    assert len(first) == 10
    payload = get(session, api, "sales", page=1, size=10, **WHOLE).json()
    assert payload["content"][3]["quantity"] == 0
    with pytest.raises(InvalidPage) as caught:
        parse_page("sales", 1, payload)
    assert str(caught.value) == "GET /api/v1/sales page 1, record 3: quantity: must be 1 or more (got 0)"
    assert (caught.value.page, caught.value.index, caught.value.field) == (1, 3, "quantity")

    faults(api, bad_record={"endpoint": "sales", "page": 0, "index": 7, "field": "productId", "missing": True})
    payload = get(session, api, "sales", page=0, size=10, **WHOLE).json()
    with pytest.raises(InvalidPage, match=r"^GET /api/v1/sales page 0, record 7: productId: required but missing$"):
        parse_page("/api/v1/sales", 0, payload)
    assert parse_page("sales", 1, get(session, api, "sales", page=1, size=10, **WHOLE).json())

    faults(api, bad_record={"endpoint": "stock", "page": 0})
    with pytest.raises(InvalidPage, match=r"page 0, record 0: onHand: must be 0 or more \(got -1\)"):
        parse_page("stock", 0, get(session, api, "stock", size=5).json())


def test_shifting_total_adds_a_line_after_a_page_and_shifts_later_pages(api, session, retailer):
    total = len(retailer.sales)
    faults(api, shifting_total={"endpoint": "sales", "after_page": 1})
    page0 = get(session, api, "sales", page=0, size=50, **WHOLE).json()
    page1 = get(session, api, "sales", page=1, size=50, **WHOLE).json()
    page2 = get(session, api, "sales", page=2, size=50, **WHOLE).json()
    assert page0["page"]["totalElements"] == page1["page"]["totalElements"] == total
    assert page2["page"]["totalElements"] == total + 1
    assert page2["content"][0] == page1["content"][-1]  # everything moved one place down
    assert stats(api)["added_sales_lines"] == 1
    assert requests.get(api.base_url + "/admin/faults", timeout=5).json()["shifting_total"]["fired"] is True

    # A pull that starts again sees one consistent result, with the new line once.
    records, pages = pull(session, api, "sales", 50, **WHOLE)
    assert {p.total_elements for p in pages} == {total + 1}
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) == total + 1
    known = set(zip(retailer.sales["order_id"], retailer.sales["line_number"], strict=True))
    (new,) = [r for r in records if r.key not in known]
    assert records[0] == new and new.quantity == 1 and new.customer_id is None

    requests.delete(api.base_url + "/admin/faults", timeout=5)
    assert get(session, api, "sales", size=1, **WHOLE).json()["page"]["totalElements"] == total


def test_fail_rate_is_a_seeded_share_of_503s(api, session):
    def statuses() -> list[int]:
        faults(api, fail_rate={"rate": 0.3, "seed": 5, "retry_after": 0})
        return [get(session, api, "stock", size=1).status_code for _ in range(40)]

    first = statuses()
    assert set(first) == {200, 503} and 4 <= first.count(503) <= 20
    assert statuses() == first  # the same seed, the same sequence
    assert stats(api)["requests"]["stock"] == 80


def test_fault_admin_validates_merges_and_clears(api):
    bad = requests.post(api.base_url + "/admin/faults", json={"fail_next": {"count": 1, "status": 404}}, timeout=5)
    assert "fail_next.status" in assert_error(bad, 400, "/admin/faults")["message"]
    unknown = requests.post(api.base_url + "/admin/faults", json={"explode": True}, timeout=5)
    assert "explode: unknown fault" in assert_error(unknown, 400, "/admin/faults")["message"]
    field = requests.post(api.base_url + "/admin/faults", json={"bad_record": {"page": 0, "field": "nope"}}, timeout=5)
    assert "no field 'nope'" in assert_error(field, 400, "/admin/faults")["message"]

    faults(api, latency_ms=5)
    state = faults(api, reset_next=2, fail_rate=0.1)  # merged over what is set
    assert state["latency_ms"] == 5 and state["reset_next"] == 2 and state["fail_rate"]["rate"] == 0.1
    cleared = requests.delete(api.base_url + "/admin/faults", timeout=5).json()
    assert cleared["latency_ms"] == 0 and cleared["reset_next"] == 0 and cleared["fail_rate"] is None


# Records ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ([], "page 2: the body must be a Spring Page JSON object"),
        ({"page": {}}, "page 2: content: required but missing"),
        ({"content": {}, "page": {}}, "page 2: content: must be a JSON array"),
        ({"content": []}, "page 2: page: required but missing"),
        ({"content": [], "page": {"size": 10, "number": 2, "totalPages": 1}}, "page.totalElements: required"),
        ({"content": [], "page": {"size": 10, "number": 1, "totalElements": 0, "totalPages": 0}}, "page.number is 1"),
    ],
)
def test_parse_page_rejects_a_broken_envelope(payload, says):
    with pytest.raises(InvalidPage, match=re.escape(says)):
        parse_page("sales", 2, payload)


GOOD_LINE = {
    "orderId": "O-0000001",
    "lineNumber": 1,
    "soldAt": "2026-11-02T10:15:00+01:00",
    "storeId": "S01",
    "customerId": None,
    "productId": "P0001",
    "quantity": 2,
    "unitPrice": 4.49,
    "discount": 0.1,
    "promotion": True,
    "lineTotal": 8.08,
}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"quantity": 2.5}, "quantity: must be a whole number (got 2.5)"),
        ({"quantity": "2"}, 'quantity: must be a whole number (got "2")'),
        ({"discount": 1.5}, "discount: must be 1.0 or less (got 1.5)"),
        ({"unitPrice": -0.01}, "unitPrice: must be 0.0 or more (got -0.01)"),
        ({"soldAt": "2026-11-02T10:15:00"}, "soldAt: must be an ISO-8601 instant with an offset"),
        ({"soldAt": 1793600000}, "soldAt: must be an ISO-8601 instant with an offset"),
        ({"storeId": ""}, "storeId: must not be empty"),
        ({"promotion": "no"}, 'promotion: must be true or false (got "no")'),
        ({"customerId": 17}, "customerId: must be a string (got 17)"),
    ],
)
def test_parse_page_names_record_and_field_in_plain_words(change, says):
    content = [GOOD_LINE] * 4 + [{**GOOD_LINE, **change}]
    payload = {"content": content, "page": {"size": 5, "number": 0, "totalElements": 5, "totalPages": 1}}
    with pytest.raises(InvalidPage) as caught:
        parse_page("sales", 0, payload)
    message = str(caught.value)
    assert message.startswith("GET /api/v1/sales page 0, record 4: ")
    assert says in message
    assert "pydantic" not in message and "Input should" not in message


def test_records_round_trip_and_ignore_unknown_fields():
    (line,), info = parse_page(
        "sales",
        0,
        {"content": [{**GOOD_LINE, "extra": 1}], "page": {"size": 1, "number": 0, "totalElements": 1, "totalPages": 1}},
    )
    assert info.total_elements == 1 and line.customer_id is None and line.key == ("O-0000001", 1)
    assert json.loads(line.model_dump_json(by_alias=True)) == GOOD_LINE
    assert SaleLine.model_validate(line.model_dump()) == line  # snake_case names work in Python


# The OpenAPI file --------------------------------------------------------------------------------------------


def resolve(spec: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_openapi_describes_the_five_endpoints_as_served(api, session):
    spec = yaml.safe_load(OPENAPI.read_text())
    assert spec["openapi"].startswith("3.0")
    assert set(spec["paths"]) == {
        "/api/v1/products", "/api/v1/sales", "/api/v1/stock", "/api/v1/store-calendar", "/api/v1/promotions"
    }  # fmt: skip
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        **spec["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    assert spec["security"] == [{"bearerAuth": []}]
    expected_params = {
        "/api/v1/products": {"page": False, "size": False, "updatedSince": False},
        "/api/v1/sales": {"from": True, "to": True, "page": False, "size": False},
        "/api/v1/stock": {"page": False, "size": False},
        "/api/v1/store-calendar": {"page": False, "size": False},
        "/api/v1/promotions": {"page": False, "size": False},
    }
    for path, params in expected_params.items():
        operation = spec["paths"][path]["get"]
        declared = {p["name"]: p for p in (resolve(spec, p) for p in operation["parameters"])}
        assert {name: p.get("required", False) for name, p in declared.items()} == params
        assert declared["size"]["schema"]["maximum"] == 1000
        responses = operation["responses"]
        assert set(responses) == {"200", "400", "401", "404", "429", "500", "503"}
        for status in ("429", "503"):
            assert "Retry-After" in resolve(spec, responses[status])["headers"]
        error = resolve(spec, resolve(spec, responses["401"])["content"]["application/json"]["schema"])
        assert set(error["properties"]) == {"timestamp", "status", "error", "message", "path"}
        page = resolve(spec, responses["200"]["content"]["application/json"]["schema"])
        meta = resolve(spec, page["properties"]["page"])
        assert set(meta["required"]) == {"number", "size", "totalElements", "totalPages"}

        # The record schema is the model's, and what the simulator serves conforms to it.
        endpoint = path.rsplit("/", 1)[-1]
        schema = resolve(spec, page["properties"]["content"]["items"])
        model = RECORD_MODELS[endpoint]
        aliases = {f.alias: f for f in model.model_fields.values()}
        assert set(schema["properties"]) == set(aliases)
        assert set(schema["required"]) == {a for a, f in aliases.items() if f.is_required()}
        params = WHOLE if endpoint == "sales" else {}
        for record in get(session, api, endpoint, size=200, **params).json()["content"]:
            assert set(schema["required"]) <= set(record) <= set(schema["properties"])
            for name, value in record.items():
                assert _conforms(value, schema["properties"][name]), (endpoint, name, value)


def _conforms(value: object, schema: dict) -> bool:
    if value is None:
        return bool(schema.get("nullable"))
    kind = schema["type"]
    if kind == "string":
        if schema.get("format") == "date-time":
            return dt.datetime.fromisoformat(value).tzinfo is not None
        if schema.get("format") == "date":
            return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))
        if "enum" in schema:
            return value in schema["enum"]
        return isinstance(value, str) and len(value) >= schema.get("minLength", 0)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        return False
    if kind == "number" and not isinstance(value, int | float):
        return False
    return schema.get("minimum", -math.inf) <= value <= schema.get("maximum", math.inf)


# The command line ---------------------------------------------------------------------------------------------


def test_main_serves_with_fault_flags_until_terminated():
    command = [sys.executable, "-m", "sales_pipeline.demo.simulator", "--port", "0", "--seed", str(SEED)]
    command += ["--scale", "1", "--days", str(DAYS), "--token", "cli-token", "--fail-next", "1", "--retry-after", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line + process.stderr.read()
        assert "cli-token" not in line
        url, headers = match.group(1), {"Authorization": "Bearer cli-token"}
        failed = requests.get(url + "/api/v1/stock", headers=headers, timeout=5)
        assert failed.status_code == 503 and failed.headers["Retry-After"] == "0"
        served = requests.get(url + "/api/v1/stock", params={"size": 3}, headers=headers, timeout=5).json()
        assert served["page"]["totalElements"] == 40 + 20 * SCALE
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
