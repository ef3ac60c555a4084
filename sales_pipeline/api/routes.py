"""The API's endpoints over the warehouse (JSON), each answering with a record of dto.py."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, WebSocket
from fastapi import Path as PathParameter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile

from sales_pipeline.alerts.store import AlertError, acknowledge
from sales_pipeline.api import dto, queries, uploads
from sales_pipeline.api.dagster_runs import DagsterRuns
from sales_pipeline.api.live import CachedDocument, MartCache, etag_matches, etag_of
from sales_pipeline.api.notifications import alert_record, serve_socket
from sales_pipeline.api.pool import WarehousePool
from sales_pipeline.api.security import Caller, require

router = APIRouter()
READ = Depends(require("read"))
WRITE = Depends(require("write"))
MAX_KPI_DAYS = 366
CONTENT_HASH = re.compile(r"[0-9a-f]{64}")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ERRORS = {status: {"model": dto.ErrorDTO} for status in (401, 403, 404, 422, 503)}
# How much a multipart body may exceed the file in it (boundaries, headers, the mapping field).
MULTIPART_SLACK = 64 * 1024


def _pool(request: Request) -> WarehousePool:
    return request.app.state.pool


def _not_found(detail: str) -> HTTPException:
    return HTTPException(404, detail)


# --- analytics ---------------------------------------------------------------------------------


@router.get(
    "/analytics/dashboard",
    response_model=dto.DashboardDTO,
    tags=["analytics"],
    responses={304: {"description": "Not modified: the If-None-Match ETag is current"}, **ERRORS},
    dependencies=[READ],
)
async def dashboard(
    request: Request, store: Annotated[str | None, Query(max_length=200, description="a store id; none: all")] = None
) -> Response:
    """The latest Dashboard record (marts.dashboard) of the business or a store, with an ETag: send it back
    in If-None-Match and an unchanged dashboard costs a 304 with no body."""
    scope = ("store", store) if store else ("all", "")
    return await _cached(request, ("dashboard", *scope), _read_dashboard, request, scope)


async def _cached(request: Request, key: tuple, read, *args) -> Response:
    """A response from the marts cache, or read by `read(*args)` in a worker thread and cached; with its ETag."""
    cache: MartCache = request.app.state.marts
    cached = cache.get(key)
    if cached is None:
        generation = cache.generation
        cached = await run_in_threadpool(read, *args)
        cache.put(key, cached, generation)
    headers = {"ETag": cached.etag, "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("if-none-match"), cached.etag):
        return Response(status_code=304, headers=headers)
    return Response(cached.body, media_type="application/json", headers=headers)


def _read_dashboard(request: Request, scope: tuple[str, str]) -> CachedDocument:
    with _pool(request).transaction() as cursor:
        found = queries.latest_dashboard(cursor, *scope)
    if found is None:
        raise _not_found(
            f"no dashboard for store {scope[1]!r}: it has no sales, or the marts have not been refreshed since it"
            " opened"
            if scope[0] == "store"
            else "no dashboard yet: the pipeline has not built the marts (sales-pipeline demo or refresh)"
        )
    document, computed_at = found
    record = dto.DashboardDTO.model_validate(
        {**document, "computed_at": computed_at, "currency": request.app.state.config.currency}
    )
    return CachedDocument(etag_of(*scope, document["refreshed_at"]), record.model_dump_json().encode())


@router.get("/analytics/stores", response_model=list[dto.StoreDTO], tags=["analytics"], responses=ERRORS,
            dependencies=[READ])  # fmt: skip
def stores(request: Request) -> list[dict]:
    """The stores (core.stores), for the page's store selector."""
    with _pool(request).transaction() as cursor:
        return queries.stores(cursor)


