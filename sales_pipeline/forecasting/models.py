"""One series, forecast: the candidates, the rolling-origin backtest that picks one, the demand classes.

How a series is forecast (`forecast_series`):

1. Too little history (under `min_history_days`): not forecast, and the reason is recorded.
2. Its demand class (Syntetos-Boylan, on the open days of the 8 weeks up to the latest backtest
   origin, so that it does not flip from one day to the next): ADI, the mean interval between selling
   days, and CV², the squared coefficient of variation of the non-zero days, give *smooth* (ADI < 1.32,
   CV² < 0.49), *erratic* (ADI < 1.32), *intermittent* (CV² < 0.49) or *lumpy*.
3. Candidates: seasonal naive always (the same weekday last week; the latest one on promotion as the
   day is, so the Monday after a promotion week is forecast by a Monday without one), the floor every
   model must beat.
   - Intermittent and lumpy series: TSB (Teunter-Syntetos-Babai: the chance of a sale on a day times
     the size of a sale, each exponentially smoothed, the chance updated every day so that a product
     that stopped selling fades). It publishes, seasonal naive scored beside it: by absolute error a
     forecast of zero often wins there, and stock planning needs the rate, not the most likely day.
     One that sells on more than half its open days (ADI under 2: a channel or a category of big,
     uneven orders, as Superstore's Technology and regions, rather than a product selling now and
     then) has AutoETS beside TSB, and the better of the two rates by backtest publishes: there TSB's
     slowly smoothed rate lost to AutoETS's level and weekly pattern on held-out weeks.
   - Smooth and erratic series: AutoETS (undamped trends only) and AutoTheta, both on the last 26 weeks,
     from statsforecast, weekly seasonality, fast; Prophet with `prophet_min_days` of history at every
     backtest origin (weekly seasonality, yearly with two years, public holidays, promotions); and the
     mean of the best two of them (the M4/M5 lesson: a combination is rarely worse than its parts). A
     series with known promotions only gets Prophet, the candidate that takes them as an input.
4. Rolling-origin backtest: each candidate forecasts 7 days from each of the last `backtest_origins`
   Sundays that have 7 days of actuals after them. Origins on a fixed weekday mean that from one day
   to the next the folds are the same, so a fold is refit only when its own input changed (its hash).
5. The candidate with the lowest MASE publishes (ties go to the simpler) and the reason says so.
6. Intervals: yhat ± z·σ, σ = the RMSE of the published model's backtest errors (out of sample, so
   wider and more honest than a model's in-sample noise), clipped at zero; never negative. On the
   Rossmann stores they hold 82% and 93% of held-out days (benchmarks/bench_accuracy.py).

Scores (`score_folds`): MASE scales each fold's mean absolute error by the in-sample mean absolute
week-on-week change; sMAPE leaves out the days on which forecast and actual are both zero (nothing to
be relatively wrong about); a series whose scored days were all zero forecasts of zero sales is marked
`trivially_zero`, and the accuracy summaries leave it out of their medians and count it apart.

Closed days (the store calendar, `sales_pipeline/forecasting/calendar.py`) are not history to learn
from: they are left out of fits and scores, and forecast closed (0) when known ahead.

Prophet runs fast here: no uncertainty sampling (the intervals come from the backtest), L-BFGS
without the Newton fallback (which can stall for minutes; a fit that fails falls back to seasonal
naive and says so), its input written with orjson, no daily seasonality, and less pandas around
Stan (its features built in numpy, only `yhat` predicted: the same numbers to the last bit).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import pandas as pd

# Importing Prophet logs "Importing plotly failed" at ERROR: plotly draws its interactive plots, and
# nothing here draws any. Its logger is quietened before any import of prophet, here or in a worker.
logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)

PROPHET = "prophet"
SEASONAL_NAIVE = "seasonal_naive"
TSB = "tsb"
AUTO_ETS = "auto_ets"
AUTO_THETA = "auto_theta"
COMBINATION = "combination"  # the mean of the best two candidates
SIMPLICITY = (SEASONAL_NAIVE, TSB, AUTO_THETA, AUTO_ETS, COMBINATION, PROPHET)  # ties go to the first
LABELS = {
    PROPHET: "Prophet",
    SEASONAL_NAIVE: "seasonal naive",
    TSB: "TSB",
    AUTO_ETS: "AutoETS",
    AUTO_THETA: "AutoTheta",
    COMBINATION: "the combination",
}
# Seconds per fit relative to AutoETS (bench_forecast.py's series, one process); the rest take next to nothing.
FIT_COST = {AUTO_ETS: 1.0, AUTO_THETA: 1.4, PROPHET: 2.5}
INTERMITTENT_CLASSES = ("intermittent", "lumpy")
MOSTLY_SELLING_ADI = 2.0  # an intermittent series selling on more than half its open days: AutoETS competes with TSB
ADI_CUT, CV2_CUT = 1.32, 0.49  # Syntetos-Boylan
Z80, Z95 = 1.2816, 1.9600
HALF_CENT = 0.005  # under it, a forecast rounds to zero: TSB's rate of a product long silent decays towards it
WEEK = 7
# The code that turns a series into its forecast: this module. The runner builds the series (their
# values and calendars are in the input hash already) and stores results, so editing it refits nothing.
ENGINE_SOURCES = (Path(__file__),)


def digest(*parts: str | bytes) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\x1f")
    return hasher.hexdigest()


def code_hash(sources: Iterable[bytes]) -> str:
    """A short hash of source texts: the engine's, in every forecast's cache key and in the benchmarks' reports."""
    return digest(*sources)[:12]


