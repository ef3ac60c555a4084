"""The pipeline's own path on real data and on generated retailers: what bench_accuracy.py reports beside the engine.

- Through the pipeline (`through_pipeline`): a dataset imported by the importer through its mapping
  (data/mappings/rossmann.yaml, data/mappings/superstore.yaml) into a database of its own, its daily
  KPIs refreshed; then, from each of the last N Sundays with a week of actuals after them (each seeing
  only its past), the series the pipeline builds (`sales_series`: the warehouse's KPIs, the store
  calendar and the promotions known for the days ahead), forecast by `forecast_series` in a process pool
  and reconciled by `reconcile_sales`, as `run_forecasts` does (without writing them). The published
  forecast of the total, each store and each category is scored on the open days after its origin
  (MASE: MAE over the in-sample mean absolute week-on-week change, the mean over origins, then over the
  series of a level; sMAPE over days, then the mean over series); seasonal naive and AutoETS as the
  engine runs them are scored the same way, and the published 80%/95% intervals' coverage is counted.
- False criticals (`false_criticals`): the sales forecast and the sales drops materialised by Dagster at
  the data's last day, as the pipeline runs them, then the drop detector at each of the last D days:
  the distinct critical alerts (one per run, as they are emailed) per 10,000 series-days judged. On real
  data nothing is planted, so every critical counts as false (each is listed with its sentence).
- Planted recall (`planted_recall`): generated retailers (scale 2, seeds 1..N) imported the real way,
  their forecasts and anomalies materialised: the planted store drop found when its store has a critical
  sales drop, the planted stock-out when its product and store have a critical stock risk, each planted
  churner when churned; precision is the share of critical alerts that name a planted thing.
"""

from __future__ import annotations

import multiprocessing
import shutil
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from sales_pipeline.analytics import marts
from sales_pipeline.anomalies.drops import detect_sales_drops
from sales_pipeline.defs.anomalies.assets import anomaly_assets, sales_drops
from sales_pipeline.defs.forecasting.assets import build_sales_forecast, demand_forecast
from sales_pipeline.excel.importer import ImportSettings, import_workbook
from sales_pipeline.excel.mapping import TEMPLATE, load_mapping
from sales_pipeline.forecasting import models
from sales_pipeline.forecasting.calendar import load_promotions
from sales_pipeline.forecasting.reconcile import MEMBER_SCOPES, reconcile_sales
from sales_pipeline.forecasting.runner import sales_series, store_calendars
from sales_pipeline.resources import ForecastingResource, WarehouseResource
from sales_pipeline.warehouse.db import read_frame, transaction

PROJECT = Path(__file__).resolve().parents[1]
MAPPINGS = PROJECT / "data" / "mappings"
HORIZON = 7


def load(url: str, path: Path, mapping: str | None, timezone: str) -> None:
    """Import `path` (through data/mappings/<mapping>.yaml, or the template) and refresh its daily KPIs."""
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as folder:
        folders = {name: Path(folder) / name for name in ("inbox", "archive", "rejected")}
        for where in folders.values():
            where.mkdir()
        copy = Path(shutil.copy(path, folders["inbox"] / path.name))
        settings = ImportSettings(folders["archive"], folders["rejected"], timezone=timezone, dayfirst=False)
        the_mapping = load_mapping(MAPPINGS / f"{mapping}.yaml") if mapping else TEMPLATE
        result = import_workbook(WarehouseResource(database_url=url).transaction, copy, settings, the_mapping)
        if result.status != "loaded":
            raise SystemExit(f"{path.name} did not load: {result.status} {result.reason}")
    with transaction(url) as cursor:
        cursor.execute("SELECT min(sale_date), max(sale_date) FROM core.sales")
        marts.refresh_daily_kpis(cursor, *cursor.fetchone(), timezone)


def resources(url: str, workers: int, timezone: str = "UTC") -> dict:
    return {
        "warehouse": WarehouseResource(database_url=url),
        "forecasting": ForecastingResource(timezone=timezone, workers=workers),
    }


def last_day(url: str) -> date:
    with transaction(url) as cursor:
        cursor.execute("SELECT max(day) FROM marts.daily_kpis WHERE scope = 'all'")
        return cursor.fetchone()[0]


def sundays(last: date, weeks: int) -> list[date]:
    """The last `weeks` Sundays with a full horizon of actuals after them, oldest first."""
    latest = last - timedelta(days=HORIZON)
    latest -= timedelta(days=(latest.weekday() + 1) % 7)
    return sorted(latest - timedelta(weeks=k) for k in range(weeks))


