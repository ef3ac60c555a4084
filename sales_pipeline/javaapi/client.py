"""The client of the back office's API: paginated GETs, retried the way a flaky network deserves.

Timeouts, connection resets, 5xx and 429 are retried with exponential backoff and jitter (429 and
503 honour Retry-After), within a bounded total wait. Any other 4xx is a clear error naming the
endpoint, and for 401/403 the setting JAVA_API_TOKEN; the token itself never appears in a message.
A pull returns every record of every page, or raises: the caller commits only complete pulls.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from sales_pipeline.javaapi.records import InvalidPage, parse_page

TOKEN_SETTING = "JAVA_API_TOKEN"
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
# Each endpoint's natural key: a record seen on two pages is one record.
KEY_FIELDS = {"products": ("product_id",), "sales": ("order_id", "line_number"), "stock": ("store_id", "product_id")}
RESTARTS_ON_SHIFT = 3  # a live query may change under a pull: start it again, this many times at most


class JavaApiError(Exception):
    """The API refused, failed for good, or answered something we cannot use; the message says which."""


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
    read_timeout_s: float = 30.0
    page_size: int = 1000
    max_retries: int = 6
    backoff_s: float = 0.5
    max_wait_s: float = 120.0  # total sleep across retries of one pull, Retry-After included
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)

    def fetch_all(self, endpoint: str, params: dict[str, Any] | None = None) -> tuple[list[Any], PullStats]:
        """Every record of `endpoint` (e.g. "sales") for `params`, page after page, deduplicated by key.

        If the total changes between pages (a line was added while we read), the pull starts again,
        so that no line slips between two pages unseen; records are keyed, so none is counted twice.
        """
        stats = PullStats()
        for _ in range(RESTARTS_ON_SHIFT + 1):
            records: dict[tuple, Any] = {}
            first_total = None
            page_number, total_pages = 0, 1
            shifted = False
            while page_number < total_pages:
                payload = self._get_page(endpoint, params or {}, page_number, stats)
                page_records, page = parse_page(endpoint, page_number, payload)
                stats.pages += 1
                if first_total is None:
                    first_total = page.total_elements
                elif page.total_elements != first_total:
                    shifted = True
                for record in page_records:
                    records[tuple(getattr(record, name) for name in KEY_FIELDS[endpoint])] = record
                total_pages = page.total_pages
                page_number += 1
            if not shifted:
                return list(records.values()), stats
            stats.restarts += 1
        raise JavaApiError(
            f"GET {self._path(endpoint)}: the total kept changing during {RESTARTS_ON_SHIFT + 1} pulls; try again later"
        )

    def _path(self, endpoint: str) -> str:
        return f"/api/v1/{endpoint}"

    def _get_page(self, endpoint: str, params: dict[str, Any], page: int, stats: PullStats) -> Any:
        where = f"GET {self._path(endpoint)} page {page}"
        query = {**params, "page": page, "size": self.page_size}
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        for attempt in range(self.max_retries + 1):
            stats.requests += 1
            try:
                response = self.session.get(
                    self.base_url.rstrip("/") + self._path(endpoint),
                    params=query,
                    headers=headers,
                    timeout=(self.connect_timeout_s, self.read_timeout_s),
                )
            except (requests.Timeout, requests.ConnectionError) as error:
                reason, retry_after = type(error).__name__, None
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise InvalidPage(
                            f"{where}: the response is not valid JSON ({len(response.content)} bytes: truncated?)"
                        ) from error
                if response.status_code in (401, 403):
                    refused = f"{response.status_code} {response.reason}"
                    raise JavaApiError(f"{where}: {refused}: the API refused the token; check {TOKEN_SETTING}")
                if response.status_code not in RETRYABLE_STATUS:
                    raise JavaApiError(f"{where}: {response.status_code} {response.reason}: {_message(response)}")
                reason, retry_after = f"{response.status_code}", _retry_after(response)
            if attempt == self.max_retries:
                raise JavaApiError(f"{where}: gave up after {self.max_retries} retries (last: {reason})")
            delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt * random.uniform(0.5, 1.5)
            if stats.waited_s + delay > self.max_wait_s:
                raise JavaApiError(
                    f"{where}: gave up: retrying would wait more than {self.max_wait_s:.0f} s in all (last: {reason})"
                )
            stats.retries += 1
            stats.retry_reasons[reason] = stats.retry_reasons.get(reason, 0) + 1
            stats.waited_s += delay
            self.sleep(delay)
        raise AssertionError("unreachable")


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _message(response: requests.Response) -> str:
    """The Spring error's message, or the start of the body."""
    try:
        body = response.json()
        return str(body.get("message") or body.get("error") or body)[:300]
    except ValueError:
        return response.text[:300]
