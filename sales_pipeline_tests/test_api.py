"""The read API over a generated retailer in the real embedded PostgreSQL: each endpoint's numbers are the
marts', to the cent; tokens and roles; ETags; bad input answered with a sentence."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from sales_pipeline import settings
from sales_pipeline.alerts.store import follow_anomalies
from sales_pipeline.analytics import marts
from sales_pipeline.api.app import create_app
from sales_pipeline.i18n import Formatter
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.api_fixtures import READ_TOKEN, WRITE_TOKEN, api_config, auth, load_retailer
from sales_pipeline_tests.conftest import PROJECT, empty_tables, query

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
    [(week,)] = query(
        url, "SELECT sum(revenue) FROM marts.daily_kpis WHERE scope = 'all' AND day > %s", (END - timedelta(7),)
    )
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


def test_a_new_dashboard_replaces_the_cached_one_at_its_commit(client: TestClient, retailer) -> None:
    url, _ = retailer
    before = client.get("/analytics/dashboard").headers["etag"]
    with transaction(url) as cursor:  # the marts' refresh, as the dashboard asset makes it
        refreshed_at = marts.build_dashboard(cursor, END, timezone="UTC")["refreshed_at"]
    deadline = time.monotonic() + 2
    while (response := client.get("/analytics/dashboard")).headers["etag"] == before:
        assert time.monotonic() < deadline, "the cached dashboard outlived the new one's commit by 2 s"
        time.sleep(0.05)
    assert response.json()["refreshed_at"].replace("Z", "+00:00") == refreshed_at


def test_top_products_in_rank_order_with_rank_change(client: TestClient, retailer) -> None:
    url, _ = retailer
    body = client.get("/analytics/top-products", params={"n": 10, "period": "30d"}).json()
    expected = query(
        url,
        "SELECT rank, product_id, revenue, rank_change FROM marts.top_products"
        " WHERE as_of = %s AND period = 'last_30_days' AND scope = 'all' AND rank <= 10 ORDER BY rank, product_id",
        (END,),
    )
    assert [(p["rank"], p["product_id"], cents(p["revenue"]), p["rank_change"]) for p in body["products"]] == [
        (rank, product, cents(revenue), change) for rank, product, revenue, change in expected
    ]
    assert (body["as_of"], body["first_day"]) == (END.isoformat(), (END - timedelta(29)).isoformat())
    # Per store and per category, from the same mart.
    store = client.get("/analytics/top-products", params={"store": "S01"}).json()
    assert store["scope"] == "store" and len(store["products"]) >= 5
    category = query(url, "SELECT min(category) FROM core.products")[0][0]
    ranked = client.get("/analytics/top-products", params={"category": category, "period": "mtd"}).json()
    names = {p["product_id"] for p in ranked["products"]}
    in_category = {
        row[0] for row in query(url, "SELECT product_id FROM core.products WHERE category = %s", (category,))
    }
    assert names and names <= in_category


@pytest.mark.parametrize(
    ("params", "sentence"),
    [
        ({"n": 101}, "n: Input should be less than or equal to 100"),
        ({"period": "week"}, "period: Input should be 'yesterday', '7d', '30d' or 'mtd'"),
        ({"store": "S01", "category": "x"}, "rank for a store or for a category, not both"),
    ],
)
def test_bad_top_products_requests_are_named(client: TestClient, params: dict, sentence: str) -> None:
    response = client.get("/analytics/top-products", params=params)
    assert (response.status_code, response.json()) == (
        422,
        {"detail": f"query {sentence}" if ":" in sentence else sentence},
    )


def test_daily_kpis_paginated(client: TestClient, retailer) -> None:
    url, _ = retailer
    first_day, last_day = END - timedelta(29), END
    rows, link, pages = [], f"/analytics/kpis?from={first_day}&to={last_day}&scope=store&limit=25", 0
    while link:
        page = client.get(link).json()
        rows += page["rows"]
        link, pages = page["next"], pages + 1
    expected = query(
        url,
        "SELECT day, scope_id, revenue FROM marts.daily_kpis WHERE scope = 'store' AND day BETWEEN %s AND %s"
        " ORDER BY day, scope_id",
        (first_day, last_day),
    )
    assert pages == 3  # 60 rows, 25 a page
    assert [(r["day"], r["scope_id"], cents(r["revenue"])) for r in rows] == [
        (day.isoformat(), store, cents(revenue)) for day, store, revenue in expected
    ]
    one = client.get("/analytics/kpis", params={"from": str(END), "to": str(END), "scope": "all"}).json()["rows"]
    assert [(r["day"], cents(r["revenue"])) for r in one] == [
        (
            END.isoformat(),
            cents(query(url, "SELECT revenue FROM marts.daily_kpis WHERE scope='all' AND day=%s", (END,))[0][0]),
        )
    ]
    too_long = client.get("/analytics/kpis", params={"from": "2025-01-01", "to": "2026-01-02"})
    assert too_long.status_code == 422 and "at most 366 days" in too_long.json()["detail"]


def test_the_published_forecast_with_its_bands_and_accuracy(client: TestClient, retailer) -> None:
    url, _ = retailer
    body = client.get("/ml/forecast", params={"scope": "store", "id": "S01"}).json()
    [(model, origin)] = query(
        url,
        "SELECT model, origin FROM ml.forecast_series WHERE target = 'sales' AND scope = 'store' AND scope_id = 'S01'",
    )
    assert (body["model"], body["origin"]) == (model, origin.isoformat())
    assert len(body["days"]) == 7 and body["days"][0]["day"] == (END + timedelta(1)).isoformat()
    assert all(d["lower_95"] <= d["lower_80"] <= d["yhat"] <= d["upper_80"] <= d["upper_95"] for d in body["days"])
    assert body["accuracy"]["model"] == model and body["accuracy"]["mae"] >= 0
    missing = client.get("/ml/forecast", params={"scope": "product", "id": "NO-SUCH"})
    assert missing.status_code == 404 and "no forecast for product 'NO-SUCH'" in missing.json()["detail"]


def test_tokens_and_roles(retailer) -> None:
    with TestClient(create_app(api_config(*retailer))) as anonymous:
        assert anonymous.get("/analytics/dashboard").status_code == 401
        assert anonymous.get("/analytics/dashboard", headers=auth("wrong-token-0123456789")).status_code == 401
        assert anonymous.get("/health").status_code == 200  # for a load balancer
        assert anonymous.get("/").status_code == 200 and anonymous.get("/static/app.js").status_code == 200
        reader = auth(READ_TOKEN)
        refused = anonymous.post("/ml/forecast", json={"scope": "all"}, headers=reader)
        assert refused.status_code == 403 and "needs a write token" in refused.json()["detail"]
        assert anonymous.post("/data/import", headers=reader, files={"file": ("a.xlsx", b"x")}).status_code == 403
        # The page's login: a cookie instead of the header, which cannot act without X-Requested-With.
        assert anonymous.post("/login", data={"token": "not-a-token"}).status_code == 401
        assert anonymous.post("/login", data={"token": WRITE_TOKEN}).status_code == 204
        assert anonymous.get("/analytics/stores").status_code == 200
        forged = anonymous.post("/ml/forecast", json={"scope": "all"})
        assert forged.status_code == 403 and "X-Requested-With" in forged.json()["detail"]
        assert WRITE_TOKEN not in anonymous.cookies.get("sales_pipeline_session", "")


def test_health(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["warehouse"] and body["schema_version"] >= 13
    assert body["last_import_age_s"] >= 0 and body["last_forecast_age_s"] >= 0 and body["last_pull_age_s"] is None


def test_the_template_and_a_days_report(client: TestClient, retailer, tmp_path: Path) -> None:
    from sales_pipeline.reporting.build import build_report
    from sales_pipeline.reporting.data import Scope

    template = client.get("/data/template")
    assert template.status_code == 200 and template.content[:2] == b"PK"
    missing = client.get(f"/reports/{END}", params={"scope": "store:S01"})
    assert missing.status_code == 404 and "it is built each morning for the day before" in missing.json()["detail"]
    with transaction(retailer[0]) as cursor:  # what reports/daily_report writes, for one store
        built, _ = build_report(cursor, END, Scope.parse("store:S01"), Formatter("en", "EUR"), "UTC", tmp_path)
    report = client.get(f"/reports/{END}", params={"scope": "store:S01"})
    assert report.status_code == 200 and report.headers["content-type"] == "application/pdf"
    assert report.content == Path(built.path).read_bytes()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dagster_webserver(retailer, tmp_path: Path) -> Iterator[str]:
    """A real Dagster webserver on the project's workspace, over the test warehouse, in an instance of its own
    (runs launch at once: no queue, no daemon)."""
    url, _ = retailer
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), settings.DATABASE_URL: url, settings.HOME: str(tmp_path / "home"),
           settings.FORECAST_WORKERS: "1"}  # fmt: skip
    command = [sys.executable, "-m", "dagster_webserver", "-w", str(PROJECT / "workspace.yaml"), "-h", "127.0.0.1",
               "-p", str(port)]  # fmt: skip
    process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{address}/server_info", timeout=2).status_code == 200:
                    break
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            time.sleep(0.5)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_post_forecast_launches_the_refresh_in_dagster_then_answers_from_the_cache(retailer, dagster_webserver) -> None:
    with TestClient(create_app(api_config(*retailer, dagster_url=dagster_webserver))) as client:
        client.headers.update(auth(WRITE_TOKEN))
        # A new Dagster instance has no materialization of the forecasts: not current, so the refresh is launched.
        launched = client.post("/ml/forecast", json={"scope": "store", "id": "S01"})
        assert launched.status_code == 202, launched.text
        run = launched.json()
        assert launched.headers["location"] == run["status_url"] == f"/ml/forecast/runs/{run['run_id']}"
        # Asked again while it runs: the same run, not a second one.
        again = client.post("/ml/forecast", json={"scope": "store", "id": "S01"})
        assert again.status_code == 202 and again.json()["run_id"] == run["run_id"]
        deadline = time.monotonic() + 300
        while (status := client.get(run["status_url"]).json()["status"]) not in ("SUCCESS", "FAILURE", "CANCELED"):
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status == "SUCCESS"
        # Its inputs unchanged since: the cached forecast, at once.
        cached = client.post("/ml/forecast", json={"scope": "store", "id": "S01"})
        assert cached.status_code == 200 and len(cached.json()["days"]) == 7
        assert client.post("/ml/forecast", json={"scope": "store", "id": "NOPE"}).status_code == 404
        assert client.get(f"/ml/forecast/runs/{uuid.uuid4()}").status_code == 404


def test_without_dagster_a_forecast_launch_is_a_503_with_a_sentence(client: TestClient) -> None:
    response = client.post("/ml/forecast", json={"scope": "all"}, headers=auth(WRITE_TOKEN))
    assert response.status_code == 503
    assert response.json()["detail"].startswith("the Dagster webserver at http://127.0.0.1:9 did not answer")


# --- alerts and the WebSocket ------------------------------------------------------------------------


def open_alert(url: str, severity: str, suffix: str) -> int:
    """A new situation (a copy of one the retailer raised, under a new dedupe key), followed into ops.alerts
    as the anomaly assets do, in one transaction; its alert id."""
    with transaction(url) as cursor:
        cursor.execute(
            "INSERT INTO ml.anomalies (dedupe_key, kind, severity, entity_type, entity_id, detected_on, message,"
            " numbers) SELECT dedupe_key || %s, kind, %s, entity_type, entity_id, detected_on, message, numbers"
            " FROM ml.anomalies WHERE active ORDER BY kind, dedupe_key LIMIT 1 RETURNING dedupe_key, kind",
            (suffix, severity),
        )
        key, kind = cursor.fetchone()
        follow_anomalies(cursor, kind)
        cursor.execute("SELECT alert_id FROM ops.alerts WHERE dedupe_key = %s", (key,))
        return cursor.fetchone()[0]


def resolve_alert(url: str, alert_id: int) -> None:
    with transaction(url) as cursor:
        cursor.execute(
            "UPDATE ml.anomalies SET active = false FROM ops.alerts a"
            " WHERE a.alert_id = %s AND ml.anomalies.dedupe_key = a.dedupe_key RETURNING ml.anomalies.kind",
            (alert_id,),
        )
        follow_anomalies(cursor, cursor.fetchone()[0])


def next_notification(socket, within_s: float = 5.0) -> dict:
    """The next notification on the socket (heartbeats skipped)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        message = socket.receive_json()
        if message["type"] == "notification":
            return message
    raise AssertionError(f"no notification within {within_s} s")


