"""The whole daily materialization, from an empty warehouse, through the product's own Dagster runs.

Data (untimed, cached under .sales_pipeline/bench/pipeline/): a generated retailer (seed 42, 730 days)
of about --lines order lines (100k: 4 stores, 1M: 38, 5M: 190), written as the monthly import workbooks
(the weekly stock counts that fit one sheet: every one at 100k, the last 34 weeks at 1M), and served
by the Java API simulator, live (the retailer trades on after its last day).

Timed, in a process of its own per size (its PostgreSQL server of its own, SALES_PIPELINE_HOME under
.sales_pipeline/bench/pipeline/home), each step the Dagster run(s) `sales-pipeline demo` makes, in
the daemon's order: imports (the inbox sensor's tick and one import run per workbook), pulls (products
and stock from the API), core tables, the marts (daily KPIs of every day, then trends, stock health, top
products, dashboard), forecasts and anomalies (split by asset group from the run's step events), the
reports of the last day and the export, the alerts' delivery. Then one new day through the daily
cycle: the nightly pull of the day after the history from the live simulator, the same refreshes,
reports and delivery. Peak memory: this process and its children (the forecast workers), and the
PostgreSQL server's processes (the peak of their summed proportional set size, shared buffers counted
once).

The baseline (100k and 1M): the same steps the plain way, in one pandas script: read_excel (openpyxl)
every workbook, to_sql the sheets, groupby daily KPIs (chain, store, category, product), a default
Prophet fit + predict loop over the chain, store and category revenue series.

Targets: 1M lines end to end under 5 min; one new day under 60 s at 1M, under 2 min at 5M; peak
memory under 4 GB.

    .venv/bin/python benchmarks/bench_pipeline.py                  # 1M (and 100k); --lines 5000000 for 5M
    .venv/bin/python benchmarks/bench_pipeline.py --quick          # 100k lines, with its baseline

The last line on stdout is one JSON object: e2e_1m_s, new_day_1m_s, new_day_5m_s, peak_rss_mb,
baseline_1m_s (null for a size not run), and the same figures per size measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from common import own_database, peak_rss_mb, print_outcome, run_worker

SEED, DAYS = 42, 730
LINES_PER_STORE = 26_300  # a store's lines over 730 days in the generator's demand model
BENCH = Path(".sales_pipeline/bench/pipeline")
BENCH_DB = "bench_pipeline"
TOKEN = "bench-token"
TARGETS = {"e2e_1m_s": 300.0, "new_day_1m_s": 60.0, "new_day_5m_s": 120.0, "peak_memory_mb": 4096.0}


def scale_for(lines: int) -> int:
    return max(1, round(lines / LINES_PER_STORE))


def workbooks(scale: int) -> list[Path]:
    """The retailer's monthly workbooks, written once per scale."""
    from sales_pipeline.demo.retailer import generate_retailer, write_workbooks

    folder = BENCH / f"workbooks_s{scale}"
    done = folder / "done"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        retailer = generate_retailer(scale=scale, seed=SEED, days=DAYS)
        write_workbooks(replace(retailer, stock=counts_that_fit(retailer.stock)), folder, split="monthly")
        done.touch()
    return sorted(folder.glob("*.xlsx"))


def counts_that_fit(stock: pd.DataFrame) -> pd.DataFrame:
    """The weekly stock counts, the latest ones only when all of them would not fit one sheet (1M lines: 3.2M)."""
    from sales_pipeline.demo.retailer import EXCEL_MAX_ROWS

    days = sorted(stock["as_of"].unique(), reverse=True)
    per_count = len(stock) // len(days)
    keep = days[: (EXCEL_MAX_ROWS - 1) // per_count]
    return stock[stock["as_of"].isin(keep)].reset_index(drop=True)


class PostgresMemory:
    """Samples the summed proportional set size of the server's processes (postmaster and its children)."""

    def __init__(self, pgdata: Path) -> None:
        self.postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self) -> list[int]:
        pids = [self.postmaster]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == self.postmaster:
                        pids.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    continue
        return pids

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            total_kb = 0
            for pid in self._pids():
                try:
                    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total_kb += int(line.split()[1])
                except OSError:
                    continue
            self.peak_mb = max(self.peak_mb, total_kb / 1024)

    def __enter__(self) -> PostgresMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def step_seconds(run_id: str) -> dict[str, float]:
    """Seconds per asset group (the step key's prefix) of one run, from its step start and success events."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    started: dict[str, float] = {}
    out: dict[str, float] = {}
    for kind in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS):
        for record in instance.get_records_for_run(run_id, of_type=kind).records:
            entry = record.event_log_entry
            if kind == dg.DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
            elif entry.step_key in started:
                group = entry.step_key.split("__")[0]
                out[group] = out.get(group, 0.0) + entry.timestamp - started[entry.step_key]
    return out


def progress(line: str) -> None:
    """A step's time as soon as it is known (stderr): a run cut short still tells how far it got."""
    print(f"[{datetime.now():%H:%M:%S}] {line}", file=sys.stderr, flush=True)


