"""Forecast speed: 1,000 product revenue series of two years, 7-day horizon, fitted and written.

Data: the synthetic retailer (seed 42, scale 48: 48 stores, 40 + 20 x 48 = 1,000 products, a Zipf-like
product mix, weekly and yearly seasonality, trend, promotions, stock-outs, three chain-wide holidays a
year), 740 days ending Sunday 2026-11-22, so that both origins below have a little over two years of
history (the engine turns yearly seasonality on from 730 days). Generating it takes about 10 s. Revenue
per product and day (the UTC date of `sold_at`: PIPELINE_TIMEZONE UTC) goes straight into
marts.daily_kpis (scope 'product'), with the chain's 'all' rows (a day without them is closed), of a
database of its own (`bench_forecast`), with COPY, untimed, reloaded by every invocation. --series N
keeps N products evenly spaced over the catalogue (default all 1,000); a little under half of the
products sell on most days and get Prophet, the long tail sells a few days a month and gets the recent
mean (the engine's rule, see sales_pipeline/forecasting/models.py).

Ours, each run in its own process (peak RSS = that process and its worker processes, sampled with
psutil and summed), timed from the read to the commit: `store_calendars` and `sales_series` (the
product series kept), then `run_forecasts(transaction, "sales", series, ForecastSettings(), workers=os.cpu_count())`:

- cold: from empty ml tables, origin Friday 2026-11-20: every backtest fold is fitted (4 Sunday
  origins per candidate, then the published model): the first run, and every run after a settings
  change;
- daily: the next day's run, origin Saturday 2026-11-21, on the ml tables the cold run left (restored
  from a snapshot before each daily run). Not a Sunday, so it adds no backtest origin: the folds are
  reused (but the Prophet folds of a series that has just turned from sparse to dense) and Prophet
  is fitted once per series that publishes Prophet, or the mean of the best two with Prophet among them;
  the run checks both. This is what the schedule does every day. Targets (issue 12): the cold run
  within 60 s, the daily run within 20 s.

Baseline, in its own process, in the same invocation: a plain loop of default `Prophet().fit(df)` and
`m.predict(m.make_future_dataframe(7))` over the same series (every day of history up to the cold
origin, closed days as 0), no writes; --baseline-sample N times N evenly spaced series and
extrapolates to all of them. Ours and the baseline alternate round by round; figures are medians.

Ablation (its own process, one core, after the rounds): --ablation-series dense series (sold on at
least 90% of open days over the last year), each fitted at the engine's 4 backtest origins by
(a) default Prophet (uncertainty_samples=1000, L-BFGS with Newton fallback), (b) uncertainty_samples=0,
(c) (b) with the Newton fallback off, all three the plain way (every day of history, additive, predicting
history and horizon), (d) the engine's own Prophet fold (`_predict`: today (c) plus multiplicative
seasonality, closed days left out, its input written with orjson, only the 7 days predicted), and
seasonal naive for reference: seconds per fit+predict, Newton fallbacks and failed fits, MASE and sMAPE
scored by the engine's `score_folds`. Every run reports the hash of the engine code it measured
(`engine_code_hash`, as in the forecasts' cache keys).

    .venv/bin/python benchmarks/bench_forecast.py            # 1,000 series, 1 round, 3 daily runs (about 8 min)
    .venv/bin/python benchmarks/bench_forecast.py --quick    # 100 series, baseline sample 20 (about 45 s)

The last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import statistics
import threading
import time
from collections import Counter
from datetime import date
from functools import partial

from common import autocommit, copy_frame, engine_version, median_of, own_database, peak_rss_mb, run_worker

from sales_pipeline.warehouse import db

BENCH_DB = "bench_forecast"
SEED = 42
SCALE = 48  # 40 + 20 x 48 = 1,000 products
DAYS = 740
END = date(2026, 11, 22)  # the generator's default end, a Sunday
COLD_ORIGIN = date(2026, 11, 20)  # Friday
DAILY_ORIGIN = date(2026, 11, 21)  # Saturday: the same backtest origins as Friday's
COLD_TARGET_S, DAILY_TARGET_S, TARGET_RATIO, TARGET_RSS_MB = 60, 20, 3, 2048  # issue 12's cold and daily targets
ML_TABLES = ("ml.forecasts", "ml.forecast_series", "ml.backtest_forecasts", "ml.forecast_accuracy")
SNAPSHOT = "bench_forecast_snapshot"
VARIANTS = ("default", "no_samples", "no_newton", "engine")
VARIANT_LABELS = {
    "default": "(a) Prophet() default: 1000 samples, LBFGS + Newton fallback",
    "no_samples": "(b) uncertainty_samples=0",
    "no_newton": "(c) (b) + newton_fallback off",
    "engine": "(d) the engine's own Prophet (see the docstring)",
    "seasonal_naive": "seasonal naive (reference)",
}


# --- the database (main process, untimed) -----------------------------------------------------------


def load(url: str, n_series: int) -> dict:
    """Generate the retailer, keep `n_series` products evenly spaced, COPY their daily KPIs and the chain's."""
    import numpy as np
    import pandas as pd

    from sales_pipeline.demo.retailer import generate_retailer

    retailer = generate_retailer(SCALE, SEED, days=DAYS, end=END)
    products = retailer.products
    ids = np.sort(products["product_id"].to_numpy())
    if n_series > len(ids):
        raise SystemExit(f"the retailer has {len(ids):,} products; --series at most that")
    keep = ids[np.linspace(0, len(ids) - 1, n_series).round().astype(int)]
    sales = retailer.sales
    cost = products.set_index("product_id")["unit_cost"]
    lines = pd.DataFrame({
        "day": sales["sold_at"].dt.floor("D").dt.date,  # PIPELINE_TIMEZONE UTC: the timestamp's date
        "product_id": sales["product_id"],
        "order_id": sales["order_id"],
        "customer_id": sales["customer_id"],
        "revenue": sales["revenue"],
        "units": sales["quantity"],
        "list": sales["quantity"] * sales["unit_price"],
        "with_cost": sales["revenue"].where(sales["product_id"].map(cost).notna(), 0.0),
    })  # fmt: skip
    del retailer, sales

    def kpis(frame, keys: list[str]):
        grouped = frame.groupby(keys, sort=True)
        out = grouped.agg(
            revenue=("revenue", "sum"), units=("units", "sum"), orders=("order_id", "nunique"),
            customers=("customer_id", "nunique"), revenue_with_cost=("with_cost", "sum"), list=("list", "sum"),
        ).reset_index()  # fmt: skip
        out["average_order_value"] = (out["revenue"] / out["orders"]).round(2)
        out["discount_given"] = (out["list"] - out["revenue"]).round(2)
        out["revenue"] = out["revenue"].round(2)
        out["revenue_with_cost"] = out["revenue_with_cost"].round(2)
        return out.drop(columns="list")

    chain = kpis(lines, ["day"]).assign(scope="all", scope_id="")
    product = kpis(lines[lines["product_id"].isin(keep)], ["day", "product_id"])
    product = product.rename(columns={"product_id": "scope_id"}).assign(scope="product")
    columns = ["day", "scope", "scope_id", "revenue", "units", "orders", "customers", "average_order_value",
               "revenue_with_cost", "discount_given"]  # fmt: skip
    with db.transaction(url) as cursor:
        cursor.execute(f"TRUNCATE marts.daily_kpis, {', '.join(ML_TABLES)}")
        # The chain's scope_id is '', not NULL.
        copy_frame(cursor, "marts.daily_kpis", chain[columns], force_not_null=("scope_id",))
        copy_frame(cursor, "marts.daily_kpis", product[columns], force_not_null=("scope_id",))
    autocommit(url, f"VACUUM (ANALYZE) marts.daily_kpis, {', '.join(ML_TABLES)}")
    return {"products": len(keep), "product_rows": len(product), "chain_days": len(chain),
            "days": DAYS, "closed_days": DAYS - len(chain)}  # fmt: skip


