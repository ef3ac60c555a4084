"""A simulator of the back office's API: the synthetic retailer served over loopback HTTP, faults on demand.

It serves the same retailer as `sales-pipeline generate` (`generate_retailer(scale, seed, days, end)`), so a
workbook and the API agree on every id and value, and it honours `openapi.yaml` exactly: bearer auth, Spring
`Page` JSON, Spring error JSON, stable ordering, `updatedSince`, date windows. Records are serialised once,
through the models of `records`, when the simulator starts; a page is a join of pre-serialised bytes.

    with JavaApiSimulator(seed=42, scale=1, days=60, token="t") as api:
        requests.get(api.base_url + "/api/v1/sales", params={"from": "2026-11-01", "to": "2026-11-02"},
                     headers={"Authorization": "Bearer t"})

What the contract leaves open, decided here:

* `sold_at` in the retailer is the store's local wall time; `soldAt` is that time with the store's UTC
  offset (`2026-11-02T10:15:00+01:00`), the same instant the Excel import computes. `from`/`to` are UTC days:
  a line is in the window when `from 00:00Z <= soldAt < to 00:00Z`. Both are required; `from > to` is a 400.
* `page` defaults to 0 and `size` to 20 (Spring's defaults); `size` must be 1..1000 and `page` >= 0, else 400.
  A page past the end is a 200 with empty content, as in Spring. Unknown query parameters are ignored.
* `updatedSince` is an ISO-8601 instant with an offset; a '+' decoded to a space (an unencoded `+01:00`) is
  read as '+'. Products' `updatedAt` are deterministic by seed: most long before the sales history, some
  during it, a few in its last two weeks, and a delisted product's when it stopped selling.
* Stock is the latest count per store and product (the retailer's last snapshot).
* Live (`--live`): after `end` the retailer's trade goes on to the clock's now (`demo/live.py`): each later
  day is drawn from the seed and the date alone, and a line is served once its soldAt has passed.
* The store calendar is the retailer's (its holidays, the Sunday-closed store); the promotions are its
  product promotion weeks, numbered PR-0001... in (startsOn, productId) order.
* The admin endpoints (`/admin/...`) and `/actuator/health` need no token: they exist for tests and demos.

Faults (CLI flags, or `POST /admin/faults` with a JSON object; `GET` shows them, `DELETE` clears them and
removes any line `shifting_total` added) apply to data requests that are authorised and well formed, in
this order, one per request: `reset_next`, `rate_limit_next`, `fail_next`, `fail_rate`; then, on the page
about to be served, `bad_record` and `truncate_page`; `shifting_total` fires once page `after_page` has
been served. `latency_ms` delays every `/api/...` response. `GET /admin/stats` counts data requests per
endpoint and responses per status (`DELETE` resets the counts).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hmac
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from sales_pipeline.demo.live import LiveTrade
from sales_pipeline.demo.retailer import DEFAULT_END, Retailer, generate_retailer
from sales_pipeline.javaapi.records import (
    API_PREFIX,
    RECORD_MODELS,
    Product,
    Promotion,
    SaleLine,
    StockLevel,
    StoreClosure,
    describe_error,
)

DEFAULT_TOKEN = "simulator-token"  # not a secret: what the simulator accepts when no token is given
DEFAULT_PORT = 8080
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000
TOKEN_ENV = "JAVA_API_TOKEN"

Endpoint = Literal["products", "sales", "stock"]
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UPDATED_AT_STREAM = 0x0A91  # the products' updatedAt come from their own random stream, not the retailer's
_MICROS = 1_000_000
_CHUNK = 20_000  # sale lines validated and serialised at a time


# ------------------------------------------------------------------------------------------------
# Faults
# ------------------------------------------------------------------------------------------------


class _FaultModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FailNext(_FaultModel):
    """The next `count` data requests (of `endpoint`, or any) fail with `status`; 503 carries Retry-After."""

    count: int = Field(ge=0)
    status: Literal[500, 503] = 503
    retry_after: int = Field(default=1, ge=0)
    endpoint: Endpoint | None = None


class RateLimitNext(_FaultModel):
    """The next `count` data requests (of `endpoint`, or any) get 429 with `Retry-After: retry_after`."""

    count: int = Field(ge=0)
    retry_after: int = Field(default=1, ge=0)
    endpoint: Endpoint | None = None


class TruncatePage(_FaultModel):
    """Page `page` of `endpoint` is sent cut in half (a consistent Content-Length), `times` times."""

    endpoint: Endpoint = "sales"
    page: int = Field(ge=0)
    times: int = Field(default=1, ge=0)


# A value that fails the schema, per field (a field not listed gets null).
_BAD_VALUES: dict[str, Any] = {
    "quantity": 0,
    "lineNumber": 0,
    "unitPrice": -1.0,
    "unitCost": -1.0,
    "discount": 1.5,
    "lineTotal": -1.0,
    "onHand": -1,
    "onOrder": -1,
    "reorderPoint": -1,
    "leadTimeDays": -1,
    "promotion": "yes",
    "active": "yes",
    "soldAt": "yesterday",
    "updatedAt": "yesterday",
    "asOf": "yesterday",
}
_DEFAULT_BAD_FIELD = {"sales": "quantity", "products": "unitPrice", "stock": "onHand"}


class BadRecord(_FaultModel):
    """Record `index` of page `page` of `endpoint` fails the schema: `field` set to `value`, or removed.

    Defaults: sales quantity 0, products unitPrice -1, stock onHand -1. Persistent (a bad row in the
    back office stays bad) unless `times` says how many responses carry it.
    """

    endpoint: Endpoint = "sales"
    page: int = Field(ge=0)
    index: int = Field(default=0, ge=0)
    field: str | None = None
    value: Any = None
    missing: bool = False
    times: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _known_field(self) -> BadRecord:
        if self.field is None:
            self.field = _DEFAULT_BAD_FIELD[self.endpoint]
        names = [info.alias for info in RECORD_MODELS[self.endpoint].model_fields.values()]
        if self.field not in names:
            raise ValueError(f"{self.endpoint} records have no field {self.field!r}; they have {names}")
        if "value" not in self.model_fields_set and not self.missing:
            self.value = _BAD_VALUES.get(self.field)
        return self


class ShiftingTotal(_FaultModel):
    """Once page `after_page` of sales has been served, one sale line appears at the start of that window."""

    endpoint: Literal["sales"] = "sales"
    after_page: int = Field(ge=0)
    fired: bool = False


class FailRate(_FaultModel):
    """A share `rate` of data requests fail with `status`, drawn from a random stream seeded by `seed`."""

    rate: float = Field(ge=0, le=1)
    status: Literal[500, 503] = 503
    retry_after: int = Field(default=1, ge=0)
    seed: int | None = None  # None: the simulator's seed


class Faults(_FaultModel):
    """Every fault the simulator can inject; the JSON of `POST /admin/faults` and of the CLI's `--faults`."""

    latency_ms: int = Field(default=0, ge=0)
    fail_next: FailNext | None = None
    rate_limit_next: RateLimitNext | None = None
    reset_next: int = Field(default=0, ge=0)
    truncate_page: TruncatePage | None = None
    bad_record: BadRecord | None = None
    shifting_total: ShiftingTotal | None = None
    fail_rate: FailRate | None = None

    @field_validator("fail_rate", mode="before")
    @classmethod
    def _rate_alone(cls, value: Any) -> Any:
        return {"rate": value} if isinstance(value, int | float) and not isinstance(value, bool) else value