def test_alerts_list_and_acknowledge(client: TestClient, retailer) -> None:
    url, _ = retailer
    listed = client.get("/alerts").json()
    expected = query(url, "SELECT alert_id FROM ops.alerts WHERE status <> 'resolved'")
    assert listed and {a["id"] for a in listed} == {row[0] for row in expected}
    assert [a["severity"] for a in listed] == sorted(
        (a["severity"] for a in listed), key=["critical", "warning", "info"].index
    )
    target = listed[0]["id"]
    assert client.post(f"/alerts/{target}/ack").status_code == 403  # a read token
    acked = client.post(f"/alerts/{target}/ack", json={"by": "Marie (Lyon)"}, headers=auth(WRITE_TOKEN))
    assert acked.status_code == 200 and (acked.json()["status"], acked.json()["acknowledged_by"]) == (
        "acknowledged",
        "Marie (Lyon)",
    )
    assert query(url, "SELECT status FROM ops.alerts WHERE alert_id = %s", (target,)) == [("acknowledged",)]
    assert target in {a["id"] for a in client.get("/alerts", params={"status": "acknowledged"}).json()}
    assert client.post("/alerts/999999/ack", headers=auth(WRITE_TOKEN)).status_code == 404


def test_a_committed_critical_alert_is_pushed_within_2_s(client: TestClient, retailer) -> None:
    url, _ = retailer
    with (
        client.websocket_connect("/ws/notifications") as critical,
        client.websocket_connect("/ws/notifications?severity=warning") as warnings,
    ):
        assert critical.receive_json()["type"] == "heartbeat"  # connected, and the feed is listening
        committed = time.monotonic()
        alert_id = open_alert(url, "critical", ":pushed")
        pushed = next_notification(critical)
        assert time.monotonic() - committed < 2.0
        assert (pushed["event"], pushed["alert"]["id"], pushed["alert"]["severity"]) == ("opened", alert_id, "critical")
        assert pushed["alert"]["message"]
        assert next_notification(warnings)["alert"]["id"] == alert_id
        warning_id = open_alert(url, "warning", ":warned")
        assert next_notification(warnings)["alert"]["id"] == warning_id  # not sent to the critical-only socket
        resolve_alert(url, alert_id)
        resolved = next_notification(critical)
        assert (resolved["event"], resolved["alert"]["id"], resolved["alert"]["status"]) == (
            "resolved",
            alert_id,
            "resolved",
        )