def engine_code_hash(paths: Iterable[Path] = ENGINE_SOURCES) -> str:
    """The hash of the engine's source as it is on disk now (a benchmark checks it did not change as it ran)."""
    return code_hash(path.read_bytes() for path in paths)


ENGINE_CODE = engine_code_hash()  # the engine this process imported


@dataclass(frozen=True)
class ForecastSettings:
    """What decides a forecast; its fingerprint (these, the engine's code, Prophet's version) is in every input hash."""

    horizon: int = 7
    backtest_origins: int = 4
    holiday_country: str | None = None  # ISO code for public holidays (the `holidays` package), None for none
    min_history_days: int = 28  # shorter series are not forecast
    prophet_min_days: int = 56  # history Prophet needs at every backtest origin
    yearly_min_days: int = 730  # yearly seasonality only with two years or more
    tsb_alpha: float = 0.1  # TSB: smoothing of a sale's size
    tsb_beta: float = 0.05  # TSB: smoothing of the chance of a sale on a day
    ets_days: int = 182  # the history AutoETS is fitted on
    theta_days: int = 182  # the history AutoTheta is fitted on (52 weeks: twice the time, no better)
    seasonality_mode: str = "multiplicative"  # retail's weekly pattern scales with its level
    engine_code: str = ENGINE_CODE  # changed model code: every series and fold is refit, none reused stale

    @cached_property
    def fingerprint(self) -> str:
        # The installed versions, read without importing Prophet (seconds) into the process that hashes.
        versions = (importlib.metadata.version(name) for name in ("prophet", "statsforecast"))
        return digest(repr(self), *versions)[:16]


@dataclass
class Series:
    """One daily series up to its origin (the last day of history), with its calendar.

    `values` runs day by day from the first day with data to the origin; `closed` and `promotion`
    run from the first day to the origin plus the horizon (the future part is what is known ahead).
    """

    target: str  # sales (revenue) | demand (units)
    scope: str
    scope_id: str
    values: pd.Series  # float, DatetimeIndex of consecutive days
    closed: pd.Series  # bool, same start, horizon days longer
    promotion: pd.Series | None = None  # 0/1 known promotion days, same index as closed
    # What else the published forecast depends on: the hash of the other series it is reconciled with.
    together_with: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target, self.scope, self.scope_id)

    @property
    def origin(self) -> date:
        return self.values.index[-1].date()

    def input_hash(self, settings: ForecastSettings) -> str:
        """Changes when anything the published forecast depends on changes."""
        return self._hash(settings, len(self.values), len(self.closed), "publish", self.together_with)

    def fold_hash(self, settings: ForecastSettings, origin: date, model: str) -> str:
        upto = (pd.Timestamp(origin) - self.values.index[0]).days + 1
        return self._hash(settings, upto, upto + settings.horizon, model)

    def uses_yearly_seasonality(self, settings: ForecastSettings) -> bool:
        """Decided on the whole series, so that the backtest folds judge the model that is published."""
        return len(self.values) >= settings.yearly_min_days

    def _hash(self, settings: ForecastSettings, upto: int, known_upto: int, what: str, extra: str = "") -> str:
        # The yearly switch is decided on the whole series: a fold of a series that just reached two
        # years is another model than the same fold a day before.
        yearly = str(self.uses_yearly_seasonality(settings))
        parts = [settings.fingerprint, what, extra, yearly, str(self.values.index[0].date())]
        parts.append(self.values.to_numpy(dtype=float)[:upto].tobytes())
        parts.append(self.closed.to_numpy(dtype=bool)[:known_upto].tobytes())
        if self.promotion is not None:
            parts.append(self.promotion.to_numpy(dtype=float)[:known_upto].tobytes())
        return digest(*parts)


