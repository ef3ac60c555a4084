"""The daily reports and the analytics export at 1M order lines.

Data (untimed, kept in a database of its own, `bench_report`, for the next invocation): the generated
retailer of bench_marts.py (its loader, chunked, COPYed into the core tables), the marts built over
every day, forecasts and stock risks. The forecasts are written straight into ml.forecasts as seasonal
naive (the same weekday a week before, +-20%/30% bands) for the chain, each store and category, from
the last day and from a week before it, and the demand as each product and store's 28-day mean: how
they were made does not change what a report reads. Stock risks come from the production
`refresh_stock_risks` on that demand.

Timed, each run in its own process (peak RSS its own), --runs times, medians:

- the chain report of the last day (`build_report`, scope all), then the first store's, in one process
  as the daily_report asset builds them (so the chain's includes loading fonts and matplotlib): seconds
  in all and per section (data: reading the warehouse);
- the analytics export (90 days).

Targets: chain report under 5 s, a store's under 2 s, each PDF under 2 MB, the export under 10 s.

    .venv/bin/python benchmarks/bench_report.py            # 1M order lines, 3 runs each
    .venv/bin/python benchmarks/bench_report.py --quick    # 100,000 lines, 1 run each

The last line on stdout is one JSON object: chain_report_s, store_report_s, export_s, pdf_mb (the
larger of the two PDFs) and peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

from common import median_of, own_database, print_outcome, run_worker

from sales_pipeline.warehouse import db

BENCH_DB = "bench_report"
SETUP_VERSION = "1"
TIMEZONE = "UTC"
TARGETS = {"chain_report_s": 5.0, "store_report_s": 2.0, "export_s": 10.0, "pdf_mb": 2.0}

_FORECASTS = """
INSERT INTO ml.forecasts (target, scope, scope_id, origin, day, model, yhat, yhat_lower_80, yhat_upper_80,
                          yhat_lower_95, yhat_upper_95)
SELECT 'sales', k.scope, k.scope_id, o.origin, k.day + 7, 'seasonal_naive', k.revenue, k.revenue * 0.8,
       k.revenue * 1.2, k.revenue * 0.7, k.revenue * 1.3
FROM marts.daily_kpis AS k
CROSS JOIN (VALUES (%(last)s::date), (%(last)s::date - 7)) AS o (origin)
WHERE k.scope IN ('all', 'store', 'category') AND k.day BETWEEN o.origin - 6 AND o.origin
ON CONFLICT DO NOTHING;
INSERT INTO ml.forecasts (target, scope, scope_id, origin, day, model, yhat, yhat_lower_80, yhat_upper_80,
                          yhat_lower_95, yhat_upper_95)
SELECT 'demand', 'product_store', s.product_id || '@' || s.store_id, %(last)s, %(last)s::date + n, 'recent_mean',
       sum(s.quantity) / 28.0, 0, sum(s.quantity) / 14.0, 0, sum(s.quantity) / 10.0
