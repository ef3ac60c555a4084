"""Forecast every series of a target: read the history, refit only what changed, in parallel, write once.

The sales series (revenue per day, from marts.daily_kpis) are the total, each store, each category
and each product; the demand series (units per day, from core.sales) are each product in each store.
Days are calendar days in PIPELINE_TIMEZONE, as in the marts. Closed days and promotions come from
`calendar.py` (the store calendar, promotions, and the strict rule for a physical store's closures).
The total, the stores and the categories are refit together (any change to one refits the published
fit of all: each one's input hash includes the others') and reconciled to add up (`reconcile.py`).

Fanned out (FORECAST_SHARDS): each shard fits its part of the other series (the products' revenue,
every product in each store: none is reconciled), chosen by a stable hash of the series id, and hands
its results over in ml.forecast_handoff; then the whole target runs once more (`publish`), fitting and
reconciling the total, stores and categories, taking over what the shards handed on for the same input,
and writing every series in one transaction. Each series' forecast depends on its input alone, so what
is published is the same whatever the number of shards, and nothing is published before all of it is.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import statistics
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import repeat
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import execute_values

from sales_pipeline.forecasting import handoff
from sales_pipeline.forecasting.calendar import CHAIN, Promotions, load_closed_days, load_promotions
from sales_pipeline.forecasting.models import (
    COMBINATION,
    CachedFolds,
    Fold,
    ForecastResult,
    ForecastSettings,
    Series,
    digest,
    fit_cost,
    forecast_series,
)
from sales_pipeline.forecasting.reconcile import MEMBER_SCOPES, RECONCILE_CODE, reconcile_sales
from sales_pipeline.warehouse.db import Transaction, read_frame, refresh_in_turn

INLINE_BELOW = 8  # fewer series than this to refit: not worth starting worker processes


@dataclass
class ForecastRun:
    """What one run of a target did: every series' result (refitted ones) and how many were reused."""

    target: str
    origin: date | None
    series: int
    results: list[ForecastResult]
    reused: int
    data_version: str
    reconciliation: str = "not needed"
    from_shards: int = 0  # results the shards fitted and handed over (FORECAST_SHARDS above 1)

    @property
    def refitted(self) -> list[ForecastResult]:
        return [result for result in self.results if result.status != "skipped"]

    def summary(self) -> dict[str, float | int]:
        seconds = sorted(result.fit_seconds for result in self.refitted)
        return {
            "series": self.series,
            "fitted": len(self.refitted),
            "reused": self.reused,
            "from_shards": self.from_shards,
            "failed": sum(result.status == "fallback" for result in self.results),
            "skipped": sum(result.status == "skipped" for result in self.results),
            "prophet_fits": sum(result.prophet_fits for result in self.results),
            "demand_classes": dict(Counter(r.demand_class for r in self.refitted if r.demand_class)),
            "median_fit_s": round(statistics.median(seconds), 3) if seconds else 0.0,
            "p95_fit_s": round(seconds[int(0.95 * (len(seconds) - 1))], 3) if seconds else 0.0,
        }


def forecast_origin(cursor: Cursor, target: str, timezone: str, today: date | None = None) -> date | None:
    """The last day of history: the latest day with sales, but never today (a day still being sold)."""
    today = today or datetime.now(ZoneInfo(timezone)).date()
    statement = (
        "SELECT max(day) FROM marts.daily_kpis WHERE scope = 'all'"
        if target == "sales"
        else "SELECT max(core.reporting_day(sold_at, sale_date, time_given, %(tz)s)) FROM core.sales"
    )
    cursor.execute(statement, {"tz": timezone})
    latest = cursor.fetchone()[0]
    return min(latest, today - timedelta(days=1)) if latest else None


@dataclass(frozen=True)
class Shard:
    """One of `of` static parts of a target's series that are not reconciled (`number` from 0)."""

    number: int
    of: int

    def holds(self, item: Series) -> bool:
        return item.scope not in MEMBER_SCOPES and shard_of(item.scope_id, self.of) == self.number