@dataclass
class Fold:
    """One candidate's 7-day forecast from one backtest origin."""

    origin: date
    model: str
    input_hash: str
    yhat: np.ndarray
    reused: bool = False


@dataclass
class ForecastResult:
    """What forecasting one series produced: the published forecast, why that model, and its scores."""

    target: str
    scope: str
    scope_id: str
    origin: date
    input_hash: str
    status: str  # forecast | fallback (Prophet failed, a simple model published) | skipped
    model: str | None
    reason: str
    history_days: int
    fit_seconds: float = 0.0
    prophet_fits: int = 0
    sigma: float | None = None
    demand_class: str | None = None
    adi: float | None = None
    cv2: float | None = None
    reconciliation: str | None = None
    forecast: pd.DataFrame | None = None  # day, yhat, its 80% and 95% bounds, closed
    folds: list[Fold] = field(default_factory=list)
    accuracy: list[dict] = field(default_factory=list)
    error: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target, self.scope, self.scope_id)


CachedFolds = dict[tuple[date, str], tuple[str, np.ndarray]]  # (origin, model) -> (input hash, yhat)


def forecast_series(
    series: Series, settings: ForecastSettings, cached_folds: CachedFolds | None = None
) -> ForecastResult:
    """Backtest the candidates, pick the best, publish its next `horizon` days (see the module doc)."""
    started = time.perf_counter()
    open_days = ~series.closed.iloc[: len(series.values)].to_numpy()
    result = ForecastResult(
        *series.key, series.origin, series.input_hash(settings), "skipped", None, "", int(open_days.sum())
    )
    if len(series.values) < settings.min_history_days:
        result.reason = f"{len(series.values)} days of history: needs {settings.min_history_days} before it is forecast"
        return result

    origins, (result.demand_class, result.adi, result.cv2), candidates = _plan(series, settings, open_days)
    failures = _backtest(result, series, settings, origins, candidates, cached_folds or {})
    result.accuracy = score_folds(series, result.folds, settings)
    scores = {row["model"]: row for row in result.accuracy}
    if PROPHET in candidates and PROPHET not in scores:
        result.status, result.error = "fallback", failures[0] if failures else "Prophet produced no backtest"
    parts = _add_combination(result, series, settings, scores, candidates)
    # An intermittent series publishes a rate (TSB's, or AutoETS's level where it sells on most days):
    # scored by absolute error a forecast of zero often wins there, and stock planning needs the rate,
    # not the most likely day (nothing sold).
    rates = {model: scores[model] for model in (TSB, AUTO_ETS) if model in scores}
    chosen = (_choose(rates) if rates else TSB) if TSB in candidates else _choose(scores)
    result.reason = _reason(chosen, scores, parts, result, len(origins), settings)
    chosen, yhat = _predict_published(result, chosen, parts, series, settings)
    if result.status != "fallback":
        result.status = "forecast"
    result.model = chosen
    for row in result.accuracy:
        row["chosen"] = row["model"] == chosen
    result.sigma = scores[chosen]["rmse"] if chosen in scores else _in_sample_sigma(series, open_days)
    result.forecast = with_intervals(series.closed.index[len(series.values) :], series, yhat, result.sigma, settings)
    result.fit_seconds = time.perf_counter() - started
    return result


def _plan(
    series: Series, settings: ForecastSettings, open_days: np.ndarray
) -> tuple[list[date], tuple[str, float, float], list[str]]:
    """The backtest origins, the demand class (with ADI and CV²) and the candidates of a series (steps 2 to 4)."""
    origins = backtest_origins(series, settings)
    demand = demand_class(series, open_days, origins[-1] if origins else None)
    return origins, demand, _candidates(series, settings, origins, demand[0], demand[1])


def fit_cost(series: Series, settings: ForecastSettings, cached_folds: CachedFolds) -> float:
    """About how long `forecast_series` takes on `series`, relative: the fits of its new folds and its published one.

    A run hands out the heaviest series first, so that no worker is left fitting a long one alone at the end.
    """
    if len(series.values) < settings.min_history_days:
        return 0.0
    origins, _, candidates = _plan(series, settings, ~series.closed.iloc[: len(series.values)].to_numpy())

    def fitted(origin: date, model: str) -> bool:
        cached = cached_folds.get((origin, model))
        return cached is not None and cached[0] == series.fold_hash(settings, origin, model)

    new_folds = sum(FIT_COST.get(model, 0.0) for origin in origins for model in candidates if not fitted(origin, model))
    return new_folds + max(FIT_COST.get(model, 0.0) for model in candidates)