def worker_e2e(lines: int) -> dict[str, Any]:
    """Everything from an empty warehouse, then one new day; in this process (its own PostgreSQL)."""
    from sales_pipeline import cli, settings
    from sales_pipeline.defs.analytics.sensors import range_tags
    from sales_pipeline.demo.retailer import DEFAULT_END, generate_retailer
    from sales_pipeline.demo.simulator import JavaApiSimulator
    from sales_pipeline.warehouse import embedded

    scale = scale_for(lines)
    books = workbooks(scale)
    retailer = generate_retailer(scale=scale, seed=SEED, days=DAYS)
    progress(f"{len(retailer.sales):,} lines, {scale} stores, {len(books)} workbooks; serving them")
    new_day = DEFAULT_END + timedelta(days=1)
    clock = datetime.combine(new_day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=6)
    simulator = JavaApiSimulator(seed=SEED, scale=scale, days=DAYS, token=TOKEN, retailer=retailer, live=True,
                                 clock=lambda: clock)  # fmt: skip
    os.environ[settings.JAVA_API_BASE_URL], os.environ[settings.JAVA_API_TOKEN] = simulator.start(), TOKEN
    os.environ[settings.DATABASE_URL] = own_database(BENCH_DB, recreate=True)
    cli.prepare_environment()
    config = cli.load_settings()
    for folder in (config.inbox_dir, config.archive_dir, config.rejected_dir, config.reports_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    timings: dict[str, float] = {}

    @contextmanager
    def timed(name: str):
        started = time.perf_counter()
        yield
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - started, 2)
        progress(f"{name}: {timings[name]} s")

    def forecasts_and_anomalies(prefix: str) -> None:
        started = time.perf_counter()
        result = cli.run_job("refresh_forecasts_and_anomalies")
        for group, seconds in step_seconds(result.run_id).items():
            timings[f"{prefix}{group}"] = round(seconds, 2)
        timings[f"{prefix}forecasts_and_anomalies_run"] = round(time.perf_counter() - started, 2)
        progress(f"{prefix}forecasts and anomalies: {timings[f'{prefix}forecasts_and_anomalies_run']} s")

    with PostgresMemory(embedded.pgdata_dir()) as postgres:
        started = time.perf_counter()
        with timed("imports"):
            for book in books:
                shutil.copy2(book, config.inbox_dir / book.name)
            cli.run_inbox_once()
        with timed("pulls"):
            cli.run_job("pull_products_and_stock")
        with timed("core"):
            cli.refresh_core_tables()
        with timed("marts"):
            cli.refresh_marts()
        forecasts_and_anomalies("")
        with timed("reports"):
            cli.build_reports_and_export()
        with timed("alerts"):
            cli.deliver_notifications()
        e2e = time.perf_counter() - started

        started = time.perf_counter()
        with timed("new_day_pull"):
            cli.run_job("pull_products_and_stock")
            cli.run_job("pull_sales", tags=range_tags(new_day, new_day))
        with timed("new_day_core_and_marts"):
            cli.refresh_core_tables()
            cli.refresh_marts()
        forecasts_and_anomalies("new_day_")
        with timed("new_day_reports_and_alerts"):
            cli.build_reports_and_export()
            cli.deliver_notifications()
        new_day_s = time.perf_counter() - started
    simulator.stop()
    import resource

    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "lines": len(retailer.sales),
        "stores": scale,
        "workbooks": len(books),
        "e2e_s": round(e2e, 1),
        "new_day_s": round(new_day_s, 1),
        "steps_s": timings,
        "process_peak_mb": round(peak_rss_mb()),
        "forecast_worker_peak_mb": round(children_mb),
        "postgres_peak_mb": round(postgres.peak_mb),
    }


