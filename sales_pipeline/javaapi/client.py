"""The client of the back office's API: paginated GETs, retried the way a flaky network deserves.

Timeouts, connection resets, truncated bodies, 5xx and 429 are retried with exponential backoff and
jitter (429 and 503 honour Retry-After), within a bounded total wait. Time is bounded twice: each
response, from sending the request to its last byte, within `read_timeout_s` (a body dripped a byte at
a time does not reset it, as a socket timeout would), and the whole pull, retries and waits included,
within `deadline_s` (JAVA_API_DEADLINE_S). Any other 4xx is a clear error naming the endpoint, and for
401/403 the setting JAVA_API_TOKEN; the token itself never appears in a message.

A pull yields its pages in order (`pages`, for the sales that stream into the warehouse) or returns every
record (`fetch_all`), or raises: the caller commits only complete pulls. Pages are not trusted: a record
outside the requested window, a key seen twice (checked by whoever keeps the keys: `fetch_all`, or the
warehouse's staging for the sales), or fewer records than `totalElements` fail the pull, naming the page
and the first offending record, before anything is committed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3

from sales_pipeline.javaapi.records import InvalidPage, read_page, window_check
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


@dataclass(frozen=True)
class Page:
    """One page of a pull, checked on its own: its records (sales: `SalesLines`), the totals it announced."""

    number: int
    records: Sequence[Any]
    total_elements: int
    total_pages: int


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
        """Every record of `endpoint` (e.g. "products") for `params`, in memory, checked across pages too.

        For the lists that fit in memory (products, stock); the sales of a window stream page by page
        into the warehouse instead (`load.land_sales`).
        """
        stats = PullStats()
        records: list[Any] = []
        first_page_of: dict[tuple, int] = {}  # key -> the page it came on
        for page in self.pages(endpoint, params, stats):
            if page.number == 0:  # the first page, or the pull started again
                records, first_page_of = [], {}
            for index, record in enumerate(page.records):
                seen_on = first_page_of.get(record.key)
                if seen_on is not None:
                    raise served_twice(endpoint, page.number, index, record.key_text, seen_on)
                first_page_of[record.key] = page.number
            records += page.records
        return records, stats

    def pages(
        self, endpoint: str, params: dict[str, Any] | None = None, stats: PullStats | None = None
    ) -> Iterator[Page]:
        """The pages of `endpoint` for `params`, in order, each checked on its own (the contract, the window).

        If the total changes between pages (a line was added while we read), the pull starts again so that
        no line slips between two pages unseen: page 0 comes again, and whoever keeps pages drops what it
        kept. Whoever keeps the keys checks that none comes twice (`served_twice`); once the last page has
        come, the pages must hold `totalElements` records. The next page is read (and validated) in a
        thread while the caller handles this one.
        """
        stats = stats if stats is not None else PullStats()
        params = params or {}
        deadline = self.clock() + self.deadline_s
        outside = window_check(endpoint, params)
        # One request at a time, all from this thread: the session is not shared. A page still coming when
        # the caller stops is left to finish on its own (its read timeout bounds it).
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="java-api-page")
        try:
            for _ in range(RESTARTS_ON_SHIFT + 1):
                complete = yield from self._attempt(endpoint, params, stats, deadline, outside, reader)
                if complete:
                    return
                stats.restarts += 1
        finally:
            reader.shutdown(wait=False, cancel_futures=True)
        raise JavaApiError(
            f"GET {self._path(endpoint)}: the total kept changing during {RESTARTS_ON_SHIFT + 1} pulls; try again later"
        )

    def _attempt(
        self,
        endpoint: str,
        params: dict[str, Any],
        stats: PullStats,
        deadline: float,
        outside: Callable[[Sequence[Any]], tuple[int, str] | None],
        reader: Executor,
    ) -> Generator[Page, None, bool]:
        """Every page once, from page 0: True, or False when the total changed between two pages."""
        coming = reader.submit(self._get_page, endpoint, params, 0, stats, deadline)
        total, served = None, 0
        while coming is not None:
            page = coming.result()
            stats.pages += 1
            if total is None:
                total = page.total_elements
            elif page.total_elements != total:
                return False
            more = page.number + 1 < page.total_pages
            coming = reader.submit(self._get_page, endpoint, params, page.number + 1, stats, deadline) if more else None
            found = outside(page.records)
            if found:
                index, problem = found
                key_text = page.records[index].key_text
                where = f"GET {self._path(endpoint)} page {page.number}, record {index} ({key_text})"
                raise JavaApiError(f"{where}: {problem}; nothing was written")
            served += len(page.records)
            yield page
        if served != total:
            raise JavaApiError(
                f"GET {self._path(endpoint)} page {page.number}: the {page.number + 1} pages hold {served:,}"
                f" distinct records, but totalElements is {total:,}: records are missing; nothing was written"
            )
        return True

    def _path(self, endpoint: str) -> str:
        return f"/api/v1/{endpoint}"

    def _get_page(self, endpoint: str, params: dict[str, Any], number: int, stats: PullStats, deadline: float) -> Page:
        where = f"GET {self._path(endpoint)} page {number}"
        query = {**params, "page": number, "size": self.page_size}
        for attempt in range(self.max_retries + 1):
            stats.requests += 1
            try:
                body = self._get_body(endpoint, query, where, deadline)
                return Page(number, *_read(endpoint, number, body))
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

    def _get_body(self, endpoint: str, query: dict[str, Any], where: str, deadline: float) -> bytes:
        """One request and its whole body within `read_timeout_s` (and the pull's deadline) -> a 200's body."""
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
            return body
        if response.status_code in (401, 403):
            refused = f"{response.status_code} {response.reason}"
            raise JavaApiError(f"{where}: {refused}: the API refused the token; check {TOKEN_SETTING}")
        if response.status_code not in RETRYABLE_STATUS:
            raise JavaApiError(f"{where}: {response.status_code} {response.reason}: {_message(body)}")
        raise _Transient(f"{response.status_code}", retry_after=_retry_after(response))


def _read(endpoint: str, number: int, body: bytes) -> tuple[Sequence[Any], int, int]:
    """A 200's body -> (records, totalElements, totalPages); a body cut short is transient."""
    try:
        records, info = read_page(endpoint, number, body)
    except InvalidPage:
        raise
    except ValueError:
        detail = f"the response is not valid JSON ({len(body):,} bytes: truncated?)"
        raise _Transient("invalid JSON", detail) from None
    return records, info.total_elements, info.total_pages


def served_twice(endpoint: str, number: int, index: int, key_text: str, first_page: int) -> JavaApiError:
    """A record whose key an earlier record of the pull already had: pages that overlap."""
    return JavaApiError(
        f"GET /api/v1/{endpoint} page {number}, record {index} ({key_text}): already served on page"
        f" {first_page} (pages that overlap); nothing was written"
    )


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