def demand_class(series: Series, open_days: np.ndarray, until: date | None) -> tuple[str, float, float]:
    """Syntetos-Boylan class, ADI and CV² of the open days of the 8 weeks up to `until` (module doc, step 2).

    Measured up to the latest backtest origin, not the latest day, so that a series near a boundary
    does not switch candidates (and refit its folds) from one day to the next.
    """
    upto = _history_at(series, until) if until else len(series.values)
    recent = series.values.to_numpy(dtype=float)[:upto][-8 * WEEK :][open_days[:upto][-8 * WEEK :]]
    selling = recent[recent > 0]
    if not len(selling):
        return "lumpy", float(len(recent) or np.inf), 0.0
    adi = len(recent) / len(selling)
    cv2 = float(np.var(selling) / np.mean(selling) ** 2) if len(selling) > 1 else 0.0
    if adi < ADI_CUT:
        return ("smooth" if cv2 < CV2_CUT else "erratic"), adi, cv2
    return ("intermittent" if cv2 < CV2_CUT else "lumpy"), adi, cv2


def _candidates(series: Series, settings: ForecastSettings, origins: list[date], demand: str, adi: float) -> list[str]:
    """Seasonal naive always; TSB for intermittent demand (AutoETS beside it for a series selling on most days),
    else the statistical models and Prophet (module doc)."""
    if demand in INTERMITTENT_CLASSES:
        return [SEASONAL_NAIVE, TSB, AUTO_ETS] if origins and adi < MOSTLY_SELLING_ADI else [SEASONAL_NAIVE, TSB]
    history = _history_at(series, origins[0]) if origins else 0
    with_prophet = [PROPHET] if origins and history >= settings.prophet_min_days else []
    if _has_promotions(series, len(series.values)):
        return [SEASONAL_NAIVE, *with_prophet]  # the one candidate that takes promotions as an input
    return [SEASONAL_NAIVE, AUTO_THETA, AUTO_ETS, *with_prophet] if origins else [SEASONAL_NAIVE]


def _has_promotions(series: Series, upto: int) -> bool:
    if series.promotion is None:
        return False
    open_ = ~series.closed.to_numpy(dtype=bool)[:upto]
    return series.promotion.iloc[:upto][open_].nunique() > 1


def _backtest(
    result: ForecastResult,
    series: Series,
    settings: ForecastSettings,
    origins: list[date],
    candidates: list[str],
    cached_folds: CachedFolds,
) -> list[str]:
    """Add each candidate's fold at each origin to `result`, reusing a cached fold whose inputs are unchanged.

    Returns the failures, one sentence each: a fit that cannot work must not stop the other folds.
    """
    failures: list[str] = []
    for origin in origins:
        for model in candidates:
            fold_hash = series.fold_hash(settings, origin, model)
            cached = cached_folds.get((origin, model))
            if cached is not None and cached[0] == fold_hash:
                result.folds.append(Fold(origin, model, fold_hash, cached[1], reused=True))
                continue
            try:
                yhat = _predict(model, series, origin, settings)
            except Exception as error:  # a fit that cannot work must not stop the other series
                failures.append(f"{model} at origin {origin}: {error}")
                continue
            result.prophet_fits += model == PROPHET
            result.folds.append(Fold(origin, model, fold_hash, yhat))
    return failures


def _add_combination(
    result: ForecastResult, series: Series, settings: ForecastSettings, scores: dict[str, dict], candidates: list[str]
) -> tuple[str, ...]:
    """Score the mean of the two best fitted candidates as one more candidate; returns those two (or none)."""
    fitted = [model for model in scores if model not in (SEASONAL_NAIVE, TSB) and scores[model]["mase"] is not None]
    if len(fitted) < 2:
        return ()
    parts = tuple(sorted(fitted, key=lambda model: scores[model]["mase"])[:2])
    by_origin: dict[date, list[Fold]] = {}
    for fold in result.folds:
        if fold.model in parts:
            by_origin.setdefault(fold.origin, []).append(fold)
    for origin, folds in sorted(by_origin.items()):
        if len(folds) == 2:
            fold_hash = digest(*(fold.input_hash for fold in folds))
            reused = all(fold.reused for fold in folds)
            result.folds.append(Fold(origin, COMBINATION, fold_hash, (folds[0].yhat + folds[1].yhat) / 2, reused))
    combined = score_folds(series, [fold for fold in result.folds if fold.model == COMBINATION], settings)
    result.accuracy += combined
    scores.update({row["model"]: row for row in combined})
    return parts