def empty_ml(url: str) -> None:
    with db.transaction(url) as cursor:
        cursor.execute(f"TRUNCATE {', '.join(ML_TABLES)}")
    autocommit(url, f"VACUUM (ANALYZE) {', '.join(ML_TABLES)}")


def snapshot_ml(url: str) -> None:
    """Keep what the cold run wrote, so every daily run starts from the same tables."""
    with db.transaction(url) as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {SNAPSHOT} CASCADE; CREATE SCHEMA {SNAPSHOT}")
        for table in ML_TABLES:
            cursor.execute(f"CREATE TABLE {SNAPSHOT}.{table.split('.')[1]} AS SELECT * FROM {table}")


def restore_ml(url: str) -> None:
    with db.transaction(url) as cursor:
        cursor.execute(f"TRUNCATE {', '.join(ML_TABLES)}")
        for table in ML_TABLES:
            cursor.execute(f"INSERT INTO {table} SELECT * FROM {SNAPSHOT}.{table.split('.')[1]}")
    autocommit(url, f"VACUUM (ANALYZE) {', '.join(ML_TABLES)}")


def drop_snapshot(url: str) -> None:
    with db.transaction(url) as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {SNAPSHOT} CASCADE")


# --- measuring (in the child processes) ---------------------------------------------------------------