def worker_baseline(lines: int) -> dict[str, Any]:
    """The plain pandas script: read_excel, to_sql, groupby KPIs, a Prophet loop."""
    import logging

    from common import pandas_engine
    from prophet import Prophet

    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    books = workbooks(scale_for(lines))
    engine = pandas_engine(own_database(BENCH_DB + "_baseline", recreate=True))
    started = time.perf_counter()
    sheets: dict[str, list[pd.DataFrame]] = {}
    for book in books:
        for name, frame in pd.read_excel(book, sheet_name=None, engine="openpyxl").items():
            sheets.setdefault(name, []).append(frame)
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in sheets.items()}
    for name, frame in tables.items():
        frame.to_sql(name.lower(), engine, schema="public", if_exists="replace", index=False, chunksize=10_000)
    sales = tables["Sales"].merge(tables["Products"][["Product ID", "Category"]], on="Product ID")
    sales["day"] = pd.to_datetime(sales["Sold At"]).dt.normalize()
    kpis = {
        "all": sales.groupby("day")["Line Total"].sum().to_frame("revenue").assign(scope_id=""),
        **{
            scope: sales.groupby(["day", column])["Line Total"].sum().reset_index(column)
            .rename(columns={column: "scope_id", "Line Total": "revenue"})
            for scope, column in (("store", "Store ID"), ("category", "Category"), ("product", "Product ID"))
        },
    }  # fmt: skip
    for scope, frame in kpis.items():
        frame.reset_index().to_sql(f"kpis_{scope}", engine, if_exists="replace", index=False, chunksize=10_000)
    fits = 0
    for scope in ("all", "store", "category"):
        for _, series in kpis[scope].groupby("scope_id"):
            model = Prophet().fit(series.reset_index().rename(columns={"day": "ds", "revenue": "y"})[["ds", "y"]])
            model.predict(model.make_future_dataframe(7))
            fits += 1
    return {"baseline_s": round(time.perf_counter() - started, 1), "prophet_fits": fits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 lines only, with its baseline")
    parser.add_argument("--lines", type=int, action="append", help="sizes to run (default 100k and 1M)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--worker", choices=("e2e", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        os.environ["SALES_PIPELINE_HOME"] = str((BENCH / "home").resolve())
        work = worker_e2e if args.worker == "e2e" else worker_baseline
        return print_outcome(work(args.lines[0]))
    sizes = [100_000] if args.quick else (args.lines or [100_000, 1_000_000])
    results: dict[int, dict[str, Any]] = {}
    for lines in sizes:
        outcome = run_worker(__file__, ["--worker", "e2e", "--lines", str(lines)], f"the pipeline at {lines:,} lines",
                             show_stderr=True)  # fmt: skip
        if lines <= 1_000_000 and not args.no_baseline:
            baseline = run_worker(__file__, ["--worker", "baseline", "--lines", str(lines)], "the baseline")
            outcome |= {"baseline_s": baseline["baseline_s"], "baseline_peak_rss_mb": round(baseline["peak_rss_mb"])}
        outcome["peak_memory_mb"] = round(
            max(outcome["peak_rss_mb"], outcome["forecast_worker_peak_mb"]) + outcome["postgres_peak_mb"]
        )
        results[lines] = outcome
        report(lines, outcome)
    million, five = results.get(1_000_000, {}), results.get(5_000_000, {})
    print(json.dumps({
        "benchmark": "pipeline",
        "e2e_1m_s": million.get("e2e_s"),
        "new_day_1m_s": million.get("new_day_s"),
        "new_day_5m_s": five.get("new_day_s"),
        "peak_rss_mb": max(o["peak_memory_mb"] for o in results.values()),
        "baseline_1m_s": million.get("baseline_s"),
        "sizes": {str(k): v for k, v in results.items()},
    }))  # fmt: skip


def report(lines: int, outcome: dict[str, Any]) -> None:
    """The human table of one size."""
    print(f"\n{outcome['lines']:,} order lines ({outcome['stores']} stores, {outcome['workbooks']} workbooks)")
    for step, seconds in outcome["steps_s"].items():
        print(f"  {step:<40} {seconds:>8.1f} s")
    print(f"  {'end to end (empty warehouse)':<40} {outcome['e2e_s']:>8.1f} s")
    print(f"  {'one new day (nightly pull onwards)':<40} {outcome['new_day_s']:>8.1f} s")
    if "baseline_s" in outcome:
        ratio = outcome["baseline_s"] / outcome["e2e_s"]
        print(f"  {'baseline (pandas script)':<40} {outcome['baseline_s']:>8.1f} s  (ours {ratio:.2f}x)")
    print(f"  peak memory: process {outcome['peak_rss_mb']:.0f} MB, forecast workers "
          f"{outcome['forecast_worker_peak_mb']} MB, PostgreSQL {outcome['postgres_peak_mb']} MB (PSS); "
          f"together at most {outcome['peak_memory_mb']} MB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