def _predict_published(
    result: ForecastResult, chosen: str, parts: tuple[str, ...], series: Series, settings: ForecastSettings
) -> tuple[str, np.ndarray]:
    """The chosen model's next days; seasonal naive instead, with the reason recorded, if the fit fails."""
    try:
        models = parts if chosen == COMBINATION else (chosen,)
        yhat = np.mean([_predict(model, series, series.origin, settings) for model in models], axis=0)
        result.prophet_fits += PROPHET in models
        return chosen, yhat
    except Exception as error:
        result.status, result.error = "fallback", f"{chosen} at origin {series.origin}: {error}"
        result.reason = f"{LABELS[chosen]} failed ({error}); seasonal naive published instead"
        return SEASONAL_NAIVE, _predict(SEASONAL_NAIVE, series, series.origin, settings)


def backtest_origins(series: Series, settings: ForecastSettings) -> list[date]:
    """The last `backtest_origins` Sundays with a full horizon of actuals after them (oldest first)."""
    last = series.origin - timedelta(days=settings.horizon)
    latest_sunday = last - timedelta(days=(last.weekday() + 1) % WEEK)
    first_allowed = series.values.index[0].date() + timedelta(days=settings.min_history_days - 1)
    origins = [latest_sunday - timedelta(weeks=k) for k in range(settings.backtest_origins)]
    return sorted(origin for origin in origins if origin >= first_allowed)


def score_folds(series: Series, folds: list[Fold], settings: ForecastSettings) -> list[dict]:
    """MASE, sMAPE, MAE and RMSE per model over its folds, open days only, against today's actuals.

    MASE scales each fold's mean absolute error by the in-sample mean absolute week-on-week change
    of the history up to that fold's origin, then averages the folds (as in the M4 competition).
    sMAPE leaves out the days where forecast and actual are both zero (to the cent); with no other day it
    is NULL and the series is `trivially_zero`.
    """
    values = series.values.to_numpy(dtype=float)
    closed = series.closed.to_numpy(dtype=bool)
    start = series.values.index[0]
    rows = []
    for model in dict.fromkeys(fold.model for fold in folds):
        errors, actuals, predicted, scaled = [], [], [], []
        model_folds = [fold for fold in folds if fold.model == model]
        for fold in model_folds:
            at = (pd.Timestamp(fold.origin) - start).days + 1
            window = slice(at, at + settings.horizon)
            open_ = ~closed[window]
            actual, yhat = values[window][open_], fold.yhat[open_]
            if not len(actual):
                continue
            errors.append(actual - yhat)
            actuals.append(actual)
            predicted.append(yhat)
            scale = _naive_scale(values[:at], closed[:at])
            if scale > 0:
                scaled.append(np.abs(actual - yhat).mean() / scale)
        if not errors:
            continue
        error, actual, yhat = np.concatenate(errors), np.concatenate(actuals), np.concatenate(predicted)
        denominator = np.abs(actual) + np.abs(yhat)
        something = denominator >= HALF_CENT  # a forecast that rounds to 0.00 for a day that sold nothing: both zero
        ratios = 2 * np.abs(error[something]) / denominator[something]
        rows.append(
            {
                "model": model,
                "origins": len(model_folds),
                "first_origin": min(fold.origin for fold in model_folds),
                "last_origin": max(fold.origin for fold in model_folds),
                "mase": float(np.mean(scaled)) if len(scaled) == len(errors) else None,
                "smape": float(100 * ratios.mean()) if len(ratios) else None,
                "mae": float(np.abs(error).mean()),
                "rmse": float(np.sqrt(np.mean(error**2))),
                "scored_days": len(error),
                "trivially_zero": not something.any(),
                "chosen": False,
            }
        )
    return rows


def _naive_scale(values: np.ndarray, closed: np.ndarray) -> float:
    pairs = ~closed[WEEK:] & ~closed[:-WEEK]
    changes = np.abs(values[WEEK:] - values[:-WEEK])[pairs]
    return float(changes.mean()) if len(changes) else 0.0


def _choose(scores: dict[str, dict]) -> str:
    """The model with the lowest MASE (MAE when the history has no week-on-week change); ties go to the simpler."""

    def loss(model: str) -> tuple[float, int]:
        row = scores[model]
        return (row["mase"] if row["mase"] is not None else row["mae"], SIMPLICITY.index(model))

    return min(scores, key=loss) if scores else SEASONAL_NAIVE


