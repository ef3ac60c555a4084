"""Workbook import: a generated sales workbook to committed rows in core.sales.

Ours: `import_workbook` (fastexcel and python-calamine, vectorised cleaning and pandera validation, COPY into
staging and one merge per table, ledger, raw rows). Baseline: `pandas.read_excel` with openpyxl and
`DataFrame.to_sql` into the same server. Each run is its own process, so peak RSS is that run's
alone; the figures are medians of --runs runs, and the ratio is measured in the same invocation.
Then one run of ours on a 1,000,000-line workbook gives `peak_rss_1m_mb` (target: under 1 GB) and the
import's stages: seconds and peak RSS of reading, preparing (cleaning, validation), landing the raw
rows and merging each sheet.

    .venv/bin/python benchmarks/bench_import.py            # 200,000 order lines, 3 runs each, then 1M once
    .venv/bin/python benchmarks/bench_import.py --quick    # 20,000 lines, 1 run each, no 1M run
    .venv/bin/python benchmarks/bench_import.py --no-1m    # 200,000 order lines, 3 runs each, no 1M run

The last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
from common import current_rss_mb, median_of, pandas_engine, print_outcome, run_worker

from sales_pipeline.warehouse import db, embedded

BENCH_DIR = Path(".sales_pipeline/bench")
MILLION = 1_000_000
# The importer's stages, as its functions: timed and their peak RSS sampled by the 1M run.
STAGES = ("read_workbook", "prepare_sheets", "_land_raw_rows", "_merge", "_store_rejects", "_write_feedback")


def build_workbook(rows: int, seed: int) -> Path:
    """A template workbook with the products and the first `rows` order lines of a synthetic retailer."""
    from sales_pipeline.demo import retailer as synthetic
    from sales_pipeline.demo.retailer import generate_retailer, write_sheets_workbook
    from sales_pipeline.excel import layout

    # Cached by what makes its bytes: the size, the seed and the generator's and template's code.
    code = hashlib.sha256(Path(synthetic.__file__).read_bytes() + Path(layout.__file__).read_bytes()).hexdigest()
    path = BENCH_DIR / f"sales_{rows}_{seed}_{code[:8]}.xlsx"
    if path.exists():
        return path
    scale = max(1, -(-rows // 25_000))  # about 25k lines per store over two years
    retailer = generate_retailer(scale=scale, seed=seed, days=730)
    if len(retailer.sales) < rows:
        raise SystemExit(f"scale {scale} gave only {len(retailer.sales):,} lines; raise the scale")
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    return write_sheets_workbook(path, {"Products": retailer.products, "Sales": retailer.sales.head(rows)})


def reset_warehouse(url: str) -> None:
    with db.transaction(url) as cursor:
        cursor.execute(
            "TRUNCATE raw.excel_rows, ops.import_rejects, ops.import_ledger, core.sales, core.stock,"
            " core.customers, core.stores, core.products RESTART IDENTITY CASCADE;"
            " DROP SCHEMA IF EXISTS bench_baseline CASCADE; CREATE SCHEMA bench_baseline"
        )


def run_ours(workbook: Path, url: str, stages: bool = False) -> dict:
    from sales_pipeline.excel import importer
    from sales_pipeline.excel.importer import ImportSettings, import_workbook

    timings = time_stages(importer, STAGES) if stages else []
    work = Path(tempfile.mkdtemp(prefix="bench_import_"))
    inbox_copy = work / workbook.name
    shutil.copy(workbook, inbox_copy)
    settings = ImportSettings(work / "archive", work / "rejected", timezone="UTC")
    started = time.perf_counter()
    result = import_workbook(partial(db.transaction, url), inbox_copy, settings)
    seconds = time.perf_counter() - started
    shutil.rmtree(work)
    sales = next(s for s in result.sheets if s.target == "Sales")
    return {"seconds": seconds, "rows": sales.rows_loaded, "status": result.status, "stages": timings}


def time_stages(module: object, names: tuple[str, ...]) -> list[dict]:
    """Wrap the module's functions `names` so that each call appends its seconds and peak RSS (sampled every
    10 ms) to the returned list."""
    timings: list[dict] = []
    peak = [0.0]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], current_rss_mb())
            time.sleep(0.01)

    threading.Thread(target=sample, daemon=True).start()

    def timed(function: Callable) -> Callable:
        @functools.wraps(function)
        def call(*args: object, **kwargs: object) -> object:
            peak[0] = current_rss_mb()
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                timings.append({"stage": function.__name__, "seconds": round(time.perf_counter() - started, 2),
                                "peak_rss_mb": round(max(peak[0], current_rss_mb()))})  # fmt: skip

        return call

    for name in names:
        setattr(module, name, timed(getattr(module, name)))
    return timings


def run_baseline(workbook: Path, url: str) -> dict:
    started = time.perf_counter()
    sheets = pd.read_excel(workbook, sheet_name=None, engine="openpyxl")
    engine = pandas_engine(url)
    for name, frame in sheets.items():
        frame.to_sql(name.lower(), engine, schema="bench_baseline", if_exists="replace", index=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(sheets["Sales"]), "status": "loaded"}


def worker(kind: str, workbook: Path, url: str) -> None:
    print_outcome(run_ours(workbook, url, stages=True) if kind == "ours" else run_baseline(workbook, url))


def measure(kind: str, workbook: Path, url: str) -> dict:
    reset_warehouse(url)
    return run_worker(__file__, ["--worker", kind, "--file", str(workbook), "--url", url], f"the {kind} run")


def stage_medians(outcomes: list[dict]) -> dict[str, float]:
    """Each stage's seconds summed over its calls in a run (one merge per sheet), median over the runs."""
    per_run = []
    for outcome in outcomes:
        totals: dict[str, float] = {}
        for stage in outcome["stages"]:
            totals[stage["stage"]] = totals.get(stage["stage"], 0.0) + stage["seconds"]
        per_run.append(totals)
    return {name: statistics.median(run.get(name, 0.0) for run in per_run) for name in per_run[0]}