_FAULT_MODELS: dict[str, type[BaseModel]] = {
    "fail_next": FailNext,
    "rate_limit_next": RateLimitNext,
    "truncate_page": TruncatePage,
    "bad_record": BadRecord,
    "shifting_total": ShiftingTotal,
    "fail_rate": FailRate,
}


class FaultError(ValueError):
    """A fault specification that does not validate; the message names the field."""


def parse_faults(spec: dict[str, Any] | Faults | None, base: Faults | None = None) -> Faults:
    """`spec` (a dict as posted to /admin/faults) merged over `base` -> Faults, or FaultError."""
    if isinstance(spec, Faults):
        return spec.model_copy(deep=True)
    if spec is not None and not isinstance(spec, dict):
        raise FaultError(f"faults must be a JSON object, got {type(spec).__name__}")
    merged = {**(base.model_dump(exclude_defaults=True) if base else {}), **(spec or {})}
    try:
        return Faults.model_validate(merged)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            top = len(first["loc"]) == 1
            model = Faults if top else _FAULT_MODELS.get(str(first["loc"][0]), Faults)
            message = f"{where}: unknown {'fault' if top else 'setting'}; known: {', '.join(model.model_fields)}"
        elif first["type"] == "value_error":
            problem = first["msg"].removeprefix("Value error, ")
            message = f"{where}: {problem}" if where else problem
        else:
            message = f"{where}: {describe_error(first)}"
        raise FaultError(message) from None


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