FROM core.sales AS s CROSS JOIN generate_series(1, 7) AS n
WHERE s.sale_date BETWEEN %(last)s::date - 27 AND %(last)s
GROUP BY s.product_id, s.store_id, n
"""


def setup(url: str, info: dict) -> dict:
    """The marts over every day, the forecasts and the stock risks (untimed)."""
    from sales_pipeline.analytics import marts
    from sales_pipeline.anomalies.stock_risk import refresh_stock_risks

    started = time.perf_counter()
    first, last = date.fromisoformat(info["first_day"]), date.fromisoformat(info["last_day"])
    with db.transaction(url) as cursor:
        marts.refresh_daily_kpis(cursor, first, last, TIMEZONE)
        marts.refresh_sales_trends(cursor, first, last)
        marts.refresh_stock_health(cursor, TIMEZONE)
        marts.refresh_top_products(cursor, last, 5, TIMEZONE)
        cursor.execute("DELETE FROM ml.forecasts")
        cursor.execute(_FORECASTS, {"last": last})
        cursor.execute("ANALYZE ml.forecasts")  # the planner must see the rows just written
        _, risks = refresh_stock_risks(cursor, last)
        cursor.execute("CREATE TABLE IF NOT EXISTS bench.report_setup (stamp text)")
        cursor.execute("DELETE FROM bench.report_setup")
        cursor.execute("INSERT INTO bench.report_setup VALUES (%s)", (info["stamp"],))
    return {"setup_s": time.perf_counter() - started, "stock_risks": len(risks)}


def run_reports(url: str, info: dict, store: str) -> dict:
    """The chain's report, then a store's, in one process, as the daily_report asset builds them (the first
    pays for loading fonts and matplotlib)."""
    from sales_pipeline.i18n import Formatter
    from sales_pipeline.reporting.build import build_report
    from sales_pipeline.reporting.data import Scope

    outcome = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, scope_text in (("chain", "all"), ("store", store)):
            with db.transaction(url) as cursor:
                started = time.perf_counter()
                report, rendered = build_report(cursor, date.fromisoformat(info["last_day"]), Scope.parse(scope_text),
                                                Formatter("en", "EUR"), TIMEZONE, Path(folder))  # fmt: skip
                seconds = time.perf_counter() - started
            sections = {"data": seconds - sum(rendered.section_seconds.values()), **rendered.section_seconds}
            outcome[label] = {"seconds": seconds, "pages": report.pages, "pdf_mb": report.bytes / 1e6,
                              "sections": sections}  # fmt: skip
    return outcome


def run_export(url: str, info: dict) -> dict:
    from sales_pipeline.reporting.export import build_export

    with tempfile.TemporaryDirectory() as folder, db.transaction(url) as cursor:
        started = time.perf_counter()
        rows = build_export(cursor, Path(folder) / "export.xlsx", date.fromisoformat(info["last_day"]))
        seconds = time.perf_counter() - started
        size = (Path(folder) / "export.xlsx").stat().st_size
    return {"seconds": seconds, "rows": sum(rows.values()), "xlsx_mb": size / 1e6}


def worker(kind: str, url: str, info: dict) -> None:
    if kind == "setup":
        outcome = setup(url, info)
    elif kind == "export":
        outcome = run_export(url, info)
    else:
        outcome = run_reports(url, info, kind)
    print_outcome(outcome)


def measure(kind: str, url: str, info: dict) -> dict:
    return run_worker(__file__, ["--worker", kind, "--url", url, "--info", json.dumps(info)], f"the {kind} run")


def prepare(rows: int, seed: int, chunk_scale: int) -> tuple[str, dict]:
    """The loaded, set-up database (reused when it holds the same data); its URL and what it holds."""
    import bench_marts

    url = own_database(BENCH_DB)
    stamp = bench_marts.fingerprint(rows, seed, chunk_scale, TIMEZONE) + f" report=v{SETUP_VERSION}"
    loaded = bench_marts.loaded_info(url, stamp)
    if loaded is None:
        print(f"loading {rows:,} order lines into {BENCH_DB} (bench_marts' loader) ...", flush=True)
        url = own_database(BENCH_DB, recreate=True)
        spec = {"rows": rows, "seed": seed, "chunk_scale": chunk_scale, "timezone": TIMEZONE, "fingerprint": stamp}
        run_worker(bench_marts.__file__, ["--worker", "load", "--url", url, "--info", json.dumps(spec)], "the load",
                   show_stderr=True)  # fmt: skip
        loaded = bench_marts.loaded_info(url, stamp)
    last_day = date.fromordinal(loaded["held_day"].toordinal() - 1)
    info = {"first_day": str(loaded["first_day"]), "last_day": str(last_day), "stamp": stamp}
    with db.transaction(url) as cursor:
        cursor.execute("SELECT to_regclass('bench.report_setup') IS NOT NULL")
        ready = cursor.fetchone()[0]
        if ready:
            cursor.execute("SELECT count(*) FROM bench.report_setup WHERE stamp = %s", (stamp,))
            ready = cursor.fetchone()[0] == 1
    if not ready:
        print("building the marts, forecasts and stock risks (untimed) ...", flush=True)
        done = measure("setup", url, info)
        print(f"  set up in {done['setup_s']:.0f} s; {done['stock_risks']} stock risks")
    return url, info


def first_store(url: str) -> str:
    with db.transaction(url) as cursor:
        cursor.execute("SELECT min(store_id) FROM core.stores")
        return f"store:{cursor.fetchone()[0]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 lines, 1 run each")
    parser.add_argument("--rows", type=int, help="order lines (default 1,000,000)")
    parser.add_argument("--runs", type=int, help="runs of each measurement (default 3)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--chunk-scale", type=int, default=8)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.url, json.loads(args.info))
        return
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    runs = args.runs or (1 if args.quick else 3)
    url, info = prepare(rows, args.seed, args.chunk_scale)
    store = first_store(url)
    outcomes: dict[str, list[dict]] = {store: [], "export": []}
    for _ in range(runs):  # alternating, so load on the machine hits each alike
        for kind in outcomes:
            outcomes[kind].append(measure(kind, url, info))
    export = outcomes["export"]
    chain = [{**r["chain"], "peak_rss_mb": r["peak_rss_mb"]} for r in outcomes[store]]
    shop = [{**r["store"], "peak_rss_mb": r["peak_rss_mb"]} for r in outcomes[store]]
    print(f"\n{rows:,} order lines, report of {info['last_day']}, medians of {runs} run(s)")
    print(f"{'':<22}{'seconds':>9}{'pages':>7}{'MB':>7}{'peak RSS MB':>13}")
    for label, results in (("chain report", chain), (f"{store} report", shop)):
        print(f"{label:<22}{median_of(results, 'seconds'):>9.2f}{results[0]['pages']:>7}"
              f"{median_of(results, 'pdf_mb'):>7.2f}{median_of(results, 'peak_rss_mb'):>13,.0f}")  # fmt: skip
    print(f"{'export (90 days)':<22}{median_of(export, 'seconds'):>9.2f}{'':>7}{median_of(export, 'xlsx_mb'):>7.2f}"
          f"{median_of(export, 'peak_rss_mb'):>13,.0f}   {export[0]['rows']:,} rows")  # fmt: skip
    print("\nper section (chain / store, seconds):")
    for section in chain[0]["sections"]:
        middle = [median_of([{"s": r["sections"][section]} for r in results], "s") for results in (chain, shop)]
        print(f"  {section:<12}{middle[0]:>7.2f}{middle[1]:>7.2f}")
    figures = {
        "chain_report_s": round(median_of(chain, "seconds"), 2),
        "store_report_s": round(median_of(shop, "seconds"), 2),
        "export_s": round(median_of(export, "seconds"), 2),
        "pdf_mb": round(max(median_of(chain, "pdf_mb"), median_of(shop, "pdf_mb")), 2),
    }
    missed = [f"{key} {value} (target {TARGETS[key]})" for key, value in figures.items() if value > TARGETS[key]]
    print("\ntargets: " + ("all met" if not missed else "missed: " + ", ".join(missed)))
    peak = max(r["peak_rss_mb"] for r in [*chain, *export])
    print(json.dumps({"benchmark": "report", "rows": rows, **figures, "peak_rss_mb": round(peak)}))


if __name__ == "__main__":
    main()