class PeakRss:
    """Peak of the summed RSS of this process and all its descendants, sampled every 50 ms (psutil)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            import psutil
        except ImportError:  # ru_maxrss below still gives the largest single process
            return
        me = psutil.Process()
        while True:
            total = 0
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker that just ended
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)
            if self._stop.wait(0.05):
                return

    def report(self) -> dict:
        # ru_maxrss as a cross-check; on Linux a child starts from its parent's peak at fork (kept across exec),
        # which is why the data is generated in a process of its own, not in the one starting the runs.
        own = peak_rss_mb()
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest ended child
        return {"peak_rss_mb": round(self.peak / 2**20 if self.peak else own, 1), "parent_rss_mb": round(own, 1),
                "largest_worker_rss_mb": round(children, 1)}  # fmt: skip


def product_series(url: str, origin: date, settings) -> list:
    from sales_pipeline.forecasting.runner import sales_series, store_calendars

    with db.transaction(url) as cursor:
        calendars = store_calendars(cursor, origin, settings.horizon)
        return [item for item in sales_series(cursor, origin, calendars, settings) if item.scope == "product"]


def quiet_prophet() -> None:
    import cmdstanpy

    cmdstanpy.disable_logging()
    logging.getLogger("prophet").setLevel(logging.WARNING)


class NewtonFallbacks(logging.Handler):
    """Counts Prophet's "Optimization terminated abnormally. Falling back to Newton." warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        models_logger = logging.getLogger("prophet.models")
        models_logger.setLevel(logging.WARNING)  # the engine sets "prophet" to ERROR: keep these visible here
        models_logger.propagate = False
        models_logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "Newton" in record.getMessage()


