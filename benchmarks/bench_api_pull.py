"""API pull: 200,000 sales lines from the simulator to committed rows in core.sales, by page size.

Ours: the path of the `api_sales` asset. One transaction runs `start_pull`, then `land_sales` over
`JavaApiClient.pages("sales", window)`: each page is read over loopback HTTP and validated (the next one
in a thread meanwhile) and its body COPYed as it came into a staging table on the server; after the last
page the server cuts the bodies into raw.api_records and typed lines, checks that no key came twice and
merges the lines into core.sales; then the API's lines of the window the pull no longer has go, and
`finish_pull` closes the ledger row. The simulator (the synthetic retailer, seed 7, scale 8 over 730
days) runs in this process; each pull runs in its own process, so peak RSS is that pull's alone, into a
database of its own (`bench_api`, migrated, emptied before every run). Page sizes 200, 500 and 1000 (the
API's maximum) alternate run by run; the figures are medians of --runs runs.

The floor, measured in the same runs: a plain loop of `requests.get` over the same pages at page size
1000, bodies read and dropped (the simulator's own serving time and HTTP). Then memory at scale: one
pull of --large-rows lines (default 1,000,000; scale 40) at page size 1000, whose peak RSS must be the
200k pull's (memory holds one page).

    .venv/bin/python benchmarks/bench_api_pull.py            # 200,000 lines, 3 runs per page size, then 1M once
    .venv/bin/python benchmarks/bench_api_pull.py --quick    # scale 1 over 120 days (all lines), 1 run each, no 1M

The last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time

from common import median_of, own_database, print_outcome, run_worker

from sales_pipeline.warehouse import db

BENCH_DB = "bench_api"
PAGE_SIZES = (200, 500, 1000)
FLOOR_PAGE_SIZE = 1000
TARGET_S, TARGET_RSS_MB = 3.0, 300
TOKEN = "bench-token"


def reset_warehouse(url: str) -> None:
    with db.transaction(url) as cursor:
        cursor.execute(
            "TRUNCATE raw.api_records, ops.api_pulls, ops.api_cursors, core.sales, core.customers, core.stores"
            " RESTART IDENTITY CASCADE"
        )


def window_for(sales_us, rows: int | None) -> tuple[dt.date, dt.date, int]:
    """The UTC days [first, end) from the first line to the day holding line `rows` (or the last line)."""
    import numpy as np

    def day(us: int) -> dt.date:
        return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).date()

    last = len(sales_us) - 1 if rows is None else rows - 1
    if last >= len(sales_us):
        raise SystemExit(f"the simulator serves only {len(sales_us):,} lines; raise the scale")
    first, end = day(sales_us[0]), day(sales_us[last]) + dt.timedelta(days=1)
    end_us = int((dt.datetime.combine(end, dt.time()) - dt.datetime(1970, 1, 1)) / dt.timedelta(microseconds=1))
    return first, end, int(np.searchsorted(sales_us, end_us, side="left"))


def worker(base_url: str, url: str, page_size: int, first: dt.date, end: dt.date) -> None:
    from sales_pipeline.javaapi import load
    from sales_pipeline.javaapi.client import JavaApiClient, PullStats

    instants = (
        dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC),
        dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC),
    )
    started = time.perf_counter()
    stats = PullStats()
    pages = JavaApiClient(base_url, TOKEN, page_size=page_size).pages(
        "sales", {"from": first.isoformat(), "to": end.isoformat()}, stats
    )
    with db.transaction(url) as cursor:
        pull_id = load.start_pull(cursor, "sales", instants, "bench_api_pull")
        result = load.land_sales(cursor, pull_id, pages, instants)
        load.finish_pull(cursor, result, stats, result.counts.span)
    committed = time.perf_counter()
    with db.transaction(url) as cursor:
        cursor.execute("SELECT count(*) FROM core.sales")
        in_core = cursor.fetchone()[0]
    print_outcome({
        "seconds": committed - started, "rows": result.records, "in_core": in_core, "pages": stats.pages,
        "retries": stats.retries,
    })  # fmt: skip


def floor_worker(base_url: str, page_size: int, first: dt.date, end: dt.date) -> None:
    """The same pages read and dropped: what the simulator and HTTP alone take."""
    import requests

    started = time.perf_counter()
    session, page, pages = requests.Session(), 0, 1
    while page < pages:
        response = session.get(
            f"{base_url}/api/v1/sales",
            params={"from": first.isoformat(), "to": end.isoformat(), "page": page, "size": page_size},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        response.raise_for_status()
        pages = int(re.search(rb'"totalPages":(\d+)', response.content)[1])
        page += 1
    print_outcome({"seconds": time.perf_counter() - started, "pages": pages})


def measure(base_url: str, url: str, page_size: int, first: dt.date, end: dt.date) -> dict:
    reset_warehouse(url)
    arguments = ["--worker", str(page_size), "--base-url", base_url, "--url", url,
                 "--window", first.isoformat(), end.isoformat()]  # fmt: skip
    return run_worker(__file__, arguments, f"the pull with page size {page_size}")


def measure_floor(base_url: str, first: dt.date, end: dt.date) -> dict:
    arguments = [
        "--floor",
        str(FLOOR_PAGE_SIZE),
        "--base-url",
        base_url,
        "--window",
        first.isoformat(),
        end.isoformat(),
    ]
    return run_worker(__file__, arguments, "the plain read of the pages")


def run_page_sizes(base_url: str, url: str, first: dt.date, end: dt.date, runs: int) -> tuple[dict, list[dict]]:
    """Every page size and the floor, `runs` times, interleaved so that load on the machine hits them alike."""
    results: dict[int, list[dict]] = {size: [] for size in PAGE_SIZES}
    floors = []
    for run in range(runs):
        floors.append(measure_floor(base_url, first, end))
        print(f"  run {run + 1} floor (plain GETs, page {FLOOR_PAGE_SIZE}) {floors[-1]['seconds']:7.2f} s")
        for size in PAGE_SIZES:
            outcome = measure(base_url, url, size, first, end)
            results[size].append(outcome)
            print(
                f"  run {run + 1} page {size:>5} {outcome['seconds']:7.2f} s  {outcome['pages']:>5} pages"
                f"  peak {outcome['peak_rss_mb']:6.0f} MB  (load average {os.getloadavg()[0]:.1f})"
            )
    return results, floors


def large_pull(url: str, rows: int, seed: int) -> dict:
    """One pull of `rows` lines at page size 1000, from a simulator big enough to serve them."""
    from sales_pipeline.demo.simulator import JavaApiSimulator

    scale = -(-rows * 8 // 200_000) + 2
    with JavaApiSimulator(seed=seed, scale=scale, days=730, token=TOKEN) as simulator:
        first, end, expected = window_for(simulator.data.sales_us, rows)
        outcome = measure(simulator.base_url, url, FLOOR_PAGE_SIZE, first, end)
    assert outcome["rows"] == outcome["in_core"] == expected, (expected, outcome)
    print(
        f"  {expected:,} lines (scale {scale}) at page size {FLOOR_PAGE_SIZE}: {outcome['seconds']:.2f} s,"
        f" peak {outcome['peak_rss_mb']:.0f} MB  (load average {os.getloadavg()[0]:.1f})"
    )
    return outcome | {"rows": expected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scale 1 over 120 days (all lines), one run each")
    parser.add_argument("--rows", type=int, default=None, help="sales lines (default 200,000; --quick: all)")
    parser.add_argument("--runs", type=int, default=None, help="runs per page size (default 3)")
    parser.add_argument("--large-rows", type=int, default=None, help="lines of the memory run (default 1,000,000;"
                        " 0 skips it; --quick: skipped)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--floor", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--window", nargs=2, type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.base_url, args.url, args.worker, *args.window)
        return
    if args.floor:
        floor_worker(args.base_url, args.floor, *args.window)
        return

    from sales_pipeline.demo.simulator import JavaApiSimulator

    sys.stdout.reconfigure(line_buffering=True)  # progress shows when the output goes to a file
    scale, days = (1, 120) if args.quick else (8, 730)
    rows = args.rows or (None if args.quick else 200_000)
    runs = args.runs or (1 if args.quick else 3)
    large_rows = args.large_rows if args.large_rows is not None else (0 if args.quick else 1_000_000)
    url = own_database(BENCH_DB)
    started = time.perf_counter()
    with JavaApiSimulator(seed=args.seed, scale=scale, days=days, token=TOKEN) as simulator:
        first, end, expected = window_for(simulator.data.sales_us, rows)
        print(
            f"simulator: seed {args.seed}, scale {scale}, {days} days, {len(simulator.data.sales_us):,} lines"
            f" (ready in {time.perf_counter() - started:.0f} s)"
        )
        print(f"window: {first} .. {end} (UTC days, end exclusive): {expected:,} lines")
        results, floors = run_page_sizes(simulator.base_url, url, first, end, runs)
    for size, outcomes in results.items():
        bad = [o for o in outcomes if o["rows"] != expected or o["in_core"] != expected or o["retries"]]
        assert not bad, (size, expected, bad)
    large = large_pull(url, large_rows, args.seed) if large_rows else None
    report(results, floors, large, expected, runs)


def report(results: dict[int, list[dict]], floors: list[dict], large: dict | None, rows: int, runs: int) -> None:
    by_size = {}
    for size, outcomes in results.items():
        seconds = median_of(outcomes, "seconds")
        pages = outcomes[0]["pages"]
        by_size[size] = {
            "seconds": round(seconds, 2),
            "pages": pages,
            "rows_per_s": round(rows / seconds),
            "pages_per_s": round(pages / seconds, 1),
            "peak_rss_mb": round(max(o["peak_rss_mb"] for o in outcomes)),
        }
    fastest = min(by_size, key=lambda size: by_size[size]["seconds"])
    floor = median_of(floors, "seconds")
    print()
    print(f"{'page size':>10}{'pages':>8}{'median s':>10}{'rows/s':>10}{'pages/s':>9}{'peak RSS MB':>13}")
    for size, f in by_size.items():
        print(f"{size:>10}{f['pages']:>8,}{f['seconds']:>10.2f}{f['rows_per_s']:>10,}{f['pages_per_s']:>9.1f}"
              f"{f['peak_rss_mb']:>13,}")  # fmt: skip
    best = by_size[fastest]
    print(f"fastest page size: {fastest} ({rows:,} lines, median of {runs} run(s)); the floor (plain GETs at"
          f" page size {FLOOR_PAGE_SIZE}) {floor:.2f} s: {best['seconds'] / floor:.1f}x the floor")  # fmt: skip
    print(
        f"target: under {TARGET_S:g} s at page size 1000: {by_size[1000]['seconds']:.2f} s, "
        f"{'met' if by_size[1000]['seconds'] < TARGET_S else 'NOT met'}; peak RSS under {TARGET_RSS_MB} MB: "
        f"{by_size[1000]['peak_rss_mb']} MB, {'met' if by_size[1000]['peak_rss_mb'] < TARGET_RSS_MB else 'NOT met'}"
    )
    if large:
        print(
            f"memory at {large['rows']:,} lines: peak {large['peak_rss_mb']:.0f} MB against"
            f" {by_size[1000]['peak_rss_mb']} MB at {rows:,} ({large['seconds']:.2f} s)"
        )
    print(json.dumps({
        "benchmark": "api_pull", "rows": rows, "runs": runs, "fastest_page_size": fastest,
        "seconds": best["seconds"], "rows_per_s": best["rows_per_s"], "pages_per_s": best["pages_per_s"],
        "peak_rss_mb": best["peak_rss_mb"], "floor_s": round(floor, 2),
        "large_rows": large["rows"] if large else None,
        "large_seconds": round(large["seconds"], 2) if large else None,
        "large_peak_rss_mb": round(large["peak_rss_mb"]) if large else None,
        "load_average": round(os.getloadavg()[0], 1),
        "by_page_size": {str(size): f for size, f in by_size.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
