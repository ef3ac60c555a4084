"""The read API over a generated retailer in the real embedded PostgreSQL: each endpoint's numbers are the
marts', to the cent; tokens and roles; ETags; bad input answered with a sentence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sales_pipeline.api.app import create_app
from sales_pipeline_tests.api_fixtures import READ_TOKEN, WRITE_TOKEN, api_config, auth, load_retailer
from sales_pipeline_tests.conftest import empty_tables, query

pytestmark = pytest.mark.slow  # a generated retailer imported, forecast and served once per module
END = date(2026, 11, 22)


@pytest.fixture(scope="module")
def retailer(warehouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    empty_tables(warehouse_url)
    folder = tmp_path_factory.mktemp("api")
    load_retailer(warehouse_url, folder)
    return warehouse_url, folder


@pytest.fixture(scope="module")
def client(retailer: tuple[str, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(api_config(*retailer))) as client:
        client.headers.update(auth(READ_TOKEN))
        yield client


def cents(value: Decimal | float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_the_dashboard_is_the_marts_record(client: TestClient, retailer) -> None:
    url, _ = retailer
    response = client.get("/analytics/dashboard")
    assert response.status_code == 200, response.text
    body = response.json()
    [(document, computed_at)] = query(
        url, "SELECT document, computed_at FROM marts.dashboard WHERE scope = 'all' ORDER BY refreshed_at DESC LIMIT 1"
    )
    assert body["as_of"] == END.isoformat() == document["as_of"]
    assert body["computed_at"].replace("Z", "+00:00") == computed_at.isoformat()
    assert body["currency"] == "EUR"
    # The week's revenue to the cent, from the KPIs of the 7 days ending at as_of.
    [(week,)] = query(url, "SELECT sum(revenue) FROM marts.daily_kpis WHERE scope = 'all' AND day > %s", (END - timedelta(7),))
    assert cents(body["headline"]["revenue"]["value"]) == cents(week)
    [(day,)] = query(url, "SELECT revenue FROM marts.daily_kpis WHERE scope = 'all' AND day = %s", (END,))
    assert cents(body["headline_day"]["revenue"]["value"]) == cents(day)
    top = query(
        url,
        "SELECT product_id FROM marts.top_products WHERE as_of = %s AND period = 'last_7_days' AND scope = 'all'"
        " AND rank <= 5 ORDER BY rank, product_id",
        (END,),
    )
    assert [p["product_id"] for p in body["top_products"]] == [row[0] for row in top]


def test_a_store_has_its_own_dashboard(client: TestClient, retailer) -> None:
    url, _ = retailer
    body = client.get("/analytics/dashboard", params={"store": "S02"}).json()
    assert (body["scope"], body["scope_id"]) == ("store", "S02")
    [(week,)] = query(
        url,
        "SELECT sum(revenue) FROM marts.daily_kpis WHERE scope = 'store' AND scope_id = 'S02' AND day > %s",
        (END - timedelta(7),),
    )
    assert cents(body["headline"]["revenue"]["value"]) == cents(week)
    assert all(item["store_id"] == "S02" for item in body["stock_at_risk"])
    assert client.get("/analytics/dashboard", params={"store": "NOPE"}).status_code == 404
    assert [s["store_id"] for s in client.get("/analytics/stores").json()] == ["S01", "S02"]


def test_an_unchanged_dashboard_costs_a_304(client: TestClient) -> None:
    first = client.get("/analytics/dashboard")
    etag = first.headers["etag"]
    again = client.get("/analytics/dashboard", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get("/analytics/dashboard", headers={"If-None-Match": '"other"'}).status_code == 200