def ours_worker(url: str, origin: date) -> dict:
    from sales_pipeline.forecasting import runner
    from sales_pipeline.forecasting.models import ForecastSettings

    settings = ForecastSettings()
    workers = os.cpu_count() or 1
    timings = {"write_s": 0.0}
    write_results = runner.write_results

    def timed_write(cursor, target, results) -> None:  # instrumentation only: the inserts' share
        started = time.perf_counter()
        write_results(cursor, target, results)
        timings["write_s"] += time.perf_counter() - started

    runner.write_results = timed_write
    with PeakRss() as rss:
        started = time.perf_counter()
        series = product_series(url, origin, settings)
        read = time.perf_counter()
        run = runner.run_forecasts(partial(db.transaction, url), "sales", series, settings, workers=workers)
        done = time.perf_counter()
    folds = [fold for result in run.results for fold in result.folds]
    with db.transaction(url) as cursor:
        cursor.execute("SELECT count(*) FROM ml.forecasts WHERE target = 'sales' AND origin = %s", (origin,))
        written = cursor.fetchone()[0]
    models = Counter(result.model or "none" for result in run.results)
    return {
        "seconds": done - started, "read_s": read - started, "forecast_write_s": done - read,
        "write_s": timings["write_s"], "series": len(series), "workers": workers, "summary": run.summary(),
        "folds": len(folds), "folds_reused": sum(fold.reused for fold in folds),
        "new_prophet_folds": sum(fold.model == "prophet" and not fold.reused for fold in folds),
        "models": dict(models), "prophet_candidates": sum(
            any(fold.model == "prophet" for fold in result.folds) for result in run.results),
        "fit_cpu_s": sum(result.fit_seconds for result in run.results), "forecast_rows": written,
        "engine": engine_version(),
        **rss.report(),
    }  # fmt: skip


def baseline_worker(url: str, origin: date, sample: int) -> dict:
    import numpy as np
    import pandas as pd
    from prophet import Prophet

    from sales_pipeline.forecasting.models import ForecastSettings

    quiet_prophet()
    fallbacks = NewtonFallbacks()
    series = product_series(url, origin, ForecastSettings())
    picked = [series[i] for i in np.linspace(0, len(series) - 1, min(sample, len(series))).round().astype(int)]
    failed = 0
    with PeakRss() as rss:
        started = time.perf_counter()
        for item in picked:
            frame = pd.DataFrame({"ds": item.values.index, "y": item.values.to_numpy(dtype=float)})
            try:
                model = Prophet()
                model.fit(frame)
                model.predict(model.make_future_dataframe(periods=7))
            except Exception:  # counted, as a plain loop would have to
                failed += 1
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds, "timed_series": len(picked), "series": len(series),
        "extrapolated_s": seconds * len(series) / len(picked), "newton_fallbacks": fallbacks.count,
        "failed": failed, "engine": engine_version(), **rss.report(),
    }  # fmt: skip


def ablation_worker(url: str, origin: date, n_series: int) -> dict:
    import numpy as np
    import pandas as pd
    from prophet import Prophet

    from sales_pipeline.forecasting import models

    settings = models.ForecastSettings()
    quiet_prophet()
    fallbacks = NewtonFallbacks()
    series = product_series(url, origin, settings)
    dense = []
    for item in series:
        open_ = ~item.closed.to_numpy(dtype=bool)[: len(item.values)][-365:]
        if (item.values.to_numpy()[-365:][open_] > 0).mean() >= 0.9:
            dense.append(item)
    picked = [dense[i] for i in np.linspace(0, len(dense) - 1, min(n_series, len(dense))).round().astype(int)]

    def plain(variant: str, item, at: date) -> np.ndarray:
        upto = (pd.Timestamp(at) - item.values.index[0]).days + 1
        frame = pd.DataFrame({"ds": item.values.index[:upto], "y": item.values.to_numpy(dtype=float)[:upto]})
        model = Prophet() if variant == "default" else Prophet(uncertainty_samples=0)
        if variant == "no_newton":
            model.stan_backend.newton_fallback = False
        model.fit(frame)
        return model.predict(model.make_future_dataframe(periods=7))["yhat"].to_numpy()[-7:]  # the plain way

    seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    newton = dict.fromkeys(VARIANTS, 0)
    failed = dict.fromkeys(VARIANTS, 0)
    scores: dict[str, list[dict]] = {variant: [] for variant in (*VARIANTS, "seasonal_naive")}
    for item in picked:
        folds: dict[str, list] = {variant: [] for variant in scores}
        for at in models.backtest_origins(item, settings):
            for variant in VARIANTS:  # interleaved, so load on the machine hits every variant alike
                before = fallbacks.count
                started = time.perf_counter()
                try:
                    if variant == "engine":
                        yhat = models._predict(models.PROPHET, item, at, settings)
                    else:
                        yhat = plain(variant, item, at)
                except Exception:  # in the engine this fold would be missing and the series fall back
                    failed[variant] += 1
                    continue
                finally:
                    seconds[variant].append(time.perf_counter() - started)
                    newton[variant] += fallbacks.count - before
                folds[variant].append(models.Fold(at, variant, "", yhat))
            naive = models._predict(models.SEASONAL_NAIVE, item, at, settings)
            folds["seasonal_naive"].append(models.Fold(at, "seasonal_naive", "", naive))
        for variant, variant_folds in folds.items():
            scores[variant].extend(models.score_folds(item, variant_folds, settings))
    out = {}
    for variant, rows in scores.items():
        mases = [row["mase"] for row in rows if row["mase"] is not None]
        times = seconds.get(variant, [])
        out[variant] = {
            "fits": len(times), "failed": failed.get(variant, 0), "newton_fallbacks": newton.get(variant, 0),
            "median_s": round(statistics.median(times), 4) if times else None,
            "mean_s": round(statistics.fmean(times), 4) if times else None,
            "max_s": round(max(times), 3) if times else None,
            "mase": round(statistics.fmean(mases), 4) if mases else None,
            "smape": round(statistics.fmean(row["smape"] for row in rows), 2) if rows else None,
        }  # fmt: skip
    return {"series": len(picked), "dense_series": len(dense), "variants": out, "engine": engine_version()}


