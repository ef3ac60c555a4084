"""API pull: 200,000 sales lines from the simulator to committed rows in core.sales, by page size.

Ours: the path of the `api_sales` asset. `JavaApiClient.fetch_all("sales", window)` reads and validates
every page over loopback HTTP, then one transaction runs `start_pull`, `land_records` (COPY into
raw.api_records), `merge_sales` and `finish_pull`. The simulator (the synthetic retailer, seed 7,
scale 8 over 730 days) runs in this process; each pull runs in its own process, so peak RSS is that
pull's alone, into a database of its own (`bench_api`, migrated, emptied before every run). Page sizes
200, 500 and 1000 (the API's maximum) alternate run by run; the figures are medians of --runs runs.
There is no baseline: the comparison is between page sizes.

    .venv/bin/python benchmarks/bench_api_pull.py            # 200,000 lines, 3 runs per page size
    .venv/bin/python benchmarks/bench_api_pull.py --quick    # scale 1 over 120 days (all lines), 1 run each

The last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

from common import median_of, own_database, print_outcome, run_worker

from sales_pipeline.warehouse import db

BENCH_DB = "bench_api"
PAGE_SIZES = (200, 500, 1000)
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
    from sales_pipeline.javaapi.client import JavaApiClient

    instants = (
        dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC),
        dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC),
    )
    started = time.perf_counter()
    records, stats = JavaApiClient(base_url, TOKEN, page_size=page_size).fetch_all(
        "sales", {"from": first.isoformat(), "to": end.isoformat()}
    )
    fetched = time.perf_counter()
    with db.transaction(url) as cursor:
        pull_id = load.start_pull(cursor, "sales", instants, "bench_api_pull")
        load.land_records(cursor, pull_id, "sales", records)
        counts, removed = load.merge_sales(cursor, records, instants)
        result = load.PullResult(pull_id, "sales", len(records), counts, removed)
        load.finish_pull(cursor, result, stats, counts.span if counts.span and counts.span[0] else None)
    committed = time.perf_counter()
    with db.transaction(url) as cursor:
        cursor.execute("SELECT count(*) FROM core.sales")
        in_core = cursor.fetchone()[0]
    print_outcome({
        "seconds": committed - started, "fetch_s": fetched - started, "commit_s": committed - fetched,
        "rows": len(records), "in_core": in_core, "pages": stats.pages, "retries": stats.retries,
    })  # fmt: skip


def measure(base_url: str, url: str, page_size: int, first: dt.date, end: dt.date) -> dict:
    reset_warehouse(url)
    arguments = ["--worker", str(page_size), "--base-url", base_url, "--url", url,
                 "--window", first.isoformat(), end.isoformat()]  # fmt: skip
    return run_worker(__file__, arguments, f"the pull with page size {page_size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scale 1 over 120 days (all lines), one run each")
    parser.add_argument("--rows", type=int, default=None, help="sales lines (default 200,000; --quick: all)")
    parser.add_argument("--runs", type=int, default=None, help="runs per page size (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--window", nargs=2, type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.base_url, args.url, args.worker, *args.window)
        return

    from sales_pipeline.demo.simulator import JavaApiSimulator

    scale, days = (1, 120) if args.quick else (8, 730)
    rows = args.rows or (None if args.quick else 200_000)
    runs = args.runs or (1 if args.quick else 3)
    url = own_database(BENCH_DB)
    started = time.perf_counter()
    simulator = JavaApiSimulator(seed=args.seed, scale=scale, days=days, token=TOKEN)
    base_url = simulator.start()
    try:
        first, end, expected = window_for(simulator.data.sales_us, rows)
        print(
            f"simulator: seed {args.seed}, scale {scale}, {days} days, {len(simulator.data.sales_us):,} lines"
            f" (ready in {time.perf_counter() - started:.0f} s)"
        )
        print(f"window: {first} .. {end} (UTC days, end exclusive): {expected:,} lines")
        results: dict[int, list[dict]] = {size: [] for size in PAGE_SIZES}
        for run in range(runs):
            for size in PAGE_SIZES:  # interleaved, so load on the machine hits every page size alike
                outcome = measure(base_url, url, size, first, end)
                results[size].append(outcome)
                print(
                    f"  run {run + 1} page {size:>5} {outcome['seconds']:7.2f} s (fetch {outcome['fetch_s']:.2f},"
                    f" commit {outcome['commit_s']:.2f})  {outcome['pages']:>5} pages"
                    f"  peak {outcome['peak_rss_mb']:6.0f} MB"
                )
    finally:
        simulator.stop()
    for size, outcomes in results.items():
        bad = [o for o in outcomes if o["rows"] != expected or o["in_core"] != expected or o["retries"]]
        assert not bad, (size, expected, bad)

    by_size = {}
    for size, outcomes in results.items():
        seconds = median_of(outcomes, "seconds")
        pages = outcomes[0]["pages"]
        by_size[size] = {
            "seconds": round(seconds, 2),
            "fetch_s": round(median_of(outcomes, "fetch_s"), 2),
            "commit_s": round(median_of(outcomes, "commit_s"), 2),
            "pages": pages,
            "rows_per_s": round(expected / seconds),
            "pages_per_s": round(pages / seconds, 1),
            "peak_rss_mb": round(max(o["peak_rss_mb"] for o in outcomes)),
        }
    fastest = min(by_size, key=lambda size: by_size[size]["seconds"])
    print()
    print(f"{'page size':>10}{'pages':>8}{'median s':>10}{'fetch s':>9}{'commit s':>10}{'rows/s':>10}"
          f"{'pages/s':>9}{'peak RSS MB':>13}")  # fmt: skip
    for size, f in by_size.items():
        print(f"{size:>10}{f['pages']:>8,}{f['seconds']:>10.2f}{f['fetch_s']:>9.2f}{f['commit_s']:>10.2f}"
              f"{f['rows_per_s']:>10,}{f['pages_per_s']:>9.1f}{f['peak_rss_mb']:>13,}")  # fmt: skip
    print(f"fastest page size: {fastest} ({expected:,} lines, median of {runs} run(s))")
    best = by_size[fastest]
    print(json.dumps({
        "benchmark": "api_pull", "rows": expected, "runs": runs, "fastest_page_size": fastest,
        "seconds": best["seconds"], "rows_per_s": best["rows_per_s"], "pages_per_s": best["pages_per_s"],
        "peak_rss_mb": best["peak_rss_mb"], "by_page_size": {str(size): f for size, f in by_size.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