class _Data:
    """The retailer as the API serves it: records validated by the models, serialised once, in contract order."""

    def __init__(
        self, retailer: Retailer, seed: int, end: dt.date, days: int, clock: Callable[[], dt.datetime] | None = None
    ) -> None:
        self.retailer = retailer
        self.store_zone = dict(zip(retailer.stores["store_id"], retailer.stores["timezone"], strict=True))
        self._init_sales(retailer.sales)
        # Live: the days after `end` up to the clock's now, drawn as they are asked for (see demo/live.py).
        self.live = LiveTrade(retailer, seed, end) if clock is not None else None
        self.clock = clock
        self._live_days: dict[dt.date, list[tuple[int, str, int, bytes]]] = {}
        self._init_products(retailer, seed, end, days)
        self._init_stock(retailer.stock)
        self._init_calendar(retailer.calendar)
        self._init_promotions(retailer.promotions)

    # Sales: sorted by (soldAt instant, orderId, lineNumber), with the instants for binary search.
    def _init_sales(self, sales: pd.DataFrame) -> None:
        self.sales_us, self.sales, self.sales_keys = _serialised_sales(sales, self.store_zone)
        order_ids = [order_id for order_id, _ in self.sales_keys]
        self.next_order_number = 1 + max((int(o.split("-")[-1]) for o in order_ids if o[-1:].isdigit()), default=0)
        self.order_id_width = max((len(o.split("-")[-1]) for o in order_ids), default=7)
        # Lines added at run time (shifting_total): (instant us, orderId, lineNumber, bytes), kept sorted.
        self.extra_sales: list[tuple[int, str, int, bytes]] = []

    def _init_products(self, retailer: Retailer, seed: int, end: dt.date, days: int) -> None:
        frame = retailer.products.sort_values("product_id", kind="stable", ignore_index=True)
        updated = _updated_at(frame, retailer.sales, seed, end, days)
        rows = []
        for record, at in zip(frame.to_dict("records"), updated, strict=True):
            record = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}
            rows.append({**record, "updated_at": at})
        self.products: list[Product] = TypeAdapter(list[Product]).validate_python(rows)
        self.product_bytes = [p.model_dump_json(by_alias=True).encode() for p in self.products]
        self.product_index = {p.product_id: i for i, p in enumerate(self.products)}

    def _init_stock(self, stock: pd.DataFrame) -> None:
        latest = stock.sort_values(["store_id", "product_id", "as_of"], kind="stable").drop_duplicates(
            ["store_id", "product_id"], keep="last"
        )
        rows = [
            {"store_id": s, "product_id": p, "on_hand": h, "on_order": o, "as_of": a.date()}
            for s, p, h, o, a in zip(
                latest["store_id"], latest["product_id"], latest["on_hand"].tolist(), latest["on_order"].tolist(),
                pd.DatetimeIndex(latest["as_of"]), strict=True,
            )
        ]  # fmt: skip
        models = TypeAdapter(list[StockLevel]).validate_python(rows)
        self.stock = [m.model_dump_json(by_alias=True).encode() for m in models]

    def _init_calendar(self, calendar: pd.DataFrame) -> None:
        """Ordered by storeId (every-store rows first), date (weekday rows last), dayOfWeek."""
        rows = [
            {"store_id": _text(store), "date": None if pd.isna(day) else pd.Timestamp(day).date(),
             "day_of_week": None if _text(weekday) is None else str(weekday).upper(), "open": bool(open_),
             "note": _text(note)}
            for store, day, weekday, open_, note in calendar[["store_id", "day", "weekday", "open", "note"]].itertuples(
                index=False
            )
        ]  # fmt: skip
        rows.sort(key=lambda r: (r["store_id"] or "", r["store_id"] is not None, r["date"] or dt.date.max,
                                 r["day_of_week"] or ""))  # fmt: skip
        models = TypeAdapter(list[StoreClosure]).validate_python(rows)
        self.calendar = [model.model_dump_json(by_alias=True).encode() for model in models]

    def _init_promotions(self, promotions: pd.DataFrame) -> None:
        """Numbered PR-0001... in (startsOn, productId) order, the order they are served in."""
        frame = promotions.sort_values(["starts_on", "product_id"], kind="stable", ignore_index=True)
        rows = [
            {"promotion_id": f"PR-{number:04d}", "name": _text(row.name), "product_id": _text(row.product_id),
             "category": _text(row.category), "store_id": _text(row.store_id),
             "starts_on": pd.Timestamp(row.starts_on).date(), "ends_on": pd.Timestamp(row.ends_on).date()}
            for number, row in enumerate(frame.itertuples(index=False), start=1)
        ]  # fmt: skip
        models = TypeAdapter(list[Promotion]).validate_python(rows)
        self.promotions = [model.model_dump_json(by_alias=True).encode() for model in models]

    def sales_window(self, from_us: int, to_us: int) -> tuple[int, int, list[tuple[int, bytes]]]:
        """(lo, hi, extras): base lines [lo, hi) and added lines as (base position they precede, bytes)."""
        lo = int(np.searchsorted(self.sales_us, from_us, "left"))
        hi = int(np.searchsorted(self.sales_us, to_us, "left"))
        extras = []
        for at, order_id, line, payload in sorted([*self.extra_sales, *self._live_sales(from_us, to_us)]):
            if from_us <= at < to_us:
                pos = int(np.searchsorted(self.sales_us, at, "left"))
                while pos < len(self.sales_us) and self.sales_us[pos] == at and self.sales_keys[pos] < (order_id, line):
                    pos += 1
                extras.append((pos, payload))
        return lo, hi, extras

    def _live_sales(self, from_us: int, to_us: int) -> list[tuple[int, str, int, bytes]]:
        """The live days' lines sold in [from_us, to_us) by now, as (instant us, orderId, lineNumber, bytes)."""
        if self.live is None or self.clock is None:
            return []
        now_us = _instant_us(self.clock())
        to_us = min(to_us, now_us + 1)
        first = max(_us_instant(from_us).date() - dt.timedelta(days=1), self.live.end + dt.timedelta(days=1))
        last = _us_instant(max(to_us - 1, from_us)).date() + dt.timedelta(days=1)  # a store's day spans two UTC days
        out = []
        for k in range((last - first).days + 1):
            out += [entry for entry in self._live_day(first + dt.timedelta(days=k)) if from_us <= entry[0] < to_us]
        return out

    def _live_day(self, day: dt.date) -> list[tuple[int, str, int, bytes]]:
        if day not in self._live_days:
            assert self.live is not None
            at, payloads, keys = _serialised_sales(self.live.day(day), self.store_zone)
            self._live_days[day] = [(int(a), o, n, p) for a, (o, n), p in zip(at, keys, payloads, strict=True)]
        return self._live_days[day]

    def sales_page(self, lo: int, hi: int, extras: list[tuple[int, bytes]], start: int, stop: int) -> list[bytes]:
        """Lines [start, stop) of the window (base lines [lo, hi) with `extras` merged in)."""
        if not extras:
            return self.sales[lo + start : min(lo + stop, hi)]
        marks = {pos - lo + k: payload for k, (pos, payload) in enumerate(extras)}
        total = hi - lo + len(extras)
        before = sum(1 for c in marks if c < start)
        out = []
        for c in range(start, min(stop, total)):
            if c in marks:
                out.append(marks[c])
                before += 1
            else:
                out.append(self.sales[lo + c - before])
        return out