def shard_of(series_id: str, shards: int) -> int:
    """The shard of a series: a hash of its id that every process and release agrees on (unlike hash())."""
    return int.from_bytes(hashlib.sha256(series_id.encode()).digest()[:8], "big") % shards


def forecast_target(
    transaction: Transaction,
    target: str,
    timezone: str,
    settings: ForecastSettings,
    workers: int,
    shard: Shard | None = None,
) -> ForecastRun | None:
    """Forecast every series of `target` ('sales' or 'demand') from the latest complete day; None without data.

    With a `shard`, only that shard's series, handed over to the target's next run without one instead of
    published. The history is read in one transaction and the results written in another
    (`run_forecasts`): no transaction stays open while the models fit.
    """
    with transaction() as cursor:
        origin = forecast_origin(cursor, target, timezone)
        if origin is None:
            return None
        calendars = store_calendars(cursor, origin, settings.horizon)
        if not calendars:  # no daily KPIs yet (e.g. every sale before the marts' first day): no calendar of open days
            return None
        promotions = load_promotions(cursor, origin + timedelta(days=settings.horizon))
        cursor.execute("SELECT product_id, category FROM core.products")
        categories = dict(cursor.fetchall())
        if target == "sales":
            series = sales_series(cursor, origin, calendars, settings, promotions, categories)
        else:
            series = demand_series(cursor, origin, timezone, calendars, settings, promotions, categories)
    if shard is not None:
        series = [item for item in series if shard.holds(item)]
    return run_forecasts(transaction, target, series, settings, workers, hand_over=shard is not None)


def sales_series(
    cursor: Cursor,
    origin: date,
    calendars: dict[str, pd.Series],
    settings: ForecastSettings,
    promotions: pd.DataFrame | None = None,
    categories: dict[str, str] | None = None,
) -> list[Series]:
    """Revenue per day for the total, each store, category and product, up to `origin`, with their promotions."""
    rows = read_frame(
        cursor,
        "SELECT scope, scope_id, day, revenue::float8 AS y FROM marts.daily_kpis WHERE day <= %(origin)s",
        {"origin": origin},
    )
    rows["day"] = pd.to_datetime(rows["day"])
    series = []
    categories = categories or {}
    promoted = Promotions(promotions) if promotions is not None and len(promotions) else None
    for (scope, scope_id), frame in rows.groupby(["scope", "scope_id"], sort=True):
        calendar = calendars.get(scope_id, calendars[CHAIN]) if scope == "store" else calendars[CHAIN]
        item = _series("sales", scope, scope_id, frame, origin, calendar, settings)
        if promoted is not None:
            covers = {
                "all": {},
                "store": {"store": scope_id},
                "category": {"category": scope_id},
                "product": {"product": scope_id, "category": categories.get(scope_id, "")},
            }.get(scope, {})
            item.promotion = promoted.covering(item.closed.index, **covers)
        series.append(item)
    _refit_together([item for item in series if item.scope in MEMBER_SCOPES], settings)
    return series


def _refit_together(members: list[Series], settings: ForecastSettings) -> None:
    """The reconciled series are refit together: each one's input hash includes all of theirs."""
    together = digest(RECONCILE_CODE, *(item.input_hash(settings) for item in members))
    for item in members:
        item.together_with = together


def demand_series(
    cursor: Cursor,
    origin: date,
    timezone: str,
    calendars: dict[str, pd.Series],
    settings: ForecastSettings,
    promotions: pd.DataFrame | None = None,
    categories: dict[str, str] | None = None,
) -> list[Series]:
    """Units per day for each product in each store that sold it, up to `origin`, with their promotions."""
    rows = read_frame(
        cursor,
        """
        SELECT product_id, store_id, core.reporting_day(sold_at, sale_date, time_given, %(tz)s) AS day,
               sum(quantity)::float8 AS y
        FROM core.sales
        WHERE core.reporting_day(sold_at, sale_date, time_given, %(tz)s) <= %(origin)s
        GROUP BY 1, 2, 3
        """,
        {"origin": origin, "tz": timezone},
    )
    rows["day"] = pd.to_datetime(rows["day"])
    series = []
    categories = categories or {}
    promoted = Promotions(promotions) if promotions is not None and len(promotions) else None
    for (product_id, store_id), frame in rows.groupby(["product_id", "store_id"], sort=True):
        calendar = calendars.get(store_id, calendars[CHAIN])
        item = _series("demand", "product_store", f"{product_id}@{store_id}", frame, origin, calendar, settings)
        if promoted is not None:
            category = categories.get(product_id, "")
            item.promotion = promoted.covering(item.closed.index, store=store_id, product=product_id, category=category)
        series.append(item)
    return series


