"""The read API's application: `create_app(config)` builds it; `sales-pipeline serve` runs it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated

import psycopg2
from fastapi import FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from sales_pipeline.analytics.marts import MARTS_CHANNEL
from sales_pipeline.api import routes
from sales_pipeline.api.config import ApiConfig
from sales_pipeline.api.dagster_runs import DagsterRuns, DagsterUnavailable
from sales_pipeline.api.dto import NotificationDTO
from sales_pipeline.api.live import Listener, MartCache
from sales_pipeline.api.notifications import ALERT_EVENTS_CHANNEL, AlertFeed
from sales_pipeline.api.pool import PoolBusy, WarehousePool
from sales_pipeline.api.security import SESSION_COOKIE, SESSION_SECONDS, Gate
from sales_pipeline.api.uploads import UploadRejected
from sales_pipeline.i18n import Formatter

log = logging.getLogger("sales_pipeline.api")
STATIC = resources.files("sales_pipeline.api") / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
DESCRIPTION = """The retailer's marts, forecasts, imports and alerts, as the pipeline computed them.

Send `Authorization: Bearer <token>` (API_TOKENS; `read` for GETs and the WebSocket, `write` for imports,
acknowledgements and forecast launches). Money is in the currency of REPORT_CURRENCY.

`WS /ws/notifications[?after=ID][&severity=critical|warning|info]` sends a NotificationDTO (schema below)
for each alert opened, escalated or resolved, and `{"type": "heartbeat"}` when idle; reconnect with
`?after=<the last id received>` to miss nothing."""


def create_app(config: ApiConfig) -> FastAPI:
    """The API over the warehouse at `config.database_url` (migrated already)."""

    app = FastAPI(
        title="sales_pipeline read API",
        version="1",
        description=DESCRIPTION,
        lifespan=_lifespan,
        openapi_url="/openapi.json",
    )
    app.state.config = config
    app.state.gate = Gate(config.tokens)
    app.state.marts = MartCache()
    app.state.dagster = DagsterRuns(config.dagster_url)
    app.state.formatter = Formatter(config.locale, config.currency)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-Requested-With"],
            expose_headers=["ETag", "Location"],
        )
    _add_error_handlers(app)
    app.include_router(routes.router)
    _add_page(app, config)
    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema, plus NotificationDTO: what WS /ws/notifications sends (OpenAPI has no WebSocket)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        notification = NotificationDTO.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(notification.pop("$defs", {}))
        components["NotificationDTO"] = notification
        app.openapi_schema = schema
    return app.openapi_schema


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The pool, the LISTEN connection and the alert feed, for as long as the app serves."""
    config: ApiConfig = app.state.config
    app.state.pool = WarehousePool(config.database_url, config.pool_size)
    app.state.feed = AlertFeed(app.state.pool, app.state.formatter, config.dagster_url, config.timezone)
    alerts_changed = asyncio.Event()

    def woken(channel: str, payload: str) -> None:
        if channel == MARTS_CHANNEL:
            app.state.marts.invalidate(trusted=True)
        else:
            alerts_changed.set()

    def connected() -> None:  # whatever was sent while disconnected is read again
        app.state.marts.invalidate(trusted=True)
        alerts_changed.set()

    listener = Listener(
        config.database_url,
        (MARTS_CHANNEL, ALERT_EVENTS_CHANNEL),
        on_notify=woken,
        on_connect=connected,
        on_disconnect=lambda: app.state.marts.invalidate(trusted=False),
    )
    tasks = [
        asyncio.create_task(listener.run(), name="warehouse listener"),
        asyncio.create_task(_follow_alerts(app.state.feed, alerts_changed), name="alert feed"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)
        app.state.pool.close()


async def _follow_alerts(feed: AlertFeed, changed: asyncio.Event) -> None:
    """Read the new alert events at each wake-up (many wake-ups during one read make one more read)."""
    while True:
        await changed.wait()
        changed.clear()
        try:
            await feed.catch_up()
        except (psycopg2.Error, PoolBusy) as error:  # the listener's reconnection wakes us again
            log.warning("alert events not read (%s): retried at the next wake-up", type(error).__name__)


def _error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is a sentence in {"detail": ...}; a stack trace goes to the server's log only."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = " ".join(str(part) for part in first.get("loc", ()) if part not in ("body",))
        return _error(422, f"{where}: {first.get('msg', 'invalid')}".strip(": "))

    @app.exception_handler(UploadRejected)
    async def rejected(request: Request, error: UploadRejected) -> JSONResponse:
        return _error(error.status, error.reason)

    @app.exception_handler(PoolBusy)
    async def busy(request: Request, error: PoolBusy) -> JSONResponse:
        return _error(503, "the warehouse is busy: try again in a moment", {"Retry-After": "2"})

    @app.exception_handler(psycopg2.OperationalError)
    async def unreachable(request: Request, error: psycopg2.OperationalError) -> JSONResponse:
        log.warning("warehouse unreachable on %s %s: %s", request.method, request.url.path, type(error).__name__)
        return _error(503, "the warehouse cannot be reached: try again later", {"Retry-After": "10"})

    @app.exception_handler(DagsterUnavailable)
    async def dagster_down(request: Request, error: DagsterUnavailable) -> JSONResponse:
        return _error(503, f"{error} (DAGSTER_WEBSERVER_URL): try again once it runs")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.error("incident %s on %s %s", incident, request.method, request.url.path, exc_info=error)
        return _error(500, f"internal error (incident {incident} in the server's log)")


def _add_page(app: FastAPI, config: ApiConfig) -> None:
    """The dashboard page: one HTML file, its script and style, and the login form's endpoints."""
    formatter: Formatter = app.state.formatter
    page_settings = json.dumps(
        {
            "locale": config.locale,
            "currency": config.currency,
            "texts": formatter.texts("page.", "severity."),
            "login": not app.state.gate.open,
        },
        ensure_ascii=False,
    ).replace("</", "<\\/")
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{lang}}", config.locale).replace("{{title}}", formatter.text("page.title"))
    page = page.replace("{{settings}}", page_settings)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.post("/login", include_in_schema=False)
    def login(token: Annotated[str, Form(max_length=500)]) -> Response:
        """The page's login form: a valid token becomes an HttpOnly session cookie (the token itself is not kept)."""
        gate: Gate = app.state.gate
        if gate.role_of(token.strip()) is None:
            return _error(401, formatter.text("page.login.refused"))
        response = Response(status_code=204)
        response.set_cookie(SESSION_COOKIE, gate.session_cookie(token.strip()), max_age=SESSION_SECONDS,
                            httponly=True, samesite="strict", path="/")  # fmt: skip
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def app_from_environment() -> FastAPI:
    """The app over the warehouse the environment names (what `sales-pipeline serve` prepared): uvicorn's factory."""
    from sales_pipeline.settings import Settings
    from sales_pipeline.warehouse import embedded

    return create_app(ApiConfig.from_settings(Settings.from_environment(), embedded.warehouse_url()))