def test_a_client_reconnecting_with_after_misses_nothing(client: TestClient, retailer) -> None:
    url, _ = retailer
    with client.websocket_connect("/ws/notifications") as socket:
        socket.receive_json()
        first = open_alert(url, "critical", ":first")
        last_seen = next_notification(socket)["id"]
    # Disconnected: two events meanwhile.
    second = open_alert(url, "critical", ":second")
    resolve_alert(url, first)
    with client.websocket_connect(f"/ws/notifications?after={last_seen}") as socket:
        replayed = [next_notification(socket), next_notification(socket)]
        assert [(n["event"], n["alert"]["id"]) for n in replayed] == [("opened", second), ("resolved", first)]
        assert replayed[0]["id"] > last_seen and replayed[1]["id"] > replayed[0]["id"]
        third = open_alert(url, "critical", ":third")  # and then the live ones, once each
        assert next_notification(socket)["alert"]["id"] == third


def test_a_socket_without_a_token_is_closed(retailer) -> None:
    with TestClient(create_app(api_config(*retailer))) as anonymous:
        with pytest.raises(WebSocketDisconnect) as closed, anonymous.websocket_connect("/ws/notifications") as socket:
            socket.receive_json()
        assert closed.value.code == 1008


# --- the dashboard page in a real browser ------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
# Chromium as root needs --no-sandbox; the rest keeps it from calling home (this machine has no internet).
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-dev-shm-usage"]  # fmt: skip