def _reason(
    chosen: str,
    scores: dict[str, dict],
    parts: tuple[str, ...],
    result: ForecastResult,
    origins: int,
    settings: ForecastSettings,
) -> str:
    def mase(model: str) -> str:
        value = scores.get(model, {}).get("mase")
        return "n/a" if value is None else f"{value:.2f}"

    def label(model: str) -> str:
        return (
            " and ".join(LABELS[p] for p in parts).join(("the mean of ", "")) if model == COMBINATION else LABELS[model]
        )

    if not origins:
        return "too little history for a backtest: seasonal naive published"
    if result.error and PROPHET not in scores:
        return f"Prophet failed ({result.error}); {label(chosen)} published"
    demand = f"{result.demand_class} (a sale every {result.adi:.1f} open days, CV² {result.cv2:.2f})"
    if chosen == TSB:
        against = "".join(f", {LABELS[m]} {mase(m)}" for m in (AUTO_ETS, SEASONAL_NAIVE) if m in scores)
        return f"{demand}: its TSB daily rate (MASE {mase(TSB)}{against})"
    others = sorted((m for m in scores if m != chosen), key=lambda m: scores[m]["mase"] or np.inf)
    against = ", ".join(f"{label(m)} {mase(m)}" for m in others)
    if chosen == SEASONAL_NAIVE and len(scores) == 1:
        return (
            f"{demand}; under {settings.prophet_min_days} days of history at the first backtest origin: seasonal naive"
        )
    verb = "is the floor nothing beats" if chosen == SEASONAL_NAIVE else "wins"
    return f"{demand}; {label(chosen)} {verb}: MASE {mase(chosen)} over {origins} origins ({against})"


def _predict(model: str, series: Series, origin: date, settings: ForecastSettings) -> np.ndarray:
    """`model`'s forecast of the `horizon` days after `origin`, from the history up to `origin`; 0 on closed days."""
    upto = (pd.Timestamp(origin) - series.values.index[0]).days + 1
    values = series.values.to_numpy(dtype=float)[:upto]
    closed = series.closed.to_numpy(dtype=bool)
    future_closed = closed[upto : upto + settings.horizon]
    if model == SEASONAL_NAIVE:
        promotion = series.promotion.to_numpy(dtype=float) if series.promotion is not None else np.zeros(len(closed))
        yhat = _seasonal_naive(values, closed[:upto], promotion[: upto + settings.horizon], settings.horizon)
    elif model == TSB:
        yhat = np.full(settings.horizon, tsb_rate(values[~closed[:upto]], settings.tsb_alpha, settings.tsb_beta))
    elif model in (AUTO_ETS, AUTO_THETA):
        yhat = _statsforecast(model, _open_filled(values, closed[:upto]), settings)
    else:
        yhat = _prophet(series, upto, settings)
    return np.where(future_closed, 0.0, np.maximum(yhat, 0.0))


def tsb_rate(values: np.ndarray, alpha: float, beta: float) -> float:
    """TSB's expected demand per open day: the smoothed chance of a sale times the smoothed size of a sale.

    The chance is smoothed over every open day from the first four weeks' share of selling days, the size
    over the days with a sale from the first four sales' mean.
    """
    selling = values > 0
    if not selling.any():
        return 0.0
    sizes = values[selling]
    chance = _smoothed(float(selling[: 4 * WEEK].mean()), selling.astype(float), beta)
    return chance * _smoothed(float(sizes[:4].mean()), sizes, alpha)


def _smoothed(start: float, observed: np.ndarray, weight: float) -> float:
    """The level after `level += weight * (y - level)` for each y in turn, as one weighted sum.

    The same as the loop to rounding (1e-14 relative), 40 times faster on two years of days: the loop was
    most of the fitting time of a retailer's tens of thousands of intermittent product-and-store series.
    """
    decay = (1.0 - weight) ** np.arange(len(observed) - 1, -1, -1)
    return (1.0 - weight) ** len(observed) * start + weight * float(decay @ observed)


