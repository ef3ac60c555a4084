"""The read API's OpenAPI schema is committed (sales_pipeline/api/openapi.json): a change to an endpoint or
a record shows in review. After an intended change: `UPDATE_SNAPSHOTS=1 pytest sales_pipeline_tests/test_api_schema.py`,
and commit the new schema with the change. Also the settings' checks, which need no server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sales_pipeline import settings
from sales_pipeline.api.app import create_app
from sales_pipeline.api.config import ApiConfig
from sales_pipeline.api.security import check_listen_address
from sales_pipeline.settings import Settings

SCHEMA = Path(__file__).resolve().parents[1] / "sales_pipeline" / "api" / "openapi.json"
RECORDS = (
    "DashboardDTO",
    "ProductPerformanceDTO",
    "ForecastResultDTO",
    "ImportResultDTO",
    "AlertDTO",
    "NotificationDTO",
)


def test_the_openapi_schema_matches_the_committed_one() -> None:
    current = create_app(ApiConfig(database_url="postgresql:///unused", tokens={})).openapi()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SCHEMA.write_text(json.dumps(current, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    assert SCHEMA.exists(), f"no schema at {SCHEMA}: create it with UPDATE_SNAPSHOTS=1 pytest {__file__}"
    assert current == json.loads(SCHEMA.read_text()), "the API changed: see the module docstring"
    assert set(RECORDS) <= set(current["components"]["schemas"])


def test_every_endpoint_but_health_needs_a_token() -> None:
    schema = create_app(ApiConfig(database_url="postgresql:///unused", tokens={})).openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path != "/health":
                assert "401" in operation["responses"], f"{method.upper()} {path}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abcdefghijklmnopq:admin", "API_TOKENS: pair 1 is not token:role with role read or write"),
        ("abcdefghijklmnopq:read,short:write", "API_TOKENS: the token of pair 2 is shorter than 16 characters"),
    ],
)
def test_bad_tokens_are_named_by_position_never_shown(monkeypatch, value: str, message: str) -> None:
    monkeypatch.setenv(settings.API_TOKENS, value)
    with pytest.raises(ValueError) as error:
        settings.api_tokens()
    assert str(error.value).startswith(message) and "abcdefghijklmnopq" not in str(error.value)


def test_without_tokens_only_loopback(monkeypatch) -> None:
    check_listen_address("127.0.0.1", {})
    check_listen_address("::1", {})
    with pytest.raises(ValueError, match="API_TOKENS is not set, so the API answers anyone who reaches it"):
        check_listen_address("0.0.0.0", {})
    check_listen_address("0.0.0.0", {"a-token-of-16-chars": "read"})


def test_cors_origins_and_upload_limits_are_checked(monkeypatch) -> None:
    monkeypatch.setenv(settings.API_CORS_ORIGINS, "https://intranet.example.com, http://localhost:5173/")
    assert list(Settings.from_environment().api.cors_origins) == [
        "https://intranet.example.com",
        "http://localhost:5173",
    ]
    monkeypatch.setenv(settings.API_CORS_ORIGINS, "intranet.example.com")
    with pytest.raises(ValueError, match=r"API_CORS_ORIGINS=.*'intranet\.example\.com' is not an origin"):
        Settings.from_environment()
    monkeypatch.delenv(settings.API_CORS_ORIGINS)
    monkeypatch.setenv(settings.API_UPLOAD_MAX_MB, "lots")
    with pytest.raises(ValueError, match="API_UPLOAD_MAX_MB='lots' is not a size in megabytes"):
        Settings.from_environment()


def test_cors_only_for_the_configured_origins() -> None:
    from fastapi.testclient import TestClient

    config = ApiConfig(database_url="postgresql:///unused", tokens={}, cors_origins=("https://intranet.example.com",))
    client = TestClient(create_app(config))  # no lifespan: nothing here reaches the warehouse
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "Authorization"}
    allowed = client.options("/analytics/dashboard", headers={"Origin": "https://intranet.example.com", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://intranet.example.com"
    refused = client.options("/analytics/dashboard", headers={"Origin": "https://evil.example.com", **preflight})
    assert "access-control-allow-origin" not in refused.headers
    plain = TestClient(create_app(ApiConfig(database_url="postgresql:///unused", tokens={})))
    answer = plain.get("/health", headers={"Origin": "https://intranet.example.com"})
    assert "access-control-allow-origin" not in answer.headers


def test_an_unreachable_warehouse_is_a_503_with_a_sentence_and_no_trace(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    config = ApiConfig(database_url=f"postgresql://nobody:secret-password@/none?host={tmp_path}", tokens={})
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        stores = client.get("/analytics/stores")
        health = client.get("/health")
    assert (stores.status_code, stores.json()) == (503, {"detail": "the warehouse cannot be reached: try again later"})
    assert health.status_code == 503 and health.json()["warehouse"] is False
    assert "Traceback" not in stores.text and "secret-password" not in stores.text + health.text