def store_calendars(cursor: Cursor, origin: date, horizon: int) -> dict[str, pd.Series]:
    """Per store and for the chain ('' = CHAIN): open (True) or closed per day, history then the days ahead."""
    return {store: ~closed for store, closed in load_closed_days(cursor, origin, horizon).items()}


def _series(
    target: str,
    scope: str,
    scope_id: str,
    frame: pd.DataFrame,
    origin: date,
    open_days: pd.Series,
    settings: ForecastSettings,
) -> Series:
    days = pd.date_range(frame["day"].min(), pd.Timestamp(origin), freq="D")
    values = frame.set_index("day")["y"].reindex(days, fill_value=0.0)
    calendar = open_days.loc[days[0] :].iloc[: len(days) + settings.horizon]
    return Series(target, scope, scope_id, values, ~calendar)


def run_forecasts(
    transaction: Transaction,
    target: str,
    series: list[Series],
    settings: ForecastSettings,
    workers: int,
    hand_over: bool = False,
) -> ForecastRun:
    """Refit the series whose input changed (in `workers` processes), reuse the others, write in one transaction.

    A shard's run (`hand_over`) stores its results in ml.forecast_handoff instead; a publishing run takes
    over those fitted for the same input, writes them with its own and empties the hand-off.
    """
    hashes = {item.key: item.input_hash(settings) for item in series}
    with transaction() as cursor:
        known = _known_inputs(cursor, target)
        todo = [item for item in series if known.get(item.key) != (item.origin, hashes[item.key])]
        wanted = {item.key: (item.origin, hashes[item.key]) for item in todo}
        handed = {} if hand_over else handoff.handed_over(cursor, target, wanted)
        to_fit = [item for item in todo if item.key not in handed]
        folds = _cached_folds(cursor, target) if to_fit else {}
    jobs = [(item, settings, folds.get(item.key, {})) for item in to_fit]
    results = [*handed.values(), *_forecast_in_parallel(jobs, workers)]
    reconciliation = "not needed"
    if target == "sales" and any(result.scope in MEMBER_SCOPES for result in results):
        reconciliation = reconcile_sales(results, {item.key: item for item in series}, settings)
    with transaction() as cursor:
        if hand_over:
            handoff.hand_over(cursor, target, results)
        else:
            write_results(cursor, target, results)
            handoff.forget(cursor, target)
    version = digest(*sorted(f"{key}:{value}" for key, value in hashes.items()))
    origin = max((item.origin for item in series), default=None)
    reused = len(series) - len(todo)
    return ForecastRun(target, origin, len(series), results, reused, version, reconciliation, len(handed))


def _forecast_job(job: tuple[Series, ForecastSettings, dict]) -> ForecastResult:
    return forecast_series(*job)


def _forecast_in_parallel(jobs: list[tuple[Series, ForecastSettings, dict]], workers: int) -> list[ForecastResult]:
    if workers <= 1 or len(jobs) < INLINE_BELOW:
        return [_forecast_job(job) for job in jobs]
    # The heaviest first and one at a time: in chunks of neighbours (the light intermittent products
    # and the heavy dense ones cluster), one worker was left fitting a long chunk while the other idled.
    order = sorted(range(len(jobs)), key=lambda i: -fit_cost(*jobs[i]))
    # Spawned, not forked: the caller (a Dagster run) has threads and open connections a fork would copy.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        done = dict(zip(order, pool.map(_forecast_job, [jobs[i] for i in order]), strict=True))
    return [done[i] for i in range(len(jobs))]


