"""Forecast accuracy on real data: 20 Rossmann stores, the published forecast against seasonal naive.

Data: ../shared/datasets/store_retail.csv from the project root (see ../shared/datasets/README.md):
daily sales of 20 German drug stores (Rossmann), 2013-01-01..2015-07-31, with the Open flag (closed
on Sundays and holidays, and two stores have no rows for the second half of 2014), Promo and
StateHoliday. Nobody on this project wrote it. When the file is absent the script says so and exits 0.

One `Series` per store (target 'sales', scope 'store'): values = Sales per day; closed = Open == 0
(and the days a store has no row); promotion = Promo. Both are known ahead in this data, so the
future part of `closed` and `promotion` uses the real flags. From each origin (every Sunday of the
last --origins weeks with 7 days of actuals after it; each origin sees only the data up to it),
`forecast_series` runs as the pipeline runs it (its own 4-origin backtest, then the published model,
Prophet or seasonal naive) and its published 7-day forecast is scored on the open days after the
origin:

- MASE: MAE over the open days / the in-sample mean absolute week-on-week change (pairs of open days)
  of the history up to the origin; averaged over origins per store, then over stores;
- sMAPE over the open days (per store over all its scored days, then the mean over stores);
- coverage: the share of open days whose actual lies in the 80% and 95% intervals (and, for
  comparison, in yhat ± z x the published model's backtest RMSE).

Seasonal naive is the same weekday one week before (the latest open one when that day was closed, as
the engine's own seasonal naive), scored the same way. References quoted for this data: seasonal naive
about 0.88 MASE, a tuned model about 0.47. Under this protocol seasonal naive scores 0.94-1.10
depending on the window (1.01 over the default 26 weeks), so compare ours with both the references
and the seasonal naive of the same run.

Holidays: the StateHoliday days are closed days in this data (528 of 538 store-days), so they reach
the engine as closed days already (the engine takes no custom holiday list). Public holidays
(holiday_country "DE") add Prophet terms on days that are closed anyway: measured no better and 30%
slower, so the default configuration keeps none.

Variants of the settings are scored over every --variant-every'th origin, against the default
configuration on the same origins: holiday_country "DE", additive seasonality, 8 backtest origins
instead of 4, and no promotion input (what the pipeline passed before it read core.promotions).

In memory: no warehouse is needed. The forecasts run in a process pool (one process per CPU).

Through the pipeline's own path (benchmarks/pipeline_accuracy.py, which says how each is measured), each
in a database of its own (`bench_accuracy`): Rossmann through data/mappings/rossmann.yaml and Superstore
through data/mappings/superstore.yaml, forecast from the last --pipeline-origins Sundays as the pipeline
builds and reconciles the series, scored per level (the total, stores or regions, categories) against
seasonal naive and AutoETS (the engine's), with interval coverage; the critical sales drops the detector
raises on the last --alarm-days days of each (per 10,000 series-days: nothing is planted in real data,
so each counts as false, and each is listed); and the planted anomalies' recall on --retailers generated
retailers (scale 2, seeds 1..N), with the precision of their critical alerts. Targets (the issue): Rossmann
MASE at most 0.40 through the pipeline, Superstore's categories and regions under both seasonal naive and
AutoETS, at most 1 critical false alarm per 10,000 series-days, planted recall at least 90%.

    .venv/bin/python benchmarks/bench_accuracy.py            # everything (about 45 min on 2 cores)
    .venv/bin/python benchmarks/bench_accuracy.py --quick    # 5 stores x 4 origins; the pipeline parts small
    .venv/bin/python benchmarks/bench_accuracy.py --sections engine,rossmann   # some parts only

The last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from common import engine_version, median_of, own_database

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "store_retail.csv"
SUPERSTORE = DATA.parent / "superstore.xlsx"
SECTIONS = ("engine", "rossmann", "superstore", "alarms", "planted")
HORIZON = 7
REFERENCE_NAIVE, REFERENCE_TUNED = 0.88, 0.47
MAIN = "default"
VARIANTS = {
    # name: (ForecastSettings overrides, promotion given)
    "default": ({}, True),
    "holidays_de": ({"holiday_country": "DE"}, True),
    "additive": ({"seasonality_mode": "additive"}, True),
    "backtest_8": ({"backtest_origins": 8}, True),
    "no_promotion": ({}, False),
}
LABELS = {
    "default": "ForecastSettings() + Promo (no public holidays)",
    "holidays_de": "holiday_country='DE'",
    "additive": "seasonality_mode='additive'",
    "backtest_8": "backtest_origins=8 (sigma from twice the folds)",
    "no_promotion": "no promotion input (as the pipeline before core.promotions)",
}


def read_stores(path: Path, limit: int | None) -> dict[int, pd.DataFrame]:
    """Per store: a frame over every calendar day (Sales, Open, Promo), missing days closed with no sales."""
    rows = pd.read_csv(path, parse_dates=["Date"], dtype={"StateHoliday": str})
    stores = {}
    for store, frame in sorted(rows.groupby("Store")):
        frame = frame.set_index("Date").sort_index()
        days = pd.date_range(rows["Date"].min(), rows["Date"].max(), freq="D")
        frame = frame.reindex(days)
        stores[int(store)] = pd.DataFrame({
            "sales": frame["Sales"].fillna(0.0).astype(float),
            "open": frame["Open"].fillna(0).astype(bool),
            "promo": frame["Promo"].fillna(0).astype(float),
        }, index=days)  # fmt: skip
    return dict(list(stores.items())[:limit]) if limit else stores


def origins(last_day: pd.Timestamp, weeks: int) -> list[pd.Timestamp]:
    """The last `weeks` Sundays with a full horizon of actuals after them, oldest first."""
    last = last_day - pd.Timedelta(days=HORIZON)
    latest = last - pd.Timedelta(days=(last.weekday() + 1) % 7)
    return sorted(latest - pd.Timedelta(weeks=k) for k in range(weeks))


def evaluate(job: tuple[int, pd.DataFrame, pd.Timestamp, str]) -> dict | None:
    """Forecast one store from one origin with one variant; score the published forecast and seasonal naive.

    None when the store is closed all the 7 days (stores 13 and 20 have no rows for the second half of 2014).
    """
    from sales_pipeline.forecasting import models

    store, frame, origin, variant = job
    upto = (origin - frame.index[0]).days + 1
    if not frame["open"].iloc[upto : upto + HORIZON].any():
        return None
    overrides, with_promotion = VARIANTS[variant]
    settings = replace(models.ForecastSettings(), **overrides)
    series = models.Series(
        "sales", "store", str(store),
        values=frame["sales"].iloc[:upto],
        closed=~frame["open"].iloc[: upto + HORIZON],
        promotion=frame["promo"].iloc[: upto + HORIZON] if with_promotion else None,
    )  # fmt: skip
    started = time.perf_counter()
    result = models.forecast_series(series, settings)
    seconds = time.perf_counter() - started
    actual = frame["sales"].to_numpy()[upto : upto + HORIZON]
    open_ = frame["open"].to_numpy()[upto : upto + HORIZON]
    scale = models._naive_scale(frame["sales"].to_numpy()[:upto], ~frame["open"].to_numpy()[:upto])
    naive = models._predict(models.SEASONAL_NAIVE, series, origin.date(), settings)
    forecast = result.forecast

    def scores(yhat: np.ndarray) -> dict:
        a, f = actual[open_], yhat[open_]
        denominator = np.abs(a) + np.abs(f)
        smape = np.divide(200 * np.abs(a - f), denominator, out=np.zeros_like(a), where=denominator > 0)
        return {"mase": float(np.abs(a - f).mean() / scale), "smape_sum": float(smape.sum()), "days": len(a)}

    inside = {}
    for level in ("80", "95"):
        lower = forecast[f"yhat_lower_{level}"].to_numpy()[open_]
        upper = forecast[f"yhat_upper_{level}"].to_numpy()[open_]
        inside[level] = int(((actual[open_] >= lower) & (actual[open_] <= upper)).sum())
    # For comparison: the same bands with sigma = the published model's backtest RMSE.
    row = next((row for row in result.accuracy if row["model"] == result.model), None)
    rmse = row["rmse"] if row else result.sigma
    yhat = forecast["yhat"].to_numpy()[open_]
    for level, z in (("80", models.Z80), ("95", models.Z95)):
        inside[f"rmse_{level}"] = int((np.abs(actual[open_] - yhat) <= z * rmse).sum())
    return {
        "store": store, "origin": origin.date().isoformat(), "variant": variant, "model": result.model,
        "status": result.status, "seconds": seconds, "prophet_fits": result.prophet_fits,
        "published": scores(forecast["yhat"].to_numpy()), "naive": scores(naive), "inside": inside,
    }  # fmt: skip


def summarise(outcomes: list[dict], key: str) -> dict:
    """MASE (mean over origins, then stores), sMAPE (over days, then the mean over stores), per store too."""
    by_store = defaultdict(list)
    for outcome in outcomes:
        by_store[outcome["store"]].append(outcome[key])
    per_store = {
        store: {"mase": statistics.fmean(s["mase"] for s in items),
                "smape": sum(s["smape_sum"] for s in items) / sum(s["days"] for s in items)}
        for store, items in sorted(by_store.items())
    }  # fmt: skip
    return {
        "mase": statistics.fmean(s["mase"] for s in per_store.values()),
        "smape": statistics.fmean(s["smape"] for s in per_store.values()),
        "per_store": per_store,
    }


def coverage(outcomes: list[dict]) -> dict[str, float]:
    days = sum(outcome["published"]["days"] for outcome in outcomes)
    levels = ("80", "95", "rmse_80", "rmse_95")
    return {level: sum(outcome["inside"][level] for outcome in outcomes) / days for level in levels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 stores, 4 origins, variants on 2 of them")
    parser.add_argument("--data", type=Path, default=DATA, help="the Rossmann CSV (default ../shared/datasets/...)")
    parser.add_argument("--stores", type=int, default=None, help="first N stores (default all 20; --quick 5)")
    parser.add_argument("--origins", type=int, default=None, help="weekly origins (default 26; --quick 4)")
    parser.add_argument("--variant-every", type=int, default=None, help="variants on every Nth origin (default 6)")
    parser.add_argument("--no-variants", action="store_true", help="the default configuration only")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"of {','.join(SECTIONS)} (default all)")
    parser.add_argument("--pipeline-origins", type=int, default=None, help="Sundays (default 12; --quick 2)")
    parser.add_argument("--alarm-days", type=int, default=None, help="days judged (default 28; --quick 7)")
    parser.add_argument("--retailers", type=int, default=None, help="generated retailers (default 10; --quick 1)")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if unknown := sections - set(SECTIONS):
        parser.error(f"--sections: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    pipeline = pipeline_sections(args, sections)
    if "engine" not in sections:
        print(json.dumps({"benchmark": "accuracy", **pipeline}))
        return
    if not args.data.exists():
        print(f"skipped: {args.data} is absent (the real-data sets live outside the project; see its README)")
        print(json.dumps({"benchmark": "accuracy", "skipped": True, "reason": f"{args.data} absent"}))
        return

    started = time.perf_counter()
    version = engine_version()
    stores = read_stores(args.data, args.stores or (5 if args.quick else None))
    last_day = next(iter(stores.values())).index[-1]
    all_origins = origins(last_day, args.origins or (4 if args.quick else 26))
    every = args.variant_every or (2 if args.quick else 6)
    variant_origins = set(all_origins[::-1][::every])  # the latest origin and every Nth before it
    jobs = [(store, frame, origin, MAIN) for origin in all_origins for store, frame in stores.items()]
    if not args.no_variants:
        jobs += [
            (store, frame, origin, variant)
            for origin in sorted(variant_origins) for store, frame in stores.items()
            for variant in VARIANTS if variant != MAIN
        ]  # fmt: skip
    print(f"data: {args.data.name}, {len(stores)} stores, {next(iter(stores.values())).index[0].date()}.."
          f"{last_day.date()}; origins: {len(all_origins)} Sundays {all_origins[0].date()}..{all_origins[-1].date()}"
          f" (variants on {len(variant_origins)}); {len(jobs)} forecasts over {args.workers} processes")  # fmt: skip
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        outcomes = [outcome for outcome in pool.map(evaluate, jobs, chunksize=1) if outcome is not None]
    elapsed = time.perf_counter() - started

    main_outcomes = [o for o in outcomes if o["variant"] == MAIN]
    published = summarise(main_outcomes, "published")
    naive = summarise(main_outcomes, "naive")
    cover = coverage(main_outcomes)
    models_used = Counter(o["model"] for o in main_outcomes)
    statuses = Counter(o["status"] for o in main_outcomes)
    print()
    print(f"{'store':>6}{'MASE':>8}{'naive':>8}{'sMAPE %':>9}{'naive %':>9}{'Prophet':>9}")
    by_store_model = Counter((o["store"], o["model"]) for o in main_outcomes)
    for store in published["per_store"]:
        p, n = published["per_store"][store], naive["per_store"][store]
        prophet_share = by_store_model[(store, "prophet")] / sum(o["store"] == store for o in main_outcomes)
        print(f"{store:>6}{p['mase']:>8.3f}{n['mase']:>8.3f}{p['smape']:>9.1f}{n['smape']:>9.1f}{prophet_share:>9.0%}")
    print(f"{'all':>6}{published['mase']:>8.3f}{naive['mase']:>8.3f}{published['smape']:>9.1f}{naive['smape']:>9.1f}"
          f"{models_used['prophet'] / len(main_outcomes):>9.0%}")  # fmt: skip
    print(f"published: {dict(models_used)} of {len(main_outcomes)} store-origins; status {dict(statuses)}")
    print(f"interval coverage of held-out open days: 80%: {cover['80']:.1%}, 95%: {cover['95']:.1%}"
          f" (with sigma = the backtest RMSE instead: {cover['rmse_80']:.1%}, {cover['rmse_95']:.1%})")  # fmt: skip
    print(f"references: seasonal naive about {REFERENCE_NAIVE}, a tuned model about {REFERENCE_TUNED};"
          f" ours {published['mase']:.3f} (seasonal naive here {naive['mase']:.3f})")  # fmt: skip

    variants_out = {}
    if not args.no_variants:
        print()
        listed = ", ".join(str(origin.date()) for origin in sorted(variant_origins))
        print(f"variants over {len(variant_origins)} origins ({listed}):")
        print(f"{'variant':<50}{'MASE':>8}{'sMAPE %':>9}{'cover 80':>10}{'cover 95':>10}{'Prophet':>9}{'s/fcst':>8}")
        for variant in VARIANTS:
            chosen = [o for o in outcomes if o["variant"] == variant and pd.Timestamp(o["origin"]) in variant_origins]
            s, c = summarise(chosen, "published"), coverage(chosen)
            share = sum(o["model"] == "prophet" for o in chosen) / len(chosen)
            seconds = median_of(chosen, "seconds")
            variants_out[variant] = {"mase": round(s["mase"], 4), "smape": round(s["smape"], 2),
                                     "coverage_80": round(c["80"], 3), "coverage_95": round(c["95"], 3),
                                     "prophet_share": round(share, 3), "median_s": round(seconds, 2)}  # fmt: skip
            print(f"{LABELS[variant]:<50}{s['mase']:>8.3f}{s['smape']:>9.1f}{c['80']:>10.1%}{c['95']:>10.1%}"
                  f"{share:>9.0%}{seconds:>8.2f}")  # fmt: skip
        naive_subset = summarise([o for o in main_outcomes if pd.Timestamp(o["origin"]) in variant_origins], "naive")
        print(f"{'seasonal naive (same origins)':<50}{naive_subset['mase']:>8.3f}{naive_subset['smape']:>9.1f}")
    if engine_version() != version:
        version = f"{version} -> {engine_version()}"
        print("the forecasting code CHANGED during the run: the figures may mix versions")
    print(f"{len(jobs)} forecasts in {elapsed:.0f} s; forecasting code {version}")
    print(json.dumps({
        "benchmark": "accuracy", "stores": len(stores), "origins": len(all_origins),
        "mase": round(published["mase"], 4), "smape": round(published["smape"], 2),
        "naive_mase": round(naive["mase"], 4), "naive_smape": round(naive["smape"], 2),
        "coverage_80": round(cover["80"], 3), "coverage_95": round(cover["95"], 3),
        "coverage_rmse_80": round(cover["rmse_80"], 3), "coverage_rmse_95": round(cover["rmse_95"], 3),
        "published": dict(models_used), "reference_naive_mase": REFERENCE_NAIVE,
        "reference_tuned_mase": REFERENCE_TUNED, "variants": variants_out, "engine": version,
        "seconds": round(elapsed), **pipeline,
    }))  # fmt: skip


def pipeline_sections(args: argparse.Namespace, sections: set[str]) -> dict:
    """The pipeline's own path (pipeline_accuracy.py): accuracy per level, false criticals, planted recall."""
    import pipeline_accuracy as pa

    out: dict = {}
    origins = args.pipeline_origins or (2 if args.quick else 12)
    alarm_days = args.alarm_days or (7 if args.quick else 28)
    real = {"rossmann": (args.data, "rossmann", "Europe/Berlin"), "superstore": (SUPERSTORE, "superstore", "UTC")}
    alarms = {}
    for name, (path, mapping, timezone) in real.items():
        if not sections & {name, "alarms"}:
            continue
        if not path.exists():
            print(f"{name}: skipped, {path} is absent")
            continue
        url = own_database("bench_accuracy", recreate=True)
        started = time.perf_counter()
        pa.load(url, path, mapping, timezone)
        if name in sections:
            print(f"\n{name} through the pipeline ({mapping}.yaml), {origins} weekly origins:")
            levels = {scope: pa.level_scores(rows, scope) for rows in [pa.through_pipeline(url, origins, args.workers)]
                      for scope in ("all", "store", "category")}  # fmt: skip
            print_levels(levels)
            out[f"{name}_levels"] = {scope: _rounded(scores) for scope, scores in levels.items() if scores}
        if "alarms" in sections:
            alarms[name] = pa.false_criticals(url, alarm_days, args.workers)
            found = alarms[name]
            print(f"{name}: {found['criticals']} critical drops over {found['series']} series x {alarm_days} days"
                  f" = {found['per_10k_series_days']:.2f} per 10,000 series-days")  # fmt: skip
            for message in found["messages"]:
                print(f"  {message}")
        print(f"{name}: {time.perf_counter() - started:.0f} s")
    if "rossmann_levels" in out:
        out["rossmann_pipeline_mase"] = out["rossmann_levels"]["store"]["ours_mase"]
    if "superstore_levels" in out:
        levels = out["superstore_levels"]
        out["superstore_category_mase"] = levels["category"]["ours_mase"]
        out["superstore_region_mase"] = levels["store"]["ours_mase"]
        out["autoets_superstore_category_mase"] = levels["category"]["autoets_mase"]
    if alarms:
        criticals, series_days = (sum(found[k] for found in alarms.values()) for k in ("criticals", "series_days"))
        out["false_criticals_per_10k_series_days"] = round(10_000 * criticals / series_days, 3)
        out["false_criticals"] = {name: {k: v for k, v in found.items() if k != "messages"}
                                  for name, found in alarms.items()}  # fmt: skip
    if "planted" in sections:
        seeds = list(range(1, 1 + (args.retailers or (1 if args.quick else 10))))
        print(f"\nplanted anomalies on {len(seeds)} generated retailers (scale 2, seeds {seeds[0]}..{seeds[-1]}):")
        recall = pa.planted_recall(own_database("bench_accuracy", recreate=True), seeds, args.workers)
        print(f"recall {recall['recall']:.0%} ({recall['found']} of {recall['planted']}): "
              + ", ".join(f"{k} {v['found']}/{v['planted']}" for k, v in recall["by_kind"].items())
              + f"; precision of the {recall['criticals']} critical alerts: {recall['precision']:.0%}"
              + (f"; missed: {'; '.join(recall['missed'])}" if recall["missed"] else ""))  # fmt: skip
        out["planted_recall"] = round(recall["recall"], 3)
        out["planted"] = {k: v for k, v in recall.items() if k != "missed"}
    return out


def print_levels(levels: dict[str, dict]) -> None:
    names = {"all": "total", "store": "stores/regions", "category": "categories"}
    header = ("level", "series", "MASE", "naive", "AutoETS", "sMAPE %", "cover 80", "cover 95")
    print(f"{header[0]:<16}" + "".join(f"{title:>9}" for title in header[1:]))
    for scope, scores in levels.items():
        if scores:
            figures = [f"{scores['series']:>9}"] + [
                f"{scores[k]:>9.3f}" for k in ("ours_mase", "naive_mase", "autoets_mase")
            ]
            figures += [
                f"{scores['ours_smape']:>9.1f}",
                f"{scores['coverage_80']:>9.1%}",
                f"{scores['coverage_95']:>9.1%}",
            ]
            print(f"{names[scope]:<16}" + "".join(figures))


def _rounded(scores: dict) -> dict:
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in scores.items()}


if __name__ == "__main__":
    main()
