"""The read API under load: GET /analytics/dashboard (a 200, and a 304 with its ETag) and
/analytics/top-products, requests per second and p50/p99 latency at 50 concurrent clients, and the time
from an alert's commit to its arrival at 500 connected WebSocket clients.

Against `sales-pipeline serve` (a process of its own, with API_TOKENS set, so every request is
authenticated) over a generated retailer of 1M order lines in a database of its own (`bench_api_serve`,
loaded with COPY by bench_marts.py's loader and kept for the next run), with every mart built. The load
comes from this process, on the same machine over loopback: 50 keep-alive connections on asyncio streams,
each with one request in flight, for --seconds after a warm-up; the 500 sockets are websockets clients.
The server and the client share the machine's cores: the figures are what this machine does with both.

    .venv/bin/python benchmarks/bench_api.py            # 1M order lines, 3 runs of each (about 4 minutes once loaded)
    .venv/bin/python benchmarks/bench_api.py --quick    # 100,000 lines, 100 sockets, 1 run

Targets (2 cores): dashboard at least 1,000 requests/s with p99 under 50 ms, a 304 cheaper still; an
alert on 500 sockets in under 1 s. The last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import bench_marts
import httpx
from common import median_of, own_database
from psycopg2.extras import Json

from sales_pipeline import settings
from sales_pipeline.settings import Settings
from sales_pipeline.warehouse import db

BENCH_DB = "bench_api_serve"
TARGET_RPS, TARGET_P99_MS, TARGET_PUSH_S = 1000, 50, 1.0


def build_marts(url: str, info: dict) -> float:
    """Every mart over the loaded history, as a full refresh makes them (skipped when already built)."""
    from sales_pipeline.analytics import marts

    with db.transaction(url) as cursor:
        cursor.execute("SELECT count(*) FROM marts.dashboard")
        if cursor.fetchone()[0]:
            return 0.0
    started = time.perf_counter()
    first, last, tz = info["first_day"], info["held_day"], info["timezone"]
    with db.transaction(url) as cursor:
        marts.refresh_daily_kpis(cursor, first, last, tz)
    with db.transaction(url) as cursor:
        marts.refresh_sales_trends(cursor, first, last)
    with db.transaction(url) as cursor:
        marts.refresh_stock_health(cursor, tz)
        as_of = marts.last_complete_day(cursor)
        marts.refresh_top_products(cursor, as_of, 100, tz)
        marts.build_dashboard(cursor, as_of, timezone=tz)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(url: str, token: str, workers: int):
    """`sales-pipeline serve` over the bench database: its address while the block runs."""
    port = free_port()
    env = {**os.environ, settings.DATABASE_URL: url, settings.API_TOKENS: f"{token}:write"}
    command = [str(Path(sys.executable).parent / "sales-pipeline"), "serve", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
    # Its access log would cost the server as much as the requests: it goes to /dev/null here.
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{address}/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("sales-pipeline serve did not start")
            time.sleep(0.3)
        yield address
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


async def load(address: str, path: str, headers: dict, clients: int, seconds: float) -> dict:
    """`clients` keep-alive connections, each with one request in flight, for `seconds` after a second of
    warm-up: rate and latencies. A few lines of HTTP/1.1 over asyncio streams: httpx's async pool costs more
    CPU per request than the server does, and the two share the machine."""
    host, port = address.removeprefix("http://").split(":")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    recording = False
    stop_at = time.perf_counter() + 1 + seconds

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (sent := time.perf_counter()) < stop_at:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                await reader.readexactly(length)
                if recording:
                    latencies.append(time.perf_counter() - sent)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(one_client()) for _ in range(clients)]
    await asyncio.sleep(1)  # warm-up: connections opened, caches filled
    recording, started = True, time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "statuses": statuses,
    }


def commit_alert(url: str, key: str) -> float:
    """Open a critical alert in one transaction; the time its commit returned."""
    numbers = {"daily_demand": 3.2, "on_hand": 4, "projected_on_hand": 1, "days_until_stockout": 1.5,
               "lead_time_days": 5, "lead_time_known": True, "on_order": 0, "counted_on": "2026-11-21",
               "sold_since_count": 3}  # fmt: skip
    with db.transaction(url) as cursor:
        cursor.execute(
            "INSERT INTO ops.alerts (dedupe_key, kind, severity, entity_type, entity_id, store_id, detected_on,"
            " message, numbers) VALUES (%s, 'stock_risk', 'critical', 'product_store', 'R00-P0001@R00-S01',"
            " 'R00-S01', current_date, 'P0001 at S01 will run out', %s)",
            (key, Json(numbers)),
        )
    return time.perf_counter()


async def push(address: str, url: str, token: str, sockets: int) -> float:
    """Seconds from an alert's commit to its arrival at the last of `sockets` connected clients."""
    from websockets.asyncio.client import connect

    uri = address.replace("http", "ws") + "/ws/notifications"
    key = f"bench:{uuid.uuid4()}"
    async with contextlib.AsyncExitStack() as stack:
        connections = []
        for batch in range(0, sockets, 50):
            connections += await asyncio.gather(*[
                stack.enter_async_context(connect(uri, additional_headers={"Authorization": f"Bearer {token}"},
                                                  max_queue=None, open_timeout=30))
                for _ in range(batch, min(sockets, batch + 50))
            ])  # fmt: skip
        await asyncio.sleep(1)  # every socket subscribed

        async def arrival(connection) -> float:
            while True:
                message = json.loads(await connection.recv())
                if message.get("type") == "notification" and message["alert"]["status"] == "open":
                    return time.perf_counter()

        waiting = [asyncio.create_task(arrival(c)) for c in connections]
        committed = await asyncio.to_thread(commit_alert, url, key)
        arrived = await asyncio.wait_for(asyncio.gather(*waiting), 30)
    with db.transaction(url) as cursor:
        cursor.execute("DELETE FROM ops.alert_events USING ops.alerts a WHERE a.alert_id = ops.alert_events.alert_id"
                       " AND a.dedupe_key = %s", (key,))  # fmt: skip
        cursor.execute("DELETE FROM ops.alerts WHERE dedupe_key = %s", (key,))
    return max(arrived) - committed