@pytest.fixture
def served(retailer, tmp_path: Path) -> Iterator[str]:
    """`sales-pipeline serve` over the test warehouse, with tokens: its address."""
    url, folder = retailer
    port = free_port()
    tokens = f"{READ_TOKEN}:read,{WRITE_TOKEN}:write"
    env = {**os.environ, settings.DATABASE_URL: url, settings.HOME: str(tmp_path / "home"),
           settings.INBOX: str(folder / "inbox"), settings.API_TOKENS: tokens}  # fmt: skip
    command = [str(Path(sys.executable).parent / "sales-pipeline"), "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{address}/health", timeout=2).status_code == 200:
                    break
            assert process.poll() is None, process.stdout.read().decode()[-2000:]
            time.sleep(0.3)
        yield address
    finally:
        process.send_signal(signal.SIGTERM)
        log = process.communicate(timeout=60)[0].decode()
        # Whatever happened, no token reached the server's log.
        assert READ_TOKEN not in log and WRITE_TOKEN not in log


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium; .ci/run does)")
def test_the_page_shows_the_marts_and_a_new_critical_alert_within_2_s(retailer, served, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url, _ = retailer
    [(week,)] = query(
        url, "SELECT sum(revenue) FROM marts.daily_kpis WHERE scope = 'all' AND day > %s", (END - timedelta(7),)
    )
    top5 = query(url, "SELECT product_id FROM marts.top_products WHERE as_of = %s AND period = 'last_7_days'"
                 " AND scope = 'all' AND rank <= 5 ORDER BY rank, product_id", (END,))  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        page = browser.new_page()
        page.goto(served)
        # Tokens are set: the page asks for one, and a wrong one is refused.
        page.fill("#login input[name=token]", "not-a-valid-token-at-all")
        page.click("#login button")
        page.wait_for_selector("#login-error:not([hidden])")
        page.fill("#login input[name=token]", READ_TOKEN)
        page.click("#login button")
        revenue = page.wait_for_selector('[data-kpi="revenue"] [data-period="week"]')
        assert cents(revenue.get_attribute("data-value")) == cents(week)
        assert Formatter("en", "EUR").money(cents(week)) in revenue.inner_text()
        page.wait_for_selector("#top tbody tr[data-product]")
        assert [row.get_attribute("data-product") for row in page.query_selector_all("#top tbody tr")] == [
            product for (product,) in top5
        ]
        page.wait_for_selector("#chart svg polyline.actual")
        page.wait_for_selector("#live.on")  # the WebSocket is open
        committed = time.monotonic()
        alert_id = open_alert(url, "critical", ":browser")
        page.wait_for_selector(f'#alerts li[data-alert="{alert_id}"]', timeout=2000)
        page.wait_for_selector(f'#toasts .toast[data-alert="{alert_id}"]', timeout=500)
        assert time.monotonic() - committed < 2.0
        # The store selector: S02's own figures.
        page.select_option("#store", "S02")
        [(store_week,)] = query(
            url,
            "SELECT sum(revenue) FROM marts.daily_kpis WHERE scope = 'store' AND scope_id = 'S02' AND day > %s",
            (END - timedelta(7),),
        )
        page.wait_for_function(
            'value => document.querySelector(\'[data-kpi="revenue"] [data-period="week"]\')'
            "?.getAttribute('data-value') == value",
            arg=str(float(cents(store_week))),
        )
        browser.close()


def test_the_page_speaks_french_when_report_locale_is_fr(retailer) -> None:
    with TestClient(create_app(api_config(*retailer, locale="fr"))) as client:
        page = client.get("/").text
    assert '<html lang="fr">' in page and "Tableau de bord des ventes" in page and "Chiffre d'affaires" in page