def _open_filled(values: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """The history with each closed day replaced by its weekday's latest open value (else the open mean)."""
    frame = pd.Series(np.where(closed, np.nan, values))
    filled = frame.groupby(np.arange(len(frame)) % WEEK).ffill()
    return filled.fillna(frame.mean() if (~closed).any() else 0.0).to_numpy()


def _statsforecast(model: str, values: np.ndarray, settings: ForecastSettings) -> np.ndarray:
    from statsforecast.models import AutoETS, AutoTheta

    if model == AUTO_ETS:
        # Damped trends are two thirds of AutoETS's time and, over a week ahead, next to no change: on
        # bench_forecast's 100 series no forecast moved (benchmarks/README.md).
        fitted, days = AutoETS(season_length=WEEK, damped=False), settings.ets_days
    else:
        fitted, days = AutoTheta(season_length=WEEK), settings.theta_days
    return np.asarray(fitted.forecast(y=values[-days:], h=settings.horizon)["mean"], dtype=float)


def _seasonal_naive(values: np.ndarray, closed: np.ndarray, promotion: np.ndarray, horizon: int) -> np.ndarray:
    """The same weekday's value a week before: the latest open one on promotion as the day is, else the latest open.

    `promotion` runs to the end of the horizon: the Monday after a promotion week is forecast by the
    latest Monday without one, not by the promotion's (its dip after the promotion is expected).
    """
    yhat = np.zeros(horizon)
    for h in range(horizon):
        same_weekday = np.arange(len(values) - WEEK + (h % WEEK), -1, -WEEK)
        open_ = same_weekday[~closed[same_weekday]]
        alike = open_[promotion[open_] == promotion[len(values) + h]]
        picked = alike if len(alike) else open_
        yhat[h] = values[picked[0]] if len(picked) else 0.0
    return yhat


def _prophet(series: Series, upto: int, settings: ForecastSettings) -> np.ndarray:
    import cmdstanpy

    # cmdstanpy logs two lines per fit and Prophet warns about yearly seasonality on folds a few days
    # short of two years (on purpose: see above); a run makes thousands of fits. Prophet is imported
    # first: its import sets its logger's level.
    prophet_class = _prophet_class()
    cmdstanpy.disable_logging()
    logging.getLogger("prophet").setLevel(logging.ERROR)

    history = pd.DataFrame({"ds": series.values.index[:upto], "y": series.values.to_numpy(dtype=float)[:upto]})
    open_ = ~series.closed.to_numpy(dtype=bool)[:upto]
    future = pd.DataFrame({"ds": series.closed.index[upto : upto + settings.horizon]})
    model = prophet_class(
        weekly_seasonality=True,
        yearly_seasonality=series.uses_yearly_seasonality(settings),
        daily_seasonality=False,
        seasonality_mode=settings.seasonality_mode,
        uncertainty_samples=0,
    )
    model.stan_backend = _stan_backend()
    if settings.holiday_country:
        model.add_country_holidays(country_name=settings.holiday_country)
    if _has_promotions(series, upto):
        model.add_regressor("promotion", mode="multiplicative")
        history["promotion"] = series.promotion.to_numpy(dtype=float)[:upto]
        future["promotion"] = series.promotion.to_numpy(dtype=float)[upto : upto + settings.horizon]
    model.fit(history[open_])
    return model.yhat(future)


@cache
def _prophet_class() -> type:
    """Prophet, with less pandas: its Fourier features and its table of which feature belongs to which
    component built in numpy, and a prediction of `yhat` alone.

    Prophet builds the table with `pd.crosstab` and the features with pandas' datetime arithmetic, in fit
    and predict, and predict forecasts every component apart: about a third of a fold's time, for a
    table of a few dozen zeros and ones and columns nobody reads. The same numbers to the last bit
    (sales_pipeline_tests/test_forecast_models.py). The class is made in a function (long only by its three
    methods) so that loading the code location does not import Prophet.
    """
    from prophet import Prophet

    class LeanProphet(Prophet):
        @staticmethod
        def fourier_series(dates: pd.Series, period: float, series_order: int) -> np.ndarray:
            # Prophet's arithmetic on numpy's datetimes rather than pandas' (the same float64 days).
            days = dates.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1_000_000_000 / (24 * 60 * 60)
            features = np.empty((len(days), 2 * series_order))
            for order in range(series_order):
                angle = (order + 1) / period * (np.pi * 2 * days)
                features[:, 2 * order] = np.sin(angle)
                features[:, 2 * order + 1] = np.cos(angle)
            return features

        def yhat(self, future: pd.DataFrame) -> np.ndarray:
            """`predict(future)["yhat"]`, without the table of every component's own forecast around it."""
            frame = self.setup_dataframe(future.copy())
            trend = self.predict_trend(frame)
            features, _, component_cols, _ = self.make_all_seasonality_features(frame)
            terms = {}
            for name in ("additive_terms", "multiplicative_terms"):
                term = np.matmul(features.values, (self.params["beta"] * component_cols[name].values).transpose())
                if name in self.component_modes["additive"]:
                    term *= self.y_scale
                terms[name] = np.nanmean(term, axis=1)
            return np.asarray(trend * (1 + terms["multiplicative_terms"]) + terms["additive_terms"], dtype=float)

        def regressor_column_matrix(
            self, seasonal_features: pd.DataFrame, modes: dict[str, list[str]]
        ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
            columns: dict[str, list[int]] = {}
            for col, name in enumerate(seasonal_features.columns):
                columns.setdefault(name.split("_delim_")[0], []).append(col)

            def add_group(name: str, group: Iterable[str]) -> None:
                cols = sorted({col for component in set(group) for col in columns.get(component, ())})
                if cols:
                    columns[name] = cols

            if self.train_holiday_names is not None:
                add_group("holidays", self.train_holiday_names.unique())
            for mode in ("additive", "multiplicative"):
                add_group(f"{mode}_terms", modes[mode])
                regressors = (name for name, props in self.extra_regressors.items() if props["mode"] == mode)
                add_group(f"extra_regressors_{mode}", regressors)
                modes[mode] += [f"{mode}_terms", f"extra_regressors_{mode}"]
            modes[self.holidays_mode].append("holidays")
            names = sorted(columns)  # as pd.crosstab orders them
            matrix = np.zeros((seasonal_features.shape[1], len(names)), dtype=np.int64)
            for at, name in enumerate(names):
                matrix[columns[name], at] = 1
            index = pd.Index(np.arange(seasonal_features.shape[1]), name="col")
            component_cols = pd.DataFrame(matrix, index=index, columns=pd.Index(names, name="component"))
            for name in ("additive_terms", "multiplicative_terms"):
                if name not in component_cols:
                    component_cols[name] = 0
            component_cols = component_cols.drop(columns="zeros", errors="ignore")
            if self.train_component_cols is not None:  # predicting: the same columns as in the fit
                component_cols = component_cols[self.train_component_cols.columns]
                if not component_cols.equals(self.train_component_cols):
                    raise RuntimeError("Prophet's regressors at prediction differ from the fit's")
            return component_cols, modes

    return LeanProphet


@cache
def _stan_backend() -> object:
    """Prophet's cmdstanpy backend, but writing the optimiser's input with orjson, and L-BFGS only.

    cmdstanpy writes the design matrix through Python lists and the json module: on two years of
    daily data that is a third of a fit (0.19 s -> 0.13 s a fit measured, same parameters to the
    last bit). No Newton fallback: it can stall for minutes, and a failed fit has seasonal naive.
    """
    import orjson
    from prophet.models import CmdStanPyBackend

    def as_json_value(value: object) -> object:
        value = value.to_numpy() if hasattr(value, "to_numpy") else value
        return np.ascontiguousarray(value, dtype=float) if isinstance(value, np.ndarray) else value

    class OrjsonBackend(CmdStanPyBackend):
        def fit(self, stan_init: dict, stan_data: dict, **kwargs: object) -> dict[str, np.ndarray]:
            with tempfile.TemporaryDirectory(prefix="prophet-") as folder:
                paths = {}
                for name, values in (("inits", stan_init), ("data", stan_data)):
                    paths[name] = Path(folder) / f"{name}.json"
                    encoded = {key: as_json_value(value) for key, value in values.items()}
                    paths[name].write_bytes(orjson.dumps(encoded, option=orjson.OPT_SERIALIZE_NUMPY))
                self.stan_fit = self.model.optimize(**paths, algorithm="LBFGS", iter=10_000, **kwargs)
            params = self.stan_to_dict_numpy(self.stan_fit.column_names, self.stan_fit.optimized_params_np)
            return {name: value.reshape((1, -1)) for name, value in params.items()}

    return OrjsonBackend()


def with_intervals(
    days: pd.DatetimeIndex, series: Series, yhat: np.ndarray, sigma: float, settings: ForecastSettings
) -> pd.DataFrame:
    """The published days: yhat and its 80% and 95% bounds (yhat ± z·σ, never negative), closed days at 0."""
    upto = len(series.values)
    closed = series.closed.to_numpy(dtype=bool)[upto : upto + settings.horizon]
    band = np.where(closed, 0.0, sigma)
    return pd.DataFrame(
        {
            "day": days[: settings.horizon].date,
            "yhat": yhat,
            "yhat_lower_80": np.maximum(yhat - Z80 * band, 0.0),
            "yhat_upper_80": yhat + Z80 * band,
            "yhat_lower_95": np.maximum(yhat - Z95 * band, 0.0),
            "yhat_upper_95": yhat + Z95 * band,
            "closed": closed,
        }
    )


def _in_sample_sigma(series: Series, open_days: np.ndarray) -> float:
    """Without a backtest: the spread of week-on-week changes, the seasonal naive's own error."""
    values = series.values.to_numpy(dtype=float)
    closed = ~open_days
    pairs = ~closed[WEEK:] & ~closed[:-WEEK]
    changes = (values[WEEK:] - values[:-WEEK])[pairs]
    return float(np.sqrt(np.mean(changes**2))) if len(changes) else float(np.std(values))


def _history_at(series: Series, origin: date) -> int:
    return (origin - series.values.index[0].date()).days + 1