def _forecast(series: models.Series) -> models.ForecastResult:
    return models.forecast_series(series, models.ForecastSettings())


def through_pipeline(url: str, weeks: int, workers: int) -> list[dict]:
    """One row per (origin, series of the total, a store or a category): scores of ours, seasonal naive, AutoETS."""
    settings = models.ForecastSettings()
    with transaction(url) as cursor:
        kpis = read_frame(cursor, "SELECT scope, scope_id, day, revenue::float8 AS y FROM marts.daily_kpis"
                                  " WHERE scope IN ('all', 'store', 'category')", ())  # fmt: skip
        categories = dict(read_frame(cursor, "SELECT product_id, category FROM core.products", ()).itertuples(False))
    kpis["day"] = pd.to_datetime(kpis["day"])
    actual = {key: frame.set_index("day")["y"] for key, frame in kpis.groupby(["scope", "scope_id"])}
    rows = []
    # Spawned, as the runner's: this process holds connections a fork would copy.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for origin in sundays(last_day(url), weeks):
            with transaction(url) as cursor:
                calendars = store_calendars(cursor, origin, HORIZON)
                promotions = load_promotions(cursor, origin + timedelta(days=HORIZON))
                series = [
                    item for item in sales_series(cursor, origin, calendars, settings, promotions, categories)
                    if item.scope in MEMBER_SCOPES and len(item.values) >= settings.min_history_days
                ]  # fmt: skip
            results = list(pool.map(_forecast, series, chunksize=1))
            reconcile_sales(results, {item.key: item for item in series}, settings)
            for item, result in zip(series, results, strict=True):
                rows.append(_scores(item, result, origin, actual.get((item.scope, item.scope_id)), settings))
            print(f"  origin {origin}: {len(series)} series", flush=True)
    return [row for row in rows if row is not None]


def _scores(item, result, origin: date, actual: pd.Series | None, settings) -> dict | None:
    days = pd.date_range(pd.Timestamp(origin) + pd.Timedelta(days=1), periods=HORIZON, freq="D")
    truth = (actual if actual is not None else pd.Series(dtype=float)).reindex(days, fill_value=0.0).to_numpy()
    open_ = ~item.closed.to_numpy(dtype=bool)[len(item.values) : len(item.values) + HORIZON]
    scale = models._naive_scale(item.values.to_numpy(dtype=float), item.closed.to_numpy(dtype=bool)[: len(item.values)])
    if result.forecast is None or not open_.any() or scale <= 0:
        return None
    forecast = result.forecast
    candidates = {
        "ours": forecast["yhat"].to_numpy(),
        "naive": models._predict(models.SEASONAL_NAIVE, item, origin, settings),
        "autoets": models._predict(models.AUTO_ETS, item, origin, settings),
    }
    row = {"origin": origin.isoformat(), "scope": item.scope, "scope_id": item.scope_id, "model": result.model,
           "days": int(open_.sum())}  # fmt: skip
    a = truth[open_]
    for name, yhat in candidates.items():
        f = yhat[open_]
        denominator = np.abs(a) + np.abs(f)
        smape = np.divide(200 * np.abs(a - f), denominator, out=np.zeros_like(a), where=denominator >= 0.005)
        row[name] = {"mase": float(np.abs(a - f).mean() / scale), "smape_sum": float(smape.sum())}
    for level in ("80", "95"):
        lower, upper = (forecast[f"yhat_{side}_{level}"].to_numpy()[open_] for side in ("lower", "upper"))
        row[f"inside_{level}"] = int(((a >= lower) & (a <= upper)).sum())
    return row


def level_scores(rows: list[dict], scope: str) -> dict:
    """Per model: MASE (the mean over origins per series, then over series), sMAPE (over days, then series)."""
    chosen = [row for row in rows if row["scope"] == scope]
    if not chosen:
        return {}
    out = {"series": len({row["scope_id"] for row in chosen}), "days": sum(row["days"] for row in chosen)}
    for name in ("ours", "naive", "autoets"):
        per_series: dict[str, list] = {}
        for row in chosen:
            per_series.setdefault(row["scope_id"], []).append(row)
        out[f"{name}_mase"] = statistics.fmean(
            statistics.fmean(row[name]["mase"] for row in items) for items in per_series.values()
        )
        out[f"{name}_smape"] = statistics.fmean(
            sum(row[name]["smape_sum"] for row in items) / sum(row["days"] for row in items)
            for items in per_series.values()
        )
    for level in ("80", "95"):
        out[f"coverage_{level}"] = sum(row[f"inside_{level}"] for row in chosen) / out["days"]
    return out