def _known_inputs(cursor: Cursor, target: str) -> dict[tuple[str, str, str], tuple[date, str]]:
    cursor.execute("SELECT scope, scope_id, origin, input_hash FROM ml.forecast_series WHERE target = %s", (target,))
    return {(target, scope, scope_id): (origin, digest_) for scope, scope_id, origin, digest_ in cursor.fetchall()}


def _cached_folds(cursor: Cursor, target: str) -> dict[tuple[str, str, str], CachedFolds]:
    rows = read_frame(
        cursor,
        "SELECT scope, scope_id, origin, model, input_hash, array_agg(yhat ORDER BY day) AS yhat"
        " FROM ml.backtest_forecasts WHERE target = %(target)s GROUP BY 1, 2, 3, 4, 5",
        {"target": target},
    )
    folds: dict[tuple[str, str, str], dict] = {}
    for row in rows.itertuples(index=False):
        folds.setdefault((target, row.scope, row.scope_id), {})[(row.origin, row.model)] = (
            row.input_hash,
            np.asarray(row.yhat, dtype=float),
        )
    return folds


def write_results(cursor: Cursor, target: str, results: list[ForecastResult]) -> None:
    """Replace what the refitted series published, their folds and scores; earlier origins' forecasts stay."""
    if not results:
        return
    refresh_in_turn(cursor, f"ml.forecasts:{target}")
    scopes = [result.scope for result in results]
    scope_ids = [result.scope_id for result in results]
    keys = "(scope, scope_id) IN (SELECT unnest(%(scopes)s::text[]), unnest(%(ids)s::text[]))"
    params = {"target": target, "scopes": scopes, "ids": scope_ids}
    cursor.execute(f"DELETE FROM ml.forecast_accuracy WHERE target = %(target)s AND {keys}", params)
    _delete_stale_folds(cursor, keys, params, results)
    cursor.execute(
        f"DELETE FROM ml.forecasts WHERE target = %(target)s AND origin = %(origin)s AND {keys}",
        params | {"origin": results[0].origin},
    )
    series_rows = [
        (target, r.scope, r.scope_id, r.origin, r.input_hash, r.status, r.model, r.reason, r.history_days,
         r.fit_seconds, r.sigma, r.demand_class, _finite(r.adi), _finite(r.cv2), r.reconciliation)
        for r in results
    ]  # fmt: skip
    execute_values(
        cursor,
        """
        INSERT INTO ml.forecast_series AS s
            (target, scope, scope_id, origin, input_hash, status, model, reason, history_days, fit_seconds, sigma,
             demand_class, adi, cv2, reconciliation)
        VALUES %s
        ON CONFLICT (target, scope, scope_id) DO UPDATE SET
            origin = EXCLUDED.origin, input_hash = EXCLUDED.input_hash, status = EXCLUDED.status,
            model = EXCLUDED.model, reason = EXCLUDED.reason, history_days = EXCLUDED.history_days,
            fit_seconds = EXCLUDED.fit_seconds, sigma = EXCLUDED.sigma, demand_class = EXCLUDED.demand_class,
            adi = EXCLUDED.adi, cv2 = EXCLUDED.cv2, reconciliation = EXCLUDED.reconciliation, updated_at = now()
        """,
        series_rows,
    )
    _insert(cursor, "ml.forecasts", _forecast_rows(target, results))
    _insert(cursor, "ml.backtest_forecasts", _fold_rows(target, results))
    _insert(cursor, "ml.forecast_accuracy", _accuracy_rows(target, results))
    # Statistics taken before this write call the tables empty (a first run), miss the newest origin or a
    # target written since: the anomalies' joins then loop row by row. At 1M order lines the stock-out
    # risk's join of the latest forecasts took over four minutes instead of 0.3 s, the sales drops' query
    # of the backtest folds 94 s instead of 0.3 s.
    cursor.execute("ANALYZE ml.forecasts, ml.backtest_forecasts, ml.forecast_accuracy")


