"""The client of the back office's API: paginated GETs, retried the way a flaky network deserves.

Timeouts, connection resets, truncated bodies, 5xx and 429 are retried with exponential backoff and
jitter (429 and 503 honour Retry-After), within a bounded total wait. Time is bounded twice: each
response, from sending the request to its last byte, within `read_timeout_s` (a body dripped a byte at
a time does not reset it, as a socket timeout would), and the whole pull, retries and waits included,
within `deadline_s` (JAVA_API_DEADLINE_S). Any other 4xx is a clear error naming the endpoint, and for
401/403 the setting JAVA_API_TOKEN; the token itself never appears in a message.

A pull returns every record of every page, or raises: the caller commits only complete pulls. Pages
are not trusted: a record outside the requested window, a key seen twice, or fewer distinct keys than
`totalElements` fail the pull, naming the page and the first offending record, before anything is written.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3

from sales_pipeline.javaapi.records import ApiRecord, outside_window, parse_page
from sales_pipeline.settings import JAVA_API_DEADLINE_S

TOKEN_SETTING = "JAVA_API_TOKEN"
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
RESTARTS_ON_SHIFT = 3  # a live query may change under a pull: start it again, this many times at most
CHUNK = 64 * 1024


class JavaApiError(Exception):
    """The API refused, failed for good, or answered something we cannot use; the message says which."""


class JavaApiUnavailable(JavaApiError):
    """The API kept failing (or answering too slowly) until the client gave up: worth trying again later."""


class _Transient(Exception):
    """A failure worth retrying: `reason` counts it in the stats, `detail` says it in a message."""

    def __init__(self, reason: str, detail: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail or reason)
        self.reason, self.detail, self.retry_after = reason, detail or reason, retry_after


@dataclass
class PullStats:
    """What a pull took: pages read, requests sent, retries, seconds spent waiting between them."""

    pages: int = 0
    requests: int = 0
    retries: int = 0
    restarts: int = 0
    waited_s: float = 0.0
    retry_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class JavaApiClient:
    base_url: str
    token: str
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0  # the longest one response may take, from the request to its body's last byte
    page_size: int = 1000
    max_retries: int = 6
    backoff_s: float = 0.5
    max_wait_s: float = 120.0  # total sleep across retries of one pull, Retry-After included
    deadline_s: float = 600.0  # the longest a whole pull may take, every request and wait included
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    session: requests.Session = field(default_factory=requests.Session)

    def fetch_all(self, endpoint: str, params: dict[str, Any] | None = None) -> tuple[list[Any], PullStats]:
        """Every record of `endpoint` (e.g. "sales") for `params`, page after page, checked.

        If the total changes between pages (a line was added while we read), the pull starts again,
        so that no line slips between two pages unseen.
        """
        stats = PullStats()
        deadline = self.clock() + self.deadline_s
        for _ in range(RESTARTS_ON_SHIFT + 1):
            records = self._read_pages(endpoint, params or {}, stats, deadline)
            if records is not None:
                return records, stats
            stats.restarts += 1
        raise JavaApiError(
            f"GET {self._path(endpoint)}: the total kept changing during {RESTARTS_ON_SHIFT + 1} pulls; try again later"
        )

    def _path(self, endpoint: str) -> str:
        return f"/api/v1/{endpoint}"

    def _read_pages(self, endpoint: str, params: dict[str, Any], stats: PullStats, deadline: float) -> list[Any] | None:
        """Every page once: the records, or None when the total changed between two pages."""
        first_page_of: dict[tuple, int] = {}  # key -> the page it came on
        records: list[Any] = []
        total: int | None = None
        page_number, total_pages = 0, 1
        while page_number < total_pages:
            payload = self._get_page(endpoint, params, page_number, stats, deadline)
            page_records, page = parse_page(endpoint, page_number, payload)
            stats.pages += 1
            if total is None:
                total = page.total_elements
            elif page.total_elements != total:
                return None
            self._check_page(endpoint, params, page_number, page_records, first_page_of)
            records += page_records
            total_pages = page.total_pages
            page_number += 1
        if len(records) != (total or 0):
            raise JavaApiError(
                f"GET {self._path(endpoint)} page {page_number - 1}: the {page_number} pages hold {len(records):,}"
                f" distinct records, but totalElements is {total:,}: records are missing; nothing was written"
            )
        return records

    def _check_page(
        self, endpoint: str, params: dict[str, Any], number: int, page: list[ApiRecord], first_page_of: dict
    ) -> None:
        """Fail on the first record that was not asked for, or that an earlier record already was."""
        for index, record in enumerate(page):
            where = f"GET {self._path(endpoint)} page {number}, record {index} ({record.key_text})"
            problem = outside_window(endpoint, record, params)
            if problem:
                raise JavaApiError(f"{where}: {problem}; nothing was written")
            seen_on = first_page_of.get(record.key)
            if seen_on is not None:
                raise JavaApiError(f"{where}: already served on page {seen_on} (pages that overlap);"
                                   " nothing was written")  # fmt: skip
            first_page_of[record.key] = number

    def _get_page(self, endpoint: str, params: dict[str, Any], page: int, stats: PullStats, deadline: float) -> Any:
        where = f"GET {self._path(endpoint)} page {page}"
        query = {**params, "page": page, "size": self.page_size}
        for attempt in range(self.max_retries + 1):
            stats.requests += 1
            try:
                return self._get_json(endpoint, query, where, deadline)
            except _Transient as failure:
                problem = failure
            if self.clock() >= deadline:
                raise self._past_deadline(where, problem.detail)
            if attempt == self.max_retries:
                raise JavaApiUnavailable(f"{where}: gave up after {self.max_retries} retries (last: {problem.detail})")
            delay = problem.retry_after
            if delay is None:
                delay = self.backoff_s * 2**attempt * random.uniform(0.5, 1.5)
            if stats.waited_s + delay > self.max_wait_s:
                raise JavaApiUnavailable(
                    f"{where}: gave up: retrying would wait more than {self.max_wait_s:.0f} s in all"
                    f" (last: {problem.detail})"
                )
            if self.clock() + delay >= deadline:
                raise self._past_deadline(where, problem.detail)
            stats.retries += 1
            stats.retry_reasons[problem.reason] = stats.retry_reasons.get(problem.reason, 0) + 1
            stats.waited_s += delay
            self.sleep(delay)
        raise AssertionError("unreachable")

    def _past_deadline(self, where: str, last: str) -> JavaApiError:
        return JavaApiUnavailable(
            f"{where}: the pull did not finish within {self.deadline_s:g} s ({JAVA_API_DEADLINE_S}; last: {last});"
            " nothing was written"
        )

    def _get_json(self, endpoint: str, query: dict[str, Any], where: str, deadline: float) -> Any:
        """One request and its whole body within `read_timeout_s` (and the pull's deadline) -> its JSON."""
        until = min(self.clock() + self.read_timeout_s, deadline)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            left = max(until - self.clock(), 0.001)
            with self.session.get(
                self.base_url.rstrip("/") + self._path(endpoint),
                params=query,
                headers=headers,
                timeout=(min(self.connect_timeout_s, left), left),
                stream=True,
            ) as response:
                body = _read_body(response, until, self.clock, self.read_timeout_s)
        except (requests.Timeout, requests.ConnectionError) as error:
            raise _Transient(type(error).__name__) from None
        except requests.RequestException:
            raise  # a bad URL or the like: no retry mends it
        except (urllib3.exceptions.HTTPError, OSError) as error:  # the body cut short, or the connection reset
            raise _Transient(type(error).__name__) from None
        if response.status_code == 200:
            try:
                return json.loads(body)
            except ValueError:
                detail = f"the response is not valid JSON ({len(body):,} bytes: truncated?)"
                raise _Transient("invalid JSON", detail) from None
        if response.status_code in (401, 403):
            refused = f"{response.status_code} {response.reason}"
            raise JavaApiError(f"{where}: {refused}: the API refused the token; check {TOKEN_SETTING}")
        if response.status_code not in RETRYABLE_STATUS:
            raise JavaApiError(f"{where}: {response.status_code} {response.reason}: {_message(body)}")
        raise _Transient(f"{response.status_code}", retry_after=_retry_after(response))


def _read_body(response: requests.Response, until: float, clock: Callable[[], float], limit_s: float) -> bytes:
    """The body, read as it arrives; past `until`, a transient failure however steadily it drips."""
    raw = response.raw
    chunks = []
    slow = _Transient("slow response", f"the response took more than {limit_s:g} s (read_timeout_s)")
    while True:
        left = until - clock()
        if left <= 0:
            raise slow
        sock = getattr(raw.connection, "sock", None)
        if sock is not None:
            sock.settimeout(left)  # one wait for bytes never outlasts the response's deadline
        try:
            chunk = raw.read1(CHUNK)  # what has arrived, after at most one wait on the socket
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise slow from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _message(body: bytes) -> str:
    """The Spring error's message, or the start of the body."""
    try:
        error = json.loads(body)
        return str(error.get("message") or error.get("error") or error)[:300]
    except (ValueError, AttributeError):
        return body[:300].decode("utf-8", "replace")