def false_criticals(url: str, days: int, workers: int) -> dict:
    """The sales forecast and drops as Dagster runs them, then the detector on each of the last `days` days."""
    sales_forecast = build_sales_forecast(holiday_country=None)
    result = dg.materialize([sales_forecast, sales_drops], resources=resources(url, workers), raise_on_error=True)
    assert result.success
    last = last_day(url)
    criticals: dict[str, str] = {}
    with transaction(url) as cursor:
        cursor.execute("SELECT count(*) FROM ml.forecast_series WHERE target = 'sales' AND status <> 'skipped'")
        series = cursor.fetchone()[0]
        for back in range(days):
            for alert in detect_sales_drops(cursor, last - timedelta(days=back)):
                if alert.severity == "critical":
                    criticals.setdefault(alert.dedupe_key, alert.message)
    series_days = series * days
    return {
        "criticals": len(criticals), "series": series, "series_days": series_days,
        "per_10k_series_days": 10_000 * len(criticals) / series_days, "messages": sorted(criticals.values()),
    }  # fmt: skip


def planted_recall(url: str, seeds: list[int], workers: int) -> dict:
    """Generated retailers (scale 2) imported, forecast and judged: what they plant found, criticals precision."""
    from sales_pipeline.demo.retailer import generate_retailer, write_sheets_workbook
    from sales_pipeline_tests.conftest import empty_tables

    kinds = {"sales_drop": [0, 0], "stock_risk": [0, 0], "customer_churn": [0, 0]}  # found, planted
    criticals = on_planted = 0
    missed = []
    for seed in seeds:
        retailer = generate_retailer(scale=2, seed=seed)
        empty_tables(url)
        with tempfile.TemporaryDirectory(prefix="bench-planted-") as folder:
            load(url, write_sheets_workbook(Path(folder) / f"retailer_{seed}.xlsx", retailer.frames()), None, "UTC")
        forecasts = [build_sales_forecast(holiday_country=None), demand_forecast]
        dg.materialize([*forecasts, *anomaly_assets], resources=resources(url, workers), raise_on_error=True)
        judged = _judge(url, retailer.planted)
        for kind, (found, planted) in judged["kinds"].items():
            kinds[kind][0] += found
            kinds[kind][1] += planted
        criticals += judged["criticals"]
        on_planted += judged["on_planted"]
        missed += [f"seed {seed}: {what}" for what in judged["missed"]]
        print(f"  seed {seed}: {judged['kinds']}; {judged['criticals']} critical alerts", flush=True)
    found, planted = sum(f for f, _ in kinds.values()), sum(n for _, n in kinds.values())
    return {
        "retailers": len(seeds), "planted": planted, "found": found, "recall": found / planted,
        "by_kind": {kind: {"found": f, "planted": n, "recall": f / n} for kind, (f, n) in kinds.items()},
        "criticals": criticals, "precision": on_planted / criticals if criticals else None, "missed": missed,
    }  # fmt: skip


def _judge(url: str, planted) -> dict:
    """What one retailer's anomalies found of what it planted (as the tests count it), and its criticals."""
    with transaction(url) as cursor:
        active = read_frame(cursor, "SELECT kind, severity, entity_id FROM ml.anomalies WHERE active", ())
        statuses = dict(read_frame(cursor, "SELECT customer_id, status FROM ml.customer_churn", ()).itertuples(False))
    critical = active[active["severity"] == "critical"]
    have = set(zip(critical["kind"], critical["entity_id"], strict=True))
    drop = ("sales_drop", planted.sales_drop_store_id)
    stockout = ("stock_risk", f"{planted.stockout_product_id}@{planted.stockout_store_id}")
    churners = planted.churned_customer_ids
    churned = [customer for customer in churners if statuses.get(customer) == "churned"]
    entities = {drop[1], stockout[1], *churners}
    return {
        "kinds": {"sales_drop": (int(drop in have), 1), "stock_risk": (int(stockout in have), 1),
                  "customer_churn": (len(churned), len(churners))},
        "missed": [f"{kind} {entity}" for kind, entity in (drop, stockout) if (kind, entity) not in have],
        "criticals": len(critical), "on_planted": int(critical["entity_id"].isin(entities).sum()),
    }  # fmt: skip