def _delete_stale_folds(cursor: Cursor, keys: str, params: dict, results: list[ForecastResult]) -> None:
    """Delete the refitted series' stored folds but the ones read back from the table, which stay unchanged.

    Only the others are written then (`_fold_rows`): a daily run reads back nearly all of them.
    """
    reused = [(r.scope, r.scope_id, f.origin, f.model, f.input_hash) for r in results for f in r.folds if _stored(f)]
    names = ("kept_scopes", "kept_ids", "kept_origins", "kept_models", "kept_hashes")
    kept = {name: [row[i] for row in reused] for i, name in enumerate(names)}
    # NOT EXISTS, not NOT IN: a NOT IN list over work_mem is searched row by row (at 1M order lines
    # 1.7M stored folds against 180k kept ones: hours); the anti-join hashes it, spilling if it must (2 s).
    cursor.execute(
        f"""
        DELETE FROM ml.backtest_forecasts AS stored WHERE target = %(target)s AND {keys}
          AND NOT EXISTS (
            SELECT FROM unnest(%(kept_scopes)s::text[], %(kept_ids)s::text[], %(kept_origins)s::date[],
                               %(kept_models)s::text[], %(kept_hashes)s::text[])
                AS kept(scope, scope_id, origin, model, input_hash)
            WHERE (kept.scope, kept.scope_id, kept.origin, kept.model, kept.input_hash)
                = (stored.scope, stored.scope_id, stored.origin, stored.model, stored.input_hash))
        """,
        params | kept,
    )


def _stored(fold: Fold) -> bool:
    """A fold read back from ml.backtest_forecasts as it is stored; not a combination (the best two can change)."""
    return fold.reused and fold.model != COMBINATION


def _forecast_rows(target: str, results: list[ForecastResult]) -> tuple[list[str], Iterable[tuple]]:
    columns = ["target", "scope", "scope_id", "origin", "day", "model", "yhat", "yhat_lower_80", "yhat_upper_80",
               "yhat_lower_95", "yhat_upper_95", "closed"]  # fmt: skip
    # Column lists zipped, not itertuples (a namedtuple per row): a third less time for the same tuples.
    rows = (
        (target, r.scope, r.scope_id, r.origin, *day)
        for r in results
        if r.forecast is not None
        for day in zip(
            r.forecast["day"].tolist(), repeat(r.model), *(_floats(r.forecast[name]) for name in columns[6:11]),
            r.forecast["closed"].astype(bool).tolist(),
        )
    )  # fmt: skip
    return columns, rows


def _floats(values: pd.Series) -> list[float]:
    return values.astype(float).tolist()


def _fold_rows(target: str, results: list[ForecastResult]) -> tuple[list[str], Iterable[tuple]]:
    columns = ["target", "scope", "scope_id", "origin", "model", "day", "yhat", "input_hash"]
    rows = (
        (target, r.scope, r.scope_id, fold.origin, fold.model, fold.origin + timedelta(days=h + 1), float(value),
         fold.input_hash)
        for r in results
        for fold in r.folds
        if not _stored(fold)
        for h, value in enumerate(fold.yhat)
    )  # fmt: skip
    return columns, rows


def _accuracy_rows(target: str, results: list[ForecastResult]) -> tuple[list[str], Iterable[tuple]]:
    columns = ["target", "scope", "scope_id", "model", "origins", "first_origin", "last_origin", "mase", "smape",
               "mae", "rmse", "chosen", "scored_days", "trivially_zero"]  # fmt: skip
    rows = ((target, r.scope, r.scope_id, *(row[name] for name in columns[3:])) for r in results for row in r.accuracy)
    return columns, rows


def _finite(value: float | None) -> float | None:
    return value if value is not None and np.isfinite(value) else None


def _insert(cursor: Cursor, table: str, columns_and_rows: tuple[list[str], Iterable[tuple]]) -> None:
    columns, rows = columns_and_rows
    execute_values(cursor, f"INSERT INTO {table} ({', '.join(columns)}) VALUES %s", rows, page_size=5000)