def measure(kind: str, url: str, origin: date, arg: int = 0) -> dict:
    arguments = ["--worker", kind, "--url", url, "--origin", origin.isoformat(), "--worker-arg", str(arg)]
    return run_worker(__file__, arguments, f"the {kind} run")


# --- main -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 series, baseline sample 20, ablation 8 series")
    parser.add_argument("--series", type=int, default=None, help="product series (default 1,000; --quick 100)")
    parser.add_argument("--runs", type=int, default=1, help="rounds of cold run + baseline (default 1)")
    parser.add_argument("--daily-runs", type=int, default=None, help="daily runs per round (default 3; --quick 1)")
    parser.add_argument(
        "--baseline-sample", type=int, default=None, help="time the plain loop on N series, extrapolate (default: all)"
    )
    parser.add_argument("--ablation-series", type=int, default=None, help="dense series (default 40; --quick 8)")
    parser.add_argument("--worker", choices=("load", "ours", "baseline", "ablation"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--origin", type=date.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--worker-arg", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker = {"load": lambda: load(args.url, args.worker_arg),
                  "ours": lambda: ours_worker(args.url, args.origin),
                  "baseline": lambda: baseline_worker(args.url, args.origin, args.worker_arg),
                  "ablation": lambda: ablation_worker(args.url, args.origin, args.worker_arg)}[args.worker]  # fmt: skip
        print(json.dumps(worker()))
        return

    from sales_pipeline.settings import Settings

    if Settings.from_environment().pipeline_timezone != "UTC":
        raise SystemExit("run with PIPELINE_TIMEZONE unset or UTC: the loaded days are UTC dates")
    n_series = args.series or (100 if args.quick else 1000)
    sample = min(args.baseline_sample or (20 if args.quick else n_series), n_series)
    daily_runs = args.daily_runs or (1 if args.quick else 3)
    ablation_series = args.ablation_series or (8 if args.quick else 40)
    assert DAILY_ORIGIN.weekday() != 6, "a Sunday daily origin would add a backtest origin"
    url = own_database(BENCH_DB)

    invocation = time.perf_counter()
    loaded = measure("load", url, END, n_series)  # its own process: this one stays small (see PeakRss)
    print(f"data: synthetic retailer seed {SEED}, scale {SCALE}, {DAYS} days to {END}: {loaded['products']:,} product"
          f" series, {loaded['product_rows']:,} product-day rows, {loaded['closed_days']} chain-closed days"
          f" (loaded in {time.perf_counter() - invocation:.0f} s, untimed)")  # fmt: skip
    print(f"origins: cold {COLD_ORIGIN} ({COLD_ORIGIN:%a}), daily {DAILY_ORIGIN} ({DAILY_ORIGIN:%a});"
          f" workers {os.cpu_count()}; baseline on {sample:,} of {n_series:,} series")  # fmt: skip

    colds, dailies, baselines = [], [], []
    try:
        for run in range(args.runs):
            empty_ml(url)
            cold = measure("ours", url, COLD_ORIGIN)
            colds.append(cold)
            print(f"  round {run + 1} cold     {cold['seconds']:7.1f} s (read {cold['read_s']:.1f}, inserts"
                  f" {cold['write_s']:.1f})  prophet fits {cold['summary']['prophet_fits']:,}  peak"
                  f" {cold['peak_rss_mb']:,.0f} MB (parent {cold['parent_rss_mb']:,.0f},"
                  f" largest worker {cold['largest_worker_rss_mb']:,.0f})")  # fmt: skip
            snapshot_ml(url)
            for daily_run in range(daily_runs):
                if daily_run:
                    restore_ml(url)
                daily = measure("ours", url, DAILY_ORIGIN)
                dailies.append(daily)
                print(
                    f"  round {run + 1} daily    {daily['seconds']:7.1f} s (read {daily['read_s']:.1f}, inserts"
                    f" {daily['write_s']:.1f})  prophet fits {daily['summary']['prophet_fits']:,}, folds reused"
                    f" {daily['folds_reused']:,}/{daily['folds']:,}  peak {daily['peak_rss_mb']:,.0f} MB"
                )
            base = measure("baseline", url, COLD_ORIGIN, sample)
            baselines.append(base)
            print(f"  round {run + 1} baseline {base['extrapolated_s']:7.1f} s ({base['seconds']:.1f} s for"
                  f" {base['timed_series']:,} series)  Newton fallbacks {base['newton_fallbacks']}  peak"
                  f" {base['peak_rss_mb']:,.0f} MB")  # fmt: skip
    finally:
        drop_snapshot(url)
    ablation = measure("ablation", url, COLD_ORIGIN, ablation_series)

    for outcome in colds + dailies:
        assert outcome["forecast_rows"] == 7 * (outcome["series"] - outcome["summary"]["skipped"]), outcome
    engines = sorted({o["engine"] for o in [*colds, *dailies, *baselines, ablation]})
    cold_s = median_of(colds, "seconds")
    daily_s = median_of(dailies, "seconds")
    base_s = median_of(baselines, "extrapolated_s")
    peak = max(o["peak_rss_mb"] for o in colds + dailies)
    cold, daily, base = colds[0], dailies[0], baselines[0]

    print()
    print(f"{'run':<42}{'median s':>10}{'read s':>8}{'inserts s':>10}{'prophet fits':>14}{'folds reused':>14}"
          f"{'peak RSS MB':>13}")  # fmt: skip
    for label, outcomes in (("ours, cold (empty ml tables)", colds), ("ours, daily (next day)", dailies)):
        o = outcomes[0]
        print(f"{label:<42}{median_of(outcomes, 'seconds'):>10.1f}{median_of(outcomes, 'read_s'):>8.1f}"
              f"{median_of(outcomes, 'write_s'):>10.1f}{o['summary']['prophet_fits']:>14,}"
              f"{o['folds_reused']:>8,}/{o['folds']:<5,}{max(x['peak_rss_mb'] for x in outcomes):>13,.0f}")  # fmt: skip
    extrapolated = " (extrapolated)" if sample < n_series else ""
    print(f"{'baseline: Prophet() loop' + extrapolated:<42}{base_s:>10.1f}{'':>8}{'':>10}{sample:>14,}{'':>14}"
          f"{max(o['peak_rss_mb'] for o in baselines):>13,.0f}")  # fmt: skip
    print(f"published models (daily): {daily['models']}; Prophet candidates {daily['prophet_candidates']:,};"
          f" failed {daily['summary']['failed']}; median fit {daily['summary']['median_fit_s']} s,"
          f" p95 {daily['summary']['p95_fit_s']} s per series")  # fmt: skip
    for label, o in (("cold", cold), ("daily", daily)):
        fits = o["summary"]["prophet_fits"]
        print(f"{label}: {fits:,} Prophet fits ({o['new_prophet_folds']:,} for new backtest folds, the rest for"
              f" published forecasts), {o['fit_cpu_s']:.0f} s in forecast_series over {o['workers']} workers"
              f" ({o['fit_cpu_s'] / max(fits, 1):.3f} s per Prophet fit)")  # fmt: skip
    # The daily run must reuse the folds: new Prophet folds only for series that just became dense.
    assert daily["folds_reused"] >= 0.95 * daily["folds"], daily
    # A published Prophet fit serves a series publishing Prophet, or the mean of the best two when Prophet is one.
    published = daily["models"].get("prophet", 0) + daily["new_prophet_folds"]
    assert published <= daily["summary"]["prophet_fits"] <= published + daily["models"].get("combination", 0), daily
    ratio = base_s / daily_s
    print(f"targets: daily {daily_s:.1f} s <= {DAILY_TARGET_S} s: {'yes' if daily_s <= DAILY_TARGET_S else 'NO'},"
          f" cold {cold_s:.1f} s <= {COLD_TARGET_S} s: {'yes' if cold_s <= COLD_TARGET_S else 'NO'};"
          f" baseline / daily {ratio:.1f}x >= {TARGET_RATIO}x: {'yes' if ratio >= TARGET_RATIO else 'NO'}"
          f" (baseline / cold {base_s / cold_s:.1f}x); peak RSS {peak:,.0f} MB < {TARGET_RSS_MB:,}:"
          f" {'yes' if peak < TARGET_RSS_MB else 'NO'}")  # fmt: skip

    print(
        f"forecasting code measured: {', '.join(engines)}"
        + ("  (CHANGED during the invocation: the figures mix versions)" if len(engines) > 1 else "")
    )
    print()
    variants = ablation["variants"]
    print(f"settings ablation: {ablation['series']} dense series (of {ablation['dense_series']}), 4 backtest origins"
          " each, one process")  # fmt: skip
    print(f"{'variant':<64}{'fits':>6}{'median s':>10}{'mean s':>8}{'max s':>7}{'Newton':>8}{'failed':>8}"
          f"{'MASE':>7}{'sMAPE':>7}")  # fmt: skip
    for variant, label in VARIANT_LABELS.items():
        v = variants[variant]
        timing = (f"{v['fits']:>6}{v['median_s']:>10.3f}{v['mean_s']:>8.3f}{v['max_s']:>7.2f}"
                  f"{v['newton_fallbacks']:>8}{v['failed']:>8}") if v["fits"] else f"{'':>47}"  # fmt: skip
        print(f"{label:<64}{timing}{v['mase']:>7.3f}{v['smape']:>7.1f}")

    print(json.dumps({
        "benchmark": "forecast", "series": n_series, "ours_s": round(cold_s, 1), "ours_daily_s": round(daily_s, 1),
        "baseline_s": round(base_s, 1), "baseline_extrapolated": sample < n_series, "ratio": round(base_s / daily_s, 1),
        "ratio_cold": round(base_s / cold_s, 1), "target_compared": "daily", "peak_rss_mb": round(peak),
        "prophet_fits_cold": cold["summary"]["prophet_fits"], "prophet_fits_daily": daily["summary"]["prophet_fits"],
        "folds_reused_daily": daily["folds_reused"], "folds_daily": daily["folds"],
        "published": daily["models"], "runs": args.runs, "daily_runs": daily_runs,
        "ablation": {variant: {k: variants[variant][k] for k in ("median_s", "mase", "newton_fallbacks", "failed")}
                     for variant in variants},
        "engine": engines[0] if len(engines) == 1 else engines, "wall_s": round(time.perf_counter() - invocation),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