def _serialised_sales(
    sales: pd.DataFrame, store_zone: dict[str, str]
) -> tuple[np.ndarray, list[bytes], list[tuple[str, int]]]:
    """Sale lines sorted by (soldAt instant, orderId, lineNumber): their instants (us), JSON and keys."""
    n = len(sales)
    local = pd.DatetimeIndex(sales["sold_at"]).as_unit("us")
    utc_us = np.empty(n, dtype=np.int64)
    stores = sales["store_id"].to_numpy(dtype=object)
    for store, zone in store_zone.items():
        mask = stores == store
        if mask.any():
            zoned = local[mask].tz_localize(
                zone or "UTC", ambiguous=np.zeros(int(mask.sum()), dtype=bool), nonexistent="shift_forward"
            )
            utc_us[mask] = zoned.tz_convert("UTC").tz_localize(None).as_unit("us").asi8
    offset_min = (local.asi8 - utc_us) // (60 * _MICROS)
    offsets = {int(m): _offset_text(int(m)) for m in np.unique(offset_min)}
    wall = np.datetime_as_string(local.to_numpy().astype("datetime64[s]")).tolist()
    sold_at = [w + offsets[m] for w, m in zip(wall, offset_min.tolist(), strict=True)]

    order = np.lexsort((sales["line_number"].to_numpy(), sales["order_id"].to_numpy(dtype=str), utc_us))
    sales_us = utc_us[order]
    ordered = sales.iloc[order]
    sold_at = [sold_at[i] for i in order.tolist()]

    def column(name: str) -> list:
        values = ordered[name]
        return values.astype(object).where(values.notna(), None).tolist()

    names = ("order_id", "line_number", "store_id", "customer_id", "product_id", "quantity", "unit_price",
             "discount", "promotion", "revenue")  # fmt: skip
    columns = {name: column(name) for name in names}
    columns["line_total"] = columns.pop("revenue")
    columns["sold_at"] = sold_at
    order_ids, line_numbers = columns["order_id"], columns["line_number"]
    # Validated and serialised in chunks: a whole history of models at once would cost hundreds of MB.
    adapter, to_json = TypeAdapter(list[SaleLine]), SaleLine.__pydantic_serializer__.to_json
    serialised: list[bytes] = []
    for start in range(0, n, _CHUNK):
        chunk = {name: values[start : start + _CHUNK] for name, values in columns.items()}
        rows = [dict(zip(chunk, values, strict=True)) for values in zip(*chunk.values(), strict=True)]
        serialised += [to_json(model, by_alias=True) for model in adapter.validate_python(rows)]
    keys: list[tuple[str, int]] = list(zip(order_ids, line_numbers, strict=True))
    return sales_us, serialised, keys