def prepare(lines: int) -> str:
    """The bench database holding `lines` order lines and every mart: loaded and built once, then kept."""
    timezone = Settings.from_environment().pipeline_timezone
    url = own_database(BENCH_DB)
    stamp = bench_marts.fingerprint(lines, 7, 20, timezone)
    info = bench_marts.loaded_info(url, stamp)
    if info is None:
        print(f"loading {lines:,} order lines into {BENCH_DB} (bench_marts.py's loader) ...")
        url = own_database(BENCH_DB, recreate=True)
        loaded = bench_marts.load(url, lines, 7, 20, timezone, stamp)
        print(f"loaded in {loaded['load_s']:.0f} s: {loaded['stores']} stores, {loaded['products']:,} products")
        info = bench_marts.loaded_info(url, stamp)
    built = build_marts(url, info)
    marts_note = f"built in {built:.0f} s" if built else "kept from the last run"
    print(f"{lines:,} order lines to {info['held_day']}; marts {marts_note}")
    return url


def measure(url: str, args: argparse.Namespace, runs: int, seconds: float, sockets: int) -> tuple[dict, list]:
    """Each endpoint's load and the push, `runs` times: the figures of every run."""
    token = secrets.token_urlsafe(24)
    headers = {"Authorization": f"Bearer {token}"}
    figures: dict[str, list[dict]] = {"dashboard": [], "dashboard_304": [], "top_products": []}
    pushes = []
    with serving(url, token, args.workers) as address:
        etag = httpx.get(f"{address}/analytics/dashboard", headers=headers).headers["etag"]
        paths = {
            "dashboard": ("/analytics/dashboard", headers),
            "dashboard_304": ("/analytics/dashboard", {**headers, "If-None-Match": etag}),
            "top_products": ("/analytics/top-products?n=5&period=7d", headers),
        }
        for run in range(runs):
            for name, (path, run_headers) in paths.items():
                result = asyncio.run(load(address, path, run_headers, args.clients, seconds))
                figures[name].append(result)
                print(f"  run {run + 1} {name:<14} {result['rps']:>8,.0f} req/s  p50 {result['p50_ms']:6.1f} ms"
                      f"  p99 {result['p99_ms']:6.1f} ms  {result['statuses']}")  # fmt: skip
            pushes.append(asyncio.run(push(address, url, token, sockets)))
            print(f"  run {run + 1} push to {sockets} sockets: {pushes[-1]:.3f} s")
    return figures, pushes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 lines, 100 sockets, 1 run of 3 s")
    parser.add_argument("--lines", type=int, help="order lines (default 1,000,000)")
    parser.add_argument("--runs", type=int, help="runs of each measurement (default 3)")
    parser.add_argument("--seconds", type=float, help="seconds of load per run (default 10)")
    parser.add_argument("--clients", type=int, default=50, help="requests in flight (default 50)")
    parser.add_argument("--sockets", type=int, help="WebSocket clients (default 500)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of serve (default 1)")
    args = parser.parse_args()
    lines = args.lines or (100_000 if args.quick else 1_000_000)
    runs = args.runs or (1 if args.quick else 3)
    sockets = args.sockets or (100 if args.quick else 500)
    sys.stdout.reconfigure(line_buffering=True)

    url = prepare(lines)
    figures, pushes = measure(url, args, runs, args.seconds or (3 if args.quick else 10), sockets)
    summary = {name: {key: median_of(results, key) for key in ("rps", "p50_ms", "p99_ms")}
               for name, results in figures.items()}  # fmt: skip
    print(f"\nmedians of {runs} run(s), {args.clients} clients, {args.workers} worker(s), {lines:,} order lines")
    print(f"{'endpoint':<16}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, s in summary.items():
        print(f"{name:<16}{s['rps']:>10,.0f}{s['p50_ms']:>9.1f}{s['p99_ms']:>9.1f}")
    push_s = statistics.median(pushes)
    print(f"alert commit -> {sockets} sockets: {push_s:.3f} s (target {TARGET_PUSH_S} s)")
    print(f"targets: dashboard >= {TARGET_RPS} req/s with p99 < {TARGET_P99_MS} ms")
    headline = {"benchmark": "api", "order_lines": lines, "runs": runs, "clients": args.clients,
                "workers": args.workers, "push_clients": sockets, "push_500_clients_s": round(push_s, 3)}  # fmt: skip
    for name, s in summary.items():
        headline |= {f"{name}_rps": round(s["rps"]), f"{name}_p50_ms": round(s["p50_ms"], 1),
                     f"{name}_p99_ms": round(s["p99_ms"], 1)}  # fmt: skip
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
