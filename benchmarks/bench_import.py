"""Workbook import: a generated sales workbook to committed rows in core.sales.

Ours: `import_workbook` (python-calamine, vectorised cleaning and pandera validation, COPY into
staging and one merge per table, ledger, raw rows). Baseline: `pandas.read_excel` with openpyxl and
`DataFrame.to_sql` into the same server. Each run is its own process, so peak RSS is that run's
alone; the figures are medians of --runs runs, and the ratio is measured in the same invocation.

    .venv/bin/python benchmarks/bench_import.py            # 200,000 order lines, 3 runs each
    .venv/bin/python benchmarks/bench_import.py --quick    # 20,000 lines, 1 run each

The last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import pandas as pd
from common import median_of, pandas_engine, print_outcome, run_worker

from sales_pipeline.warehouse import db, embedded

BENCH_DIR = Path(".sales_pipeline/bench")


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


def run_ours(workbook: Path, url: str) -> dict:
    from sales_pipeline.excel.importer import ImportSettings, import_workbook

    work = Path(tempfile.mkdtemp(prefix="bench_import_"))
    inbox_copy = work / workbook.name
    shutil.copy(workbook, inbox_copy)
    settings = ImportSettings(work / "archive", work / "rejected", timezone="UTC")
    started = time.perf_counter()
    result = import_workbook(partial(db.transaction, url), inbox_copy, settings)
    seconds = time.perf_counter() - started
    shutil.rmtree(work)
    sales = next(s for s in result.sheets if s.target == "Sales")
    return {"seconds": seconds, "rows": sales.rows_loaded, "status": result.status}


def run_baseline(workbook: Path, url: str) -> dict:
    started = time.perf_counter()
    sheets = pd.read_excel(workbook, sheet_name=None, engine="openpyxl")
    engine = pandas_engine(url)
    for name, frame in sheets.items():
        frame.to_sql(name.lower(), engine, schema="bench_baseline", if_exists="replace", index=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(sheets["Sales"]), "status": "loaded"}


def worker(kind: str, workbook: Path, url: str) -> None:
    print_outcome((run_ours if kind == "ours" else run_baseline)(workbook, url))


def measure(kind: str, workbook: Path, url: str) -> dict:
    reset_warehouse(url)
    return run_worker(__file__, ["--worker", kind, "--file", str(workbook), "--url", url], f"the {kind} run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 lines, one run each")
    parser.add_argument("--rows", type=int, default=None, help="order lines (default 200,000)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each (default 3)")
    parser.add_argument("--seed", type=int, default=7)
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
    print(json.dumps({
        "benchmark": "import", "rows": rows, "runs": runs, "ours_s": round(ours, 2),
        "baseline_s": round(baseline, 2), "ratio": round(baseline / ours, 1), "peak_rss_mb": round(peak),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