def print_stages(outcomes: list[dict]) -> None:
    print("stages of ours (median s over the runs; the rest is the ledger, locks and moving the file):")
    for name, seconds in stage_medians(outcomes).items():
        print(f"    {name:<16}{seconds:>8.2f} s")


def measure_million(url: str, seed: int) -> dict:
    """One run of ours on 1,000,000 lines, with its stages; prints them."""
    workbook = build_workbook(MILLION, seed)
    print(f"\n1M workbook: {workbook} ({workbook.stat().st_size / 1e6:.1f} MB)")
    outcome = measure("ours", workbook, url)
    assert outcome["rows"] == MILLION, outcome
    print(f"  {MILLION:,} lines: {outcome['seconds']:.1f} s, peak RSS {outcome['peak_rss_mb']:.0f} MB")
    for stage in outcome["stages"]:
        print(f"    {stage['stage']:<16}{stage['seconds']:>8.2f} s   peak {stage['peak_rss_mb']:>6} MB")
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 lines, one run each")
    parser.add_argument("--rows", type=int, default=None, help="order lines (default 200,000)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-1m", action="store_true", help="skip the 1,000,000-line run")
    parser.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.file, args.url)
        return

    rows = args.rows or (20_000 if args.quick else 200_000)
    runs = args.runs or (1 if args.quick else 3)
    url = embedded.warehouse_url()
    with db.transaction(url) as cursor:
        db.migrate(cursor)
    workbook = build_workbook(rows, args.seed)
    print(f"workbook: {workbook} ({workbook.stat().st_size / 1e6:.1f} MB, {rows:,} order lines + products)")
    results: dict[str, list[dict]] = {"ours": [], "baseline": []}
    for run in range(runs):
        for kind in ("ours", "baseline"):  # interleaved, so load on the machine hits both alike
            outcome = measure(kind, workbook, url)
            results[kind].append(outcome)
            print(f"  run {run + 1} {kind:<8} {outcome['seconds']:7.2f} s  peak {outcome['peak_rss_mb']:6.0f} MB")
    ours = median_of(results["ours"], "seconds")
    baseline = median_of(results["baseline"], "seconds")
    peak = max(r["peak_rss_mb"] for r in results["ours"])
    assert all(r["rows"] == rows for r in results["ours"]), results["ours"]
    print()
    print(f"{'':<10}{'median s':>10}{'rows/s':>12}{'peak RSS MB':>14}")
    for kind, seconds in (("ours", ours), ("baseline", baseline)):
        kind_peak = max(r["peak_rss_mb"] for r in results[kind])
        print(f"{kind:<10}{seconds:>10.2f}{rows / seconds:>12,.0f}{kind_peak:>14,.0f}")
    print(f"ratio (baseline / ours): {baseline / ours:.1f}x")
    print_stages(results["ours"])
    million = None if args.quick or args.no_1m else measure_million(url, args.seed)
    print(json.dumps({
        "benchmark": "import", "rows": rows, "runs": runs, "ours_s": round(ours, 2),
        "baseline_s": round(baseline, 2), "ratio": round(baseline / ours, 1), "peak_rss_mb": round(peak),
        "peak_rss_1m_mb": round(million["peak_rss_mb"]) if million else None,
        "seconds_1m": round(million["seconds"], 1) if million else None,
        "stages_s": {name: round(seconds, 2) for name, seconds in stage_medians(results["ours"]).items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