@router.get(
    "/analytics/top-products",
    response_model=dto.TopProductsDTO,
    tags=["analytics"],
    responses={304: {"description": "Not modified: the If-None-Match ETag is current"}, **ERRORS},
    dependencies=[READ],
)
async def top_products(
    request: Request,
    n: Annotated[int, Query(ge=1, le=100, description="how many (ties at the last rank included)")] = 5,
    period: Literal["yesterday", "7d", "30d", "mtd"] = "7d",
    store: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Products ranked by revenue over a period ending at the last complete day (marts.top_products), for
    the business, a store or a category, with the rank they had in the period of the same length before."""
    if store is not None and category is not None:
        raise HTTPException(422, "rank for a store or for a category, not both")
    scope = ("store", store) if store is not None else ("category", category) if category is not None else ("all", "")
    return await _cached(request, ("top", period, *scope, n), _read_top_products, request, period, scope, n)


def _read_top_products(request: Request, period: str, scope: tuple[str, str], n: int) -> CachedDocument:
    with _pool(request).transaction() as cursor:
        as_of, products = queries.top_products(cursor, period, *scope, n)
    if as_of is None:
        raise _not_found("no ranking yet: the pipeline has not built the marts (sales-pipeline demo or refresh)")
    ranking = dto.TopProductsDTO(as_of=as_of, period=period, first_day=queries.period_first_day(period, as_of),
                                 scope=scope[0], scope_id=scope[1], products=products)  # fmt: skip
    body = ranking.model_dump_json().encode()
    return CachedDocument(etag_of(body), body)


@router.get("/analytics/kpis", response_model=dto.KpiPageDTO, tags=["analytics"], responses=ERRORS,
            dependencies=[READ])  # fmt: skip
def kpis(
    request: Request,
    first_day: Annotated[dt.date, Query(alias="from", description="first day (YYYY-MM-DD)")],
    last_day: Annotated[dt.date, Query(alias="to", description="last day, at most 366 days after from")],
    scope: Literal["all", "store", "category", "product"] = "all",
    scope_id: Annotated[str | None, Query(alias="id", max_length=200, description="none: every id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 400,
    after: Annotated[str | None, Query(max_length=260, description="the page to continue from (from `next`)")] = None,
) -> dict:
    """Daily KPI rows (marts.daily_kpis) in day order, a page at a time: follow `next` for the rest."""
    if last_day < first_day:
        raise HTTPException(422, f"'to' ({last_day}) is before 'from' ({first_day})")
    if (last_day - first_day).days + 1 > MAX_KPI_DAYS:
        raise HTTPException(422, f"at most {MAX_KPI_DAYS} days a call: {first_day} to {last_day} is longer")
    if scope == "all":
        scope_id = ""
    after_key = _page_key(after)
    with _pool(request).transaction() as cursor:
        rows = queries.daily_kpis(cursor, first_day, last_day, scope, scope_id, after_key, limit + 1)
    following = None
    if len(rows) > limit:
        rows = rows[:limit]
        params = dict(request.query_params) | {"after": f"{rows[-1]['day']}|{rows[-1]['scope_id']}"}
        following = f"{request.url.path}?{urlencode(params)}"
    return {"rows": rows, "next": following}


def _page_key(after: str | None) -> tuple[dt.date, str] | None:
    if not after:
        return None
    day, _, scope_id = after.partition("|")
    try:
        return dt.date.fromisoformat(day), scope_id
    except ValueError:
        raise HTTPException(422, "'after' is not a page key: use the `next` link of the previous page") from None


# --- forecasts ---------------------------------------------------------------------------------


def _read_forecast(request: Request, scope: str, scope_id: str) -> dict:
    with _pool(request).transaction() as cursor:
        found = queries.forecast(cursor, scope, scope_id if scope != "all" else "")
    series = "the whole business" if scope == "all" else f"{scope} {scope_id!r}"
    if found is None:
        raise _not_found(f"no forecast for {series}: the pipeline has forecast no such series")
    if found["status"] == "skipped":
        raise _not_found(f"{series} is not forecast: {found['reason']}")
    return found


@router.get("/ml/forecast", response_model=dto.ForecastResultDTO, tags=["forecasts"], responses=ERRORS,
            dependencies=[READ])  # fmt: skip
def forecast(
    request: Request,
    scope: Literal["all", "store", "category", "product"] = "all",
    scope_id: Annotated[str, Query(alias="id", max_length=200)] = "",
) -> dict:
    """The published 7-day revenue forecast of a series (ml.forecasts) with its 80% and 95% bands, the
    model that won the backtest, why, and its accuracy (MASE, sMAPE, MAE, RMSE)."""
    return _read_forecast(request, scope, scope_id)


@router.post(
    "/ml/forecast",
    response_model=dto.ForecastResultDTO,
    tags=["forecasts"],
    responses={202: {"model": dto.ForecastRunDTO, "description": "a forecast refresh was launched"}, **ERRORS},
    dependencies=[WRITE],
)
def refresh_forecast(request: Request, wanted: dto.ForecastRequestDTO) -> dict | JSONResponse:
    """The cached forecast when Dagster says its inputs are unchanged; otherwise the forecast refresh is
    launched in Dagster (or the one already queued or running is named): 202 with the run and a status URL."""
    found = _read_forecast(request, wanted.scope, wanted.id)
    runs: DagsterRuns = request.app.state.dagster
    if runs.forecast_is_current():
        return found
    unfinished = runs.unfinished_forecast_run()
    run_id, status = unfinished or (runs.launch_forecast_refresh(), "QUEUED")
    url = str(request.url_for("forecast_run", run_id=run_id).path)
    body = dto.ForecastRunDTO(run_id=run_id, status=status, status_url=url)
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": url})


@router.get("/ml/forecast/runs/{run_id}", response_model=dto.ForecastRunDTO, tags=["forecasts"],
            responses=ERRORS, dependencies=[READ], name="forecast_run")  # fmt: skip
def forecast_run(request: Request, run_id: Annotated[str, PathParameter(pattern=r"^[0-9a-f-]{36}$")]) -> dict:
    """The status of a forecast refresh launched by POST /ml/forecast, as Dagster reports it."""
    status = request.app.state.dagster.run_status(run_id)
    if status is None:
        raise _not_found(f"Dagster has no run {run_id}")
    return {"run_id": run_id, "status": status, "status_url": request.url.path}


# --- imports -----------------------------------------------------------------------------------


@router.post(
    "/data/import",
    status_code=202,
    response_model=dto.ImportAcceptedDTO,
    tags=["imports"],
    responses={413: {"model": dto.ErrorDTO}, 415: {"model": dto.ErrorDTO}, **ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": ".xlsx, .xlsm or .xls"},
                            "mapping": {"type": "string", "description": "a mapping of data/mappings (no .yaml)"},
                        },
                    }
                }
            },
        }
    },
    dependencies=[WRITE],
)
async def import_workbook(request: Request) -> dict:
    """Drop a workbook into the inbox, as a person would: the inbox sensor imports it within its interval.
    Answers 202 with the content hash; GET the status URL for the ImportResult."""
    config = request.app.state.config
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > config.upload_max_bytes + MULTIPART_SLACK:
        raise uploads.UploadRejected(413, uploads.too_big(config.upload_max_bytes))
    form = await _limited(request, config.upload_max_bytes + MULTIPART_SLACK).form(max_files=1, max_fields=2)
    try:
        upload, mapping = form.get("file"), form.get("mapping") or ""
        if not isinstance(upload, UploadFile):
            raise uploads.UploadRejected(422, "no file: send the workbook as the multipart field 'file'")
        if not isinstance(mapping, str):
            raise uploads.UploadRejected(422, "'mapping' is a name, not a file")
        if (upload.size or 0) > config.upload_max_bytes:
            raise uploads.UploadRejected(413, uploads.too_big(config.upload_max_bytes))
        path, digest, size = await run_in_threadpool(_receive, request, upload, mapping)
    finally:
        await form.close()
    status_url = str(request.url_for("import_result", content_hash=digest).path)
    return {"content_hash": digest, "file_name": path.name, "bytes": size, "status_url": status_url}


def _limited(request: Request, limit: int) -> Request:
    """The request, its body cut off with a 413 past `limit` bytes (a body sent without Content-Length)."""
    received = 0

    async def receive() -> dict:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise uploads.UploadRejected(413, uploads.too_big(request.app.state.config.upload_max_bytes))
        return message

    return Request(request.scope, receive)


def _receive(request: Request, upload: UploadFile, mapping: str) -> tuple[Path, str, int]:
    config = request.app.state.config
    folder = uploads.mapping_folder(config.inbox_dir, config.mappings_dir, mapping)
    kind = uploads.workbook_kind(upload.file, config.upload_max_unzipped_bytes)
    path, digest, size = uploads.write_into_inbox(upload.file, folder, uploads.inbox_name(upload.filename, kind))
    with _pool(request).transaction() as cursor:
        queries.record_upload(cursor, digest, path.name, size, mapping)
    return path, digest, size


@router.get("/data/imports/{content_hash}", response_model=dto.ImportResultDTO, tags=["imports"],
            responses=ERRORS, dependencies=[READ], name="import_result")  # fmt: skip
def import_result(request: Request, content_hash: str) -> dict:
    """What became of uploaded bytes: `waiting` until the inbox sensor's run imported them, then the
    ImportResult of ops.import_ledger (rows per sheet, rejects, the feedback workbook's URL)."""
    content_hash = _content_hash(content_hash)
    with _pool(request).transaction() as cursor:
        found = queries.import_result(cursor, content_hash)
    if found is None:
        raise _not_found(f"nothing received or imported with content hash {content_hash}")
    if found.pop("feedback_path", None):
        found["feedback_url"] = str(request.url_for("import_feedback", content_hash=content_hash).path)
    return found


@router.get(
    "/data/imports/{content_hash}/feedback",
    tags=["imports"],
    response_class=FileResponse,
    responses={200: {"content": {XLSX: {}}}, **ERRORS},
    dependencies=[READ],
    name="import_feedback",
)
def import_feedback(request: Request, content_hash: str) -> FileResponse:
    """The feedback workbook of an import: the rejected rows with their bad cells marked, to fix and send again."""
    content_hash = _content_hash(content_hash)
    with _pool(request).transaction() as cursor:
        path = queries.feedback_path(cursor, content_hash)
    archive = request.app.state.config.archive_dir.resolve()
    # The ledger's path, never the caller's; and only inside the archive.
    if path is None or not Path(path).resolve().is_relative_to(archive) or not Path(path).is_file():
        raise _not_found(f"no feedback workbook for {content_hash}: the import rejected no row, or is not done")
    return FileResponse(path, media_type=XLSX, filename=Path(path).name)


def _content_hash(text: str) -> str:
    if not CONTENT_HASH.fullmatch(text):
        raise HTTPException(422, "a content hash is 64 lowercase hexadecimal digits (sha256)")
    return text


@router.get("/data/template", tags=["imports"], response_class=Response,
            responses={200: {"content": {XLSX: {}}}, **ERRORS}, dependencies=[READ])  # fmt: skip
def template(request: Request) -> Response:
    """The import template workbook (Products, Stores, Customers, Sales, Stock, with instructions)."""
    state = request.app.state
    if getattr(state, "template", None) is None:
        from sales_pipeline.excel.template import write_template

        with tempfile.TemporaryDirectory() as folder:
            state.template = write_template(Path(folder) / "template.xlsx").read_bytes()
    disposition = {"Content-Disposition": 'attachment; filename="sales_import_template.xlsx"'}
    return Response(state.template, media_type=XLSX, headers=disposition)


# --- reports -----------------------------------------------------------------------------------


@router.get("/reports/{day}", tags=["reports"], response_class=FileResponse,
            responses={200: {"content": {"application/pdf": {}}}, **ERRORS}, dependencies=[READ])  # fmt: skip
def report(
    request: Request,
    day: dt.date,
    scope: Annotated[str, Query(pattern=r"^(all|store:.+|category:.*)$", max_length=200)] = "all",
    locale: Literal["en", "fr"] | None = None,
) -> FileResponse:
    """The daily PDF report of a day for the business (`all`), a store (`store:S01`) or a category
    (`category:Bakery`), in REPORT_LOCALE unless `locale` says otherwise."""
    locale = locale or request.app.state.config.locale
    with _pool(request).transaction() as cursor:
        path = queries.report(cursor, day, scope, locale)
    if path is None or not Path(path).is_file():
        raise _not_found(f"no report for {day} ({scope}, {locale}): it is built each morning for the day before")
    return FileResponse(path, media_type="application/pdf", filename=Path(path).name)


# --- health ------------------------------------------------------------------------------------


@router.get("/health", response_model=dto.HealthDTO, tags=["health"], responses={503: {"model": dto.HealthDTO}})
def health(request: Request) -> dict | JSONResponse:
    """For a load balancer: 200 when the warehouse answers, with its schema version and how old the last
    import, pull and forecast are; 503 when it does not."""
    try:
        with _pool(request).transaction() as cursor:
            figures = queries.health(cursor)
    except Exception:  # any failure to reach the warehouse is the answer itself
        down = {"status": "unavailable", "warehouse": False, "schema_version": None, "last_import_age_s": None,
                "last_pull_age_s": None, "last_forecast_age_s": None}  # fmt: skip
        return JSONResponse(down, status_code=503)
    return {"status": "ok", "warehouse": True, **figures}


# --- alerts ------------------------------------------------------------------------------------


def _alert_record(request: Request, row: dict) -> dict:
    state = request.app.state
    return alert_record(row, state.formatter, state.config.dagster_url, state.config.timezone)


@router.get("/alerts", response_model=list[dto.AlertDTO], tags=["alerts"], responses=ERRORS, dependencies=[READ])
def alerts(
    request: Request,
    status: Literal["open", "acknowledged", "snoozed", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict]:
    """Alerts (ops.alerts), most severe and newest first: every one not resolved, or those of one status.
    Messages are in REPORT_LOCALE, the words of the alert emails."""
    with _pool(request).transaction() as cursor:
        rows = queries.alerts(cursor, status, limit)
    return [_alert_record(request, row) for row in rows]


@router.post("/alerts/{alert_id}/ack", response_model=dto.AlertDTO, tags=["alerts"],
             responses={409: {"model": dto.ErrorDTO}, **ERRORS})  # fmt: skip
def acknowledge_alert(
    request: Request, alert_id: int, caller: Annotated[Caller, WRITE], by: dto.AcknowledgementDTO | None = None
) -> dict:
    """Someone is on it: no more reminders are sent (the resolved note still is). Recorded with `by`, or the
    token's id."""
    with _pool(request).transaction() as cursor:
        if queries.alert(cursor, alert_id) is None:
            raise _not_found(f"there is no alert {alert_id}")
        try:
            acknowledge(cursor, alert_id, by.by if by and by.by else caller.name)
        except AlertError as error:
            raise HTTPException(409, str(error)) from None
        row = queries.alert(cursor, alert_id)
    return _alert_record(request, row)


@router.websocket("/ws/notifications")
async def notifications(
    websocket: WebSocket,
    after: Annotated[int | None, Query(ge=0, description="replay the events after this id first")] = None,
    severity: Literal["critical", "warning", "info"] = "critical",
) -> None:
    """NotificationDTO for each alert opened, escalated or resolved of `severity` or worse; heartbeats between."""
    state = websocket.app.state
    await serve_socket(websocket, state.feed, state.config.heartbeat_s, after, severity)