def _text(value: object) -> str | None:
    """A frame's cell as optional text: blank, None and NaN are None."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or value == "" else str(value)


def _offset_text(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _updated_at(products: pd.DataFrame, sales: pd.DataFrame, seed: int, end: dt.date, days: int) -> list[dt.datetime]:
    """Believable, deterministic last-change instants (UTC, milliseconds), none after the last day.

    ~70% long before the sales history (set up once), ~20% during it, ~10% (at least 2) in its last two
    weeks; a delisted product changed when it was delisted, a few days after its last sale.
    """
    rng = np.random.default_rng([seed, _UPDATED_AT_STREAM])
    n = len(products)
    kind = rng.random(n)
    days_before_end = np.where(
        kind < 0.10,
        rng.integers(0, 14, n),
        np.where(kind < 0.30, rng.integers(14, max(days, 15), n), days + rng.integers(1, 730, n)),
    )
    recent = np.flatnonzero(kind < 0.10)
    if len(recent) < min(2, n):  # always something for updatedSince to find
        extra = rng.permutation(n)[: min(2, n) - len(recent)]
        days_before_end[extra] = rng.integers(0, 14, len(extra))
    second_of_day = rng.integers(7 * 3600, 19 * 3600, n)
    millis = rng.integers(0, 1000, n)
    last_sale = pd.to_datetime(sales["sold_at"]).groupby(sales["product_id"]).max()
    end_start = dt.datetime.combine(end, dt.time(), dt.UTC)
    out = []
    for k, (product_id, active) in enumerate(zip(products["product_id"], products["active"], strict=True)):
        day = end_start - dt.timedelta(days=int(days_before_end[k]))
        if not active and product_id in last_sale.index:
            delisted = last_sale[product_id].date() + dt.timedelta(days=int(1 + days_before_end[k] % 3))
            day = min(dt.datetime.combine(delisted, dt.time(), dt.UTC), end_start)
        out.append(day + dt.timedelta(seconds=int(second_of_day[k]), milliseconds=int(millis[k])))
    return out


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------


class _ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: JavaApiSimulator) -> None:
        self.simulator = simulator
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return  # the client hung up (its read timed out): nothing to report
        super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a pull reuses one connection
    server_version = "JavaApiSimulator/1.0"
    disable_nagle_algorithm = True
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self.server.simulator._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.simulator._handle(self, "POST")

    def do_DELETE(self) -> None:
        self.server.simulator._handle(self, "DELETE")

    def do_PUT(self) -> None:
        self.server.simulator._handle(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.simulator._handle(self, "PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.simulator.verbose:  # the request line and status only: never a header, so never the token
            sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    def send_bytes(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def reset(self) -> None:
        """Drop the connection without a response; linger 0 makes the close a TCP reset."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class JavaApiSimulator:
    """The back office's API over loopback HTTP (a ThreadingHTTPServer in a background thread).

    `start()` returns the base URL (port 0 picks a free port); `stop()` shuts it down; as a context manager
    it starts on entry. `retailer` may be passed to reuse one already generated; it must be
    `generate_retailer(scale, seed, days, end)` for the served data to match `generate`'s. `live` carries the
    sales on past `end` up to `clock()` (default: the real UTC time).
    """

    def __init__(
        self,
        seed: int = 42,
        scale: int = 3,
        days: int = 730,
        end: dt.date = DEFAULT_END,
        token: str = DEFAULT_TOKEN,
        faults: dict[str, Any] | Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        retailer: Retailer | None = None,
        verbose: bool = False,
        live: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if not token:
            raise ValueError("the simulator needs a token to check")
        self.seed, self.scale, self.days, self.end = seed, scale, days, end
        self.token = token
        self.host, self.port = host, port
        self.verbose = verbose
        retailer = retailer if retailer is not None else generate_retailer(scale=scale, seed=seed, days=days, end=end)
        self.data = _Data(retailer, seed, end, days, (clock or _utc_now) if live else None)
        self._lock = threading.Lock()
        self._faults = Faults()
        self._fail_rate_rng = random.Random(seed)
        self._requests: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._served: Counter[str] = Counter()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.set_faults(faults)

    # Lifecycle ------------------------------------------------------------------------------------

    def start(self) -> str:
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="javaapi-sim", daemon=True
            )
            self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def wait(self) -> None:
        """Block until the server stops (or KeyboardInterrupt)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> JavaApiSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # Faults, stats, changes --------------------------------------------------------------------

    @property
    def faults(self) -> dict[str, Any]:
        with self._lock:
            return self._faults.model_dump(mode="json")

    def set_faults(self, spec: dict[str, Any] | Faults | None, merge: bool = True) -> dict[str, Any]:
        """Set faults (merged over the current ones unless merge=False); returns them all. FaultError if invalid."""
        with self._lock:
            faults = parse_faults(spec, self._faults if merge else None)
            if faults.fail_rate is not None and (spec is None or isinstance(spec, Faults) or "fail_rate" in spec):
                seed = faults.fail_rate.seed if faults.fail_rate.seed is not None else self.seed
                self._fail_rate_rng = random.Random(seed)
            self._faults = faults
            return faults.model_dump(mode="json")

    def clear_faults(self) -> dict[str, Any]:
        """No faults, and the sales lines `shifting_total` added are gone."""
        with self._lock:
            self._faults = Faults()
            self.data.extra_sales = []
            return self._faults.model_dump(mode="json")

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {name: self._requests[name] for name in RECORD_MODELS},
                "served": {name: self._served[name] for name in RECORD_MODELS},
                "statuses": dict(sorted(self._statuses.items())),
                "added_sales_lines": len(self.data.extra_sales),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()
            self._statuses.clear()
            self._served.clear()

    def touch_product(
        self, product_id: str, unit_price: float | None = None, updated_at: dt.datetime | str | None = None
    ) -> Product:
        """A change in the back office: the product's price (default +5%) and updatedAt (default now) move."""
        with self._lock:
            index = self.data.product_index.get(product_id)
            if index is None:
                raise KeyError(product_id)
            product = self.data.products[index]
            if updated_at is None:
                latest = max(p.updated_at for p in self.data.products) + dt.timedelta(milliseconds=1)
                updated_at = max(dt.datetime.now(dt.UTC), latest)
                updated_at = updated_at.replace(microsecond=updated_at.microsecond // 1000 * 1000)
            price = unit_price if unit_price is not None else round(product.unit_price * 1.05, 2)
            changed = Product.model_validate({**product.model_dump(), "unit_price": price, "updated_at": updated_at})
            self.data.products[index] = changed
            self.data.product_bytes[index] = changed.model_dump_json(by_alias=True).encode()
            return changed

    # Requests -----------------------------------------------------------------------------------

    def _handle(self, handler: _Handler, method: str) -> None:
        url = urlsplit(handler.path)
        path = url.path
        body = self._read_body(handler)
        try:
            if path.startswith(API_PREFIX):
                self._handle_api(handler, method, path, url.query)
            elif path.startswith("/admin/"):
                self._handle_admin(handler, method, path, body)
            elif path == "/actuator/health" and method == "GET":
                handler.send_bytes(200, b'{"status":"UP"}')
            else:
                raise _ApiError(404, f"No endpoint {method} {path}.")
        except _ApiError as error:
            self._count_status(path, str(error.status))
            handler.send_bytes(error.status, _error_body(error.status, error.message, path), error.headers)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    @staticmethod
    def _read_body(handler: _Handler) -> bytes:
        length = handler.headers.get("Content-Length")
        if not length:
            return b""
        try:
            return handler.rfile.read(int(length))
        except ValueError:
            handler.close_connection = True
            return b""

    def _count_status(self, path: str, status: str) -> None:
        if path.startswith(API_PREFIX):
            with self._lock:
                self._statuses[status] += 1

    def _handle_api(self, handler: _Handler, method: str, path: str, query: str) -> None:
        endpoint = path[len(API_PREFIX) :]
        if endpoint in RECORD_MODELS:
            with self._lock:
                self._requests[endpoint] += 1
        latency = self._faults.latency_ms
        if latency:
            time.sleep(latency / 1000)
        if endpoint not in RECORD_MODELS:
            raise _ApiError(404, f"No endpoint {method} {path}.")
        if method != "GET":
            raise _ApiError(405, f"Request method '{method}' is not supported.", {"Allow": "GET"})
        self._authorise(handler.headers.get("Authorization"))
        params = _query(query)
        page, size = _int_param(params, "page", 0, 0, None), _int_param(params, "size", DEFAULT_PAGE_SIZE, 1, None)
        if size > MAX_PAGE_SIZE:
            raise _ApiError(400, f"size: must be at most {MAX_PAGE_SIZE} (got {size})")
        if endpoint == "sales":
            first, last = _date_param(params, "from"), _date_param(params, "to")
            if first > last:
                raise _ApiError(400, f"from ({first}) must not be after to ({last}); to is exclusive")
            window = (_day_us(first), _day_us(last))
        else:
            window = None
        since = _instant_param(params, "updatedSince") if endpoint == "products" else None

        action = self._take_request_fault(endpoint)
        if action == "reset":
            self._count_status(path, "reset")
            handler.reset()
            return
        if action is not None:
            status, retry_after = action
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            message = {
                429: f"Too many requests: retry after {retry_after} s",
                500: "Unexpected error (simulated fault)",
                503: "Service temporarily unavailable (simulated fault)",
            }[status]
            raise _ApiError(status, message, headers)

        records, total = self._page(endpoint, page, size, window, since)
        records = self._apply_bad_record(endpoint, page, records)
        meta = {"size": size, "number": page, "totalElements": total, "totalPages": -(-total // size)}
        body = b'{"content":[' + b",".join(records) + b'],"page":' + _json(meta) + b"}"
        body = self._apply_truncation(endpoint, page, body)
        self._after_page(endpoint, page, window)
        with self._lock:
            self._statuses["200"] += 1
            self._served[endpoint] += 1
        handler.send_bytes(200, body)

    def _authorise(self, header: str | None) -> None:
        if not header:
            raise _ApiError(
                401, "Full authentication is required to access this resource", {"WWW-Authenticate": "Bearer"}
            )
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), self.token.encode()):
            raise _ApiError(401, "Invalid bearer token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def _take_request_fault(self, endpoint: str) -> Literal["reset"] | tuple[int, int | None] | None:
        with self._lock:
            faults = self._faults
            if faults.reset_next > 0:
                faults.reset_next -= 1
                return "reset"
            limit = faults.rate_limit_next
            if limit is not None and limit.count > 0 and limit.endpoint in (None, endpoint):
                limit.count -= 1
                return 429, limit.retry_after
            fail = faults.fail_next
            if fail is not None and fail.count > 0 and fail.endpoint in (None, endpoint):
                fail.count -= 1
                return fail.status, (fail.retry_after if fail.status == 503 else None)
            rate = faults.fail_rate
            if rate is not None and rate.rate > 0 and self._fail_rate_rng.random() < rate.rate:
                return rate.status, (rate.retry_after if rate.status == 503 else None)
        return None

    def _page(
        self, endpoint: str, page: int, size: int, window: tuple[int, int] | None, since: int | None
    ) -> tuple[list[bytes], int]:
        start, stop = page * size, (page + 1) * size
        data = self.data
        if endpoint == "sales":
            assert window is not None
            with self._lock:
                lo, hi, extras = data.sales_window(*window)
            return data.sales_page(lo, hi, extras, start, stop), hi - lo + len(extras)
        if endpoint in ("stock", "store-calendar", "promotions"):
            served = {"stock": data.stock, "store-calendar": data.calendar, "promotions": data.promotions}[endpoint]
            return served[start:stop], len(served)
        with self._lock:
            chosen = [
                i
                for i, product in enumerate(data.products)
                if since is None or _instant_us(product.updated_at) >= since
            ]
            return [data.product_bytes[i] for i in chosen[start:stop]], len(chosen)

    def _apply_bad_record(self, endpoint: str, page: int, records: list[bytes]) -> list[bytes]:
        with self._lock:
            bad = self._faults.bad_record
            if bad is None or bad.endpoint != endpoint or bad.page != page or not records or bad.times == 0:
                return records
            if bad.times is not None:
                bad.times -= 1
        index = min(bad.index, len(records) - 1)
        record = json.loads(records[index])
        if bad.missing:
            record.pop(bad.field, None)
        else:
            record[bad.field] = bad.value
        return [*records[:index], _json(record), *records[index + 1 :]]

    def _apply_truncation(self, endpoint: str, page: int, body: bytes) -> bytes:
        with self._lock:
            cut = self._faults.truncate_page
            if cut is None or cut.endpoint != endpoint or cut.page != page or cut.times <= 0:
                return body
            cut.times -= 1
        return body[: len(body) // 2]

    def _after_page(self, endpoint: str, page: int, window: tuple[int, int] | None) -> None:
        with self._lock:
            shift = self._faults.shifting_total
            if shift is None or shift.fired or endpoint != shift.endpoint or page != shift.after_page:
                return
            shift.fired = True
            assert window is not None
            self._add_sale_line(window)

    def _add_sale_line(self, window: tuple[int, int]) -> None:
        """A line that was not there: a new order at the window's start, so every later page shifts by one."""
        data = self.data
        lo, hi, extras = data.sales_window(*window)
        first = json.loads((data.sales_page(lo, hi, extras, 0, 1) or [b"null"])[0])
        if first is not None:
            sold_at = dt.datetime.fromisoformat(first["soldAt"])
            sold_at = max(sold_at - dt.timedelta(minutes=1), _us_instant(window[0]).astimezone(sold_at.tzinfo))
            store_id, product = first["storeId"], data.products[data.product_index[first["productId"]]]
        else:
            store_id = str(data.retailer.stores["store_id"].iloc[0])
            sold_at = _us_instant(window[0]) + dt.timedelta(hours=12)
            product = data.products[0]
        order_id = f"O-{data.next_order_number:0{data.order_id_width}d}"
        data.next_order_number += 1
        line = SaleLine(
            order_id=order_id,
            line_number=1,
            sold_at=sold_at,
            store_id=store_id,
            customer_id=None,
            product_id=product.product_id,
            quantity=1,
            unit_price=product.unit_price,
            discount=0.0,
            promotion=False,
            line_total=product.unit_price,
        )
        entry = (_instant_us(sold_at), order_id, 1, line.model_dump_json(by_alias=True).encode())
        data.extra_sales = sorted([*data.extra_sales, entry], key=lambda e: e[:3])

    # Admin --------------------------------------------------------------------------------------

    def _handle_admin(self, handler: _Handler, method: str, path: str, body: bytes) -> None:
        if path == "/admin/faults":
            if method == "GET":
                return handler.send_bytes(200, _json(self.faults))
            if method == "DELETE":
                return handler.send_bytes(200, _json(self.clear_faults()))
            if method == "POST":
                try:
                    return handler.send_bytes(200, _json(self.set_faults(_json_body(body))))
                except FaultError as error:
                    raise _ApiError(400, str(error)) from None
            raise _ApiError(405, f"Request method '{method}' is not supported.", {"Allow": "GET, POST, DELETE"})
        if path == "/admin/stats":
            if method == "GET":
                return handler.send_bytes(200, _json(self.stats()))
            if method == "DELETE":
                self.reset_stats()
                return handler.send_bytes(200, _json(self.stats()))
            raise _ApiError(405, f"Request method '{method}' is not supported.", {"Allow": "GET, DELETE"})
        touch = re.fullmatch(r"/admin/products/([^/]+)/touch", path)
        if touch and method == "POST":
            changes = _json_body(body) if body.strip() else {}
            if not isinstance(changes, dict) or set(changes) - {"unitPrice", "updatedAt"}:
                raise _ApiError(400, "the body may hold unitPrice and updatedAt only")
            product_id = unquote(touch.group(1))
            try:
                product = self.touch_product(product_id, changes.get("unitPrice"), changes.get("updatedAt"))
            except KeyError:
                raise _ApiError(404, f"No product {product_id}") from None
            except ValidationError as error:
                first = error.errors()[0]
                raise _ApiError(400, f"{first['loc'][0]}: {describe_error(first)}") from None
            return handler.send_bytes(200, product.model_dump_json(by_alias=True).encode())
        raise _ApiError(404, f"No endpoint {method} {path}.")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except ValueError:
        raise _ApiError(400, "the body is not valid JSON") from None


def _error_body(status: int, message: str, path: str) -> bytes:
    """Spring Boot's error JSON (DefaultErrorAttributes, message included)."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    phrase = HTTPStatus(status).phrase
    return _json({"timestamp": now, "status": status, "error": phrase, "message": message, "path": path})


def _query(query: str) -> dict[str, str]:
    """The first value of each parameter, as Spring binds a single-valued @RequestParam."""
    return {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}


def _int_param(params: dict[str, str], name: str, default: int, minimum: int, maximum: int | None) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    if not re.fullmatch(r"[+-]?\d{1,18}", text):
        raise _ApiError(400, f"{name}: must be a whole number (got {text!r})")
    value = int(text)
    if value < minimum or (maximum is not None and value > maximum):
        raise _ApiError(400, f"{name}: must be {minimum} or more (got {value})")
    return value


def _date_param(params: dict[str, str], name: str) -> dt.date:
    text = params.get(name)
    if text is None or not text.strip():
        raise _ApiError(400, f"Required request parameter '{name}' (an ISO date, e.g. 2026-11-01) is not present")
    text = text.strip()
    try:
        if not _DATE.match(text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _ApiError(400, f"{name}: must be an ISO date yyyy-MM-dd (got {text!r})") from None


def _instant_param(params: dict[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or not text.strip():
        return None
    text = text.strip().replace(" ", "+")  # '+01:00' unencoded in a URL arrives as ' 01:00'
    try:
        if "T" not in text:
            raise ValueError
        value = dt.datetime.fromisoformat(text)
        if value.tzinfo is None:
            raise ValueError
    except ValueError:
        raise _ApiError(
            400, f"{name}: must be an ISO-8601 instant with an offset, e.g. 2026-11-01T00:00:00Z (got {text!r})"
        ) from None
    return _instant_us(value)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _instant_us(value: dt.datetime) -> int:
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


def _us_instant(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value)


def _day_us(day: dt.date) -> int:
    return _instant_us(dt.datetime.combine(day, dt.time(), dt.UTC))


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def serve(
    port: int = DEFAULT_PORT,
    seed: int = 42,
    scale: int = 3,
    token: str = DEFAULT_TOKEN,
    days: int = 730,
    end: dt.date = DEFAULT_END,
    faults: dict[str, Any] | Faults | None = None,
    host: str = "127.0.0.1",
    verbose: bool = False,
    live: bool = False,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM). Prints one line, `... listening on <base url> ...`, when ready."""
    started = time.perf_counter()
    simulator = JavaApiSimulator(
        seed=seed, scale=scale, days=days, end=end, token=token, faults=faults, host=host, port=port, verbose=verbose,
        live=live,
    )  # fmt: skip
    url = simulator.start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    data = simulator.data
    first_day = end - dt.timedelta(days=days - 1)
    token_note = f"token {DEFAULT_TOKEN!r} (the default)" if token == DEFAULT_TOKEN else "token as given"
    print(
        f"Java API simulator listening on {url} ({len(data.sales):,} sales lines {first_day}..{end}"
        f"{', then every day to now (live)' if live else ''}, "
        f"{len(data.products)} products, {len(data.stock)} stock levels; seed {seed}, scale {scale}; {token_note}; "
        f"ready in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    active = {k: v for k, v in simulator.faults.items() if v not in (None, 0)}
    if active:
        print(f"Faults: {json.dumps(active)}", flush=True)
    try:
        simulator.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        simulator.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _endpoint_page(text: str, third: str | None = None) -> dict[str, Any]:
    """'sales:3' -> {"endpoint": "sales", "page": 3}; 'sales:3:2' adds the third part as `third`."""
    parts = text.split(":")
    if len(parts) == 1:
        parts = ["sales", *parts]
    if len(parts) not in (2, 3 if third else 2) or not all(p.strip().isdigit() for p in parts[1:]):
        shape = f"ENDPOINT:PAGE[:{third.upper()}]" if third else "ENDPOINT:PAGE"
        raise argparse.ArgumentTypeError(f"expected {shape}, got {text!r}")
    spec: dict[str, Any] = {"endpoint": parts[0].strip(), "page": int(parts[1])}
    if len(parts) == 3 and third:
        spec[third] = int(parts[2])
    return spec


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"latency_ms\": 50}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sales-pipeline simulate-api",
        description="Serve the synthetic retailer as the back office's API (openapi.yaml) on loopback, "
        "with optional faults. Admin: GET/POST/DELETE /admin/faults, GET/DELETE /admin/stats, "
        "POST /admin/products/{id}/touch.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port (default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    parser.add_argument("--seed", type=int, default=42, help="the same seed as `generate` (default %(default)s)")
    parser.add_argument("--scale", type=int, default=3, help="number of stores (default %(default)s)")
    parser.add_argument("--days", type=int, default=730, help="days of sales history (default %(default)s)")
    parser.add_argument("--end", type=dt.date.fromisoformat, default=DEFAULT_END, help="last day (default %(default)s)")
    parser.add_argument(
        "--token", default=None, help=f"bearer token to accept (default: ${TOKEN_ENV}, else {DEFAULT_TOKEN!r})"
    )
    parser.add_argument(
        "--live", action="store_true", help="carry the retailer on after --end: every day to now, today's lines as "
        "their time passes (each day the same whenever asked)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="log each request line to stderr")
    faults = parser.add_argument_group("faults (the same as POST /admin/faults)")
    faults.add_argument("--faults", type=_json_object, default=None, metavar="JSON", help="a JSON object of faults")
    faults.add_argument("--latency-ms", type=int, help="added to every /api response")
    faults.add_argument("--fail-next", type=int, metavar="N", help="the next N data requests fail")
    faults.add_argument("--fail-status", type=int, choices=(500, 503), default=503, help="default %(default)s")
    faults.add_argument("--rate-limit-next", type=int, metavar="N", help="the next N data requests get 429")
    faults.add_argument("--retry-after", type=int, default=1, metavar="S", help="Retry-After of 429/503 (default 1)")
    faults.add_argument("--reset-next", type=int, metavar="N", help="the next N data requests: connection reset")
    faults.add_argument("--fail-rate", type=float, metavar="SHARE", help="a share of data requests fail (seeded)")
    faults.add_argument("--truncate-page", type=lambda t: _endpoint_page(t, "times"), metavar="ENDPOINT:PAGE[:TIMES]")
    faults.add_argument("--bad-record", type=lambda t: _endpoint_page(t, "index"), metavar="ENDPOINT:PAGE[:INDEX]")
    faults.add_argument(
        "--shifting-total", type=_endpoint_page, metavar="sales:AFTER_PAGE", help="one line appears after that page"
    )
    return parser


def faults_from_args(args: argparse.Namespace) -> Faults:
    spec: dict[str, Any] = dict(args.faults or {})
    if args.latency_ms is not None:
        spec["latency_ms"] = args.latency_ms
    if args.fail_next is not None:
        spec["fail_next"] = {"count": args.fail_next, "status": args.fail_status, "retry_after": args.retry_after}
    if args.rate_limit_next is not None:
        spec["rate_limit_next"] = {"count": args.rate_limit_next, "retry_after": args.retry_after}
    if args.reset_next is not None:
        spec["reset_next"] = args.reset_next
    if args.fail_rate is not None:
        spec["fail_rate"] = {"rate": args.fail_rate, "status": args.fail_status, "retry_after": args.retry_after}
    if args.truncate_page is not None:
        spec["truncate_page"] = args.truncate_page
    if args.bad_record is not None:
        spec["bad_record"] = args.bad_record
    if args.shifting_total is not None:
        shift = args.shifting_total
        spec["shifting_total"] = {"endpoint": shift["endpoint"], "after_page": shift["page"]}
    return parse_faults(spec)


def main(argv: Sequence[str] | None = None) -> int:
    """`sales-pipeline simulate-api`: parse the flags and serve until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.scale < 1:
        parser.error("--scale must be at least 1")
    try:
        faults = faults_from_args(args)
    except FaultError as error:
        parser.error(f"faults: {error}")
    token = args.token or os.environ.get(TOKEN_ENV) or DEFAULT_TOKEN
    try:
        serve(args.port, args.seed, args.scale, token, args.days, args.end, faults, args.host, args.verbose, args.live)
    except (ValueError, OSError) as error:
        print(f"simulate-api: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
