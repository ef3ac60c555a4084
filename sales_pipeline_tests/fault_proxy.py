"""A fault proxy of the tests' own: real HTTP on loopback in front of the simulator, lying or slow on demand.

The simulator's own faults are the ones a back office owns up to (500s, 429s); this proxy plays the
network and the middleboxes between: pages rewritten by a broken cache or a moved offset, an answer that
takes 40 s, a body dripped a byte at a time, a body cut short.

    with FaultProxy(simulator.base_url, token) as proxy:
        proxy.rewrite = later_records(page=1, days=30)
        JavaApiClient(proxy.base_url, token).fetch_all("sales", {...})
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

# (proxy, endpoint, query, body of a 200) -> the body to answer instead
Rewrite = Callable[["FaultProxy", str, dict[str, str], bytes], bytes]


class FaultProxy:
    """Forwards GETs to `upstream`; `rewrite`, `latency_s`, `drip_s` and `cut_times` change what comes back.

    `latency_s`, `drip_s` and `cut_times` apply to the requests `where(endpoint, page)` selects (all by
    default): `drip_times` of them are dripped (None: every one), `cut_times` of them close the connection
    halfway through a body whose Content-Length promised all of it.
    """

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream, self.token = upstream.rstrip("/"), token
        self.closing = threading.Event()  # ends every wait when the proxy stops
        self._lock = threading.Lock()
        self.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def clear(self) -> None:
        self.rewrite: Rewrite | None = None
        self.latency_s = 0.0
        self.drip_s: float | None = None
        self.drip_times: int | None = None
        self.cut_times = 0
        self.where: Callable[[str, int], bool] = lambda endpoint, page: True

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()

    def upstream_page(self, endpoint: str, query: dict[str, Any]) -> dict[str, Any]:
        """A page as the simulator serves it (for rewrites that borrow records from elsewhere)."""
        response = requests.get(
            f"{self.upstream}/api/v1/{endpoint}", params=query, headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )  # fmt: skip
        response.raise_for_status()
        return response.json()

    def take_drip(self) -> float | None:
        with self._lock:
            if self.drip_s is None or self.drip_times == 0:
                return None
            if self.drip_times is not None:
                self.drip_times -= 1
            return self.drip_s

    def take_cut(self) -> bool:
        with self._lock:
            if self.cut_times <= 0:
                return False
            self.cut_times -= 1
            return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping out its latency must not hold the tests up
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hung up on a slow answer: that is the point


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        proxy = self.server.proxy
        parts = urlsplit(self.path)
        endpoint, query = parts.path.rsplit("/", 1)[-1], dict(parse_qsl(parts.query))
        slow = proxy.where(endpoint, int(query.get("page", 0)))
        if slow and proxy.latency_s:
            proxy.closing.wait(proxy.latency_s)
        upstream = requests.get(proxy.upstream + self.path, headers={"Authorization": self.headers["Authorization"]},
                                timeout=30)  # fmt: skip
        body = upstream.content
        if upstream.status_code == 200 and proxy.rewrite is not None:
            body = proxy.rewrite(proxy, endpoint, query, body)
        self.send_response(upstream.status_code)
        for name in ("Content-Type", "Retry-After", "WWW-Authenticate"):
            if name in upstream.headers:
                self.send_header(name, upstream.headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        drip = proxy.take_drip() if slow else None
        if slow and proxy.take_cut():
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        elif drip is None:
            self.wfile.write(body)
        else:
            for at in range(len(body)):
                if proxy.closing.is_set():
                    break
                self.wfile.write(body[at : at + 1])
                self.wfile.flush()
                proxy.closing.wait(drip)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _page_of(endpoint: str, query: dict[str, str], wanted: str, page: int) -> bool:
    return endpoint == wanted and int(query.get("page", 0)) == page


def later_records(page: int, days: int) -> Rewrite:
    """Page `page` of a sales window holds the same page of the window `days` later (a cache gone wrong)."""

    def rewrite(proxy: FaultProxy, endpoint: str, query: dict[str, str], body: bytes) -> bytes:
        if not _page_of(endpoint, query, "sales", page):
            return body
        payload = json.loads(body)
        later = {**query, **{bound: str(dt.date.fromisoformat(query[bound]) + dt.timedelta(days=days))
                             for bound in ("from", "to")}}  # fmt: skip
        payload["content"] = proxy.upstream_page("sales", later)["content"][: len(payload["content"])]
        return json.dumps(payload).encode()

    return rewrite


def shifted_page(page: int) -> Rewrite:
    """Page `page` starts with the last record of the page before (an offset that moved by one)."""

    def rewrite(proxy: FaultProxy, endpoint: str, query: dict[str, str], body: bytes) -> bytes:
        if not _page_of(endpoint, query, "sales", page):
            return body
        payload = json.loads(body)
        before = proxy.upstream_page("sales", {**query, "page": page - 1})["content"]
        payload["content"] = [before[-1], *payload["content"][:-1]]
        return json.dumps(payload).encode()

    return rewrite


def dropped_record(page: int, index: int, *, deleted: bool) -> Rewrite:
    """Record `index` of sales page `page` left out. `deleted`: every page's totalElements says so too
    (the back office deleted the line); otherwise the total still counts it (a record lost on the way)."""

    def rewrite(proxy: FaultProxy, endpoint: str, query: dict[str, str], body: bytes) -> bytes:
        if endpoint != "sales":
            return body
        payload = json.loads(body)
        if int(query.get("page", 0)) == page:
            del payload["content"][index]
        if deleted:
            payload["page"]["totalElements"] -= 1
        return json.dumps(payload).encode()

    return rewrite


def truncated(page: int, times: int = 1) -> Rewrite:
    """Sales page `page` cut in half `times` times, with a Content-Length that matches the cut body."""
    left = [times]

    def rewrite(proxy: FaultProxy, endpoint: str, query: dict[str, str], body: bytes) -> bytes:
        if not _page_of(endpoint, query, "sales", page) or left[0] <= 0:
            return body
        left[0] -= 1
        return body[: len(body) // 2]

    return rewrite
