"""Sales drops: revenue under the forecast's lower bound, for the total, a store, a category or a product.

Rules
-----
- A **series** is a target 'sales' series of ``ml.forecast_series`` that was not skipped: scope ``all``
  (scope_id ``''``), ``store``, ``category`` or ``product``; its actual of a day is the revenue of
  ``marts.daily_kpis`` for that (day, scope, scope_id), 0 when there is no row (nothing sold).
- The **reference forecast** of day d is what was expected before d, and before a drop could teach it
  anything: the ``ml.forecasts`` row with the *smallest* origin < d (the forecast issued furthest ahead,
  a week before with daily runs). A forecast issued the day before has already learnt the first days
  of a drop and expects less of the next ones, so a drop judged against it erodes itself. When no
  published forecast covers d (the first days after forecasting started), the rolling-origin backtest
  of the series' chosen model (``ml.forecast_accuracy.chosen``), whose weekly folds give each day one
  forecast, with the normal bands the published forecast uses, σ the RMSE of the chosen model's folds
  from two or more earlier origins (else ``ml.forecast_series.sigma``): ``yhat ± 1.2816·σ`` (80%) and
  ``yhat ± 1.96·σ`` (95%), clipped at 0. (The series' own σ also scores the folds of the days being
  judged: a drop would widen the bound it is judged against.)
- A day is **closed** when its forecast says so, or when the calendar of the store (scope ``store``)
  or of the chain (every other scope) says it was (``sales_pipeline/forecasting/calendar.py``: the
  store calendar, or a physical store's day inferred closed under its strict rule); a zero of a
  channel, a category or a product is a zero. Closed days are not anomalies, do not break a run and
  do not count in it.
- A **run** is the streak of open days ending at the series' latest open day with a forecast (on or
  before as_of) on which actual revenue fell short of the forecast, one open day at or above the
  forecast inside it forgiven: walking back from the latest day, a day below its forecast joins the
  run, one day at or above it joins when a day below comes before it, and two such days in a row end
  it, as does an open day without a forecast (nothing to compare with). A noisy store losing a third
  of its revenue still has a good day now and then: a run broken by each of them would never grow
  long enough to tell the drop from noise. An intermittent series forgives nothing: its run is its
  latest silence, which a sale ends (a sale is a day above its small daily rate; forgiving them would
  stretch its run over its whole history). Open days without a forecast after the latest are
  skipped: a forecast not published yet does not end a drop.
- The run is a **drop** when its revenue is under the lower bound of its forecast summed over its
  days: ``sum(actual) < sum(yhat) - z·sqrt(sum(σ²))``, σ a day's error scale. One day is judged
  against its own 95% lower bound (z 1.96). Summing tightens the bound, so a store losing 45% of its
  revenue is found within days even when one day's noise is as large as the drop; but a run is
  picked because its days fell short, so longer runs are judged at 99% (z 2.576) for the total,
  stores and categories and at 99.9% (z 3.09) for products, which are ten times as many.
  Simulated on independent normal errors (400,000 days), a run of three days or more under its 99%
  bound happens 47 times per 10,000 series-days (50 if each good day ended the run), and a drop of
  1σ a day lasting 10 days is such a run by its last day 71% of the time (44% if each good day ended
  the run); at 99.9%: 13 per 10,000, and 53%. A run that has ended is over, and ``record_anomalies``
  resolves its alert.
- A run is judged **from the earliest of its stretches** (a stretch starts at a day below the forecast
  after a forgiven day, or at the run's first day) whose days to the latest are under their bound: the
  forgiving walk back also carries a run into the normal days before a drop, and their good days
  would hide it (a generated store losing 40% for ten days, its run reaching back 18 days through
  three good days of the week before, came out within its bound). The alert counts the days judged;
  its key keeps the run's first day.
- **Severity** by the run's length in open days (a forgiven day counts): 1 -> info, 2 -> warning, 3
  or more -> critical, but a critical is what wakes a manager, so it also needs a drop worth waking for:
  a shortfall of at least a fifth (``MATERIAL_SHORTFALL``) of the run's expected revenue, and for a
  product (products are many) a run under its one-in-ten-thousand bound (z 3.719) too; a longer run
  short of either is a warning. The bounds assume independent daily errors, and a real series' are
  not: a slow fortnight is slow on most of its days (the lag-1 correlation of the chosen models'
  backtest errors is 0.42 on the Rossmann stores, 0.3 on the generated stores), so a month of summer
  holidays the forecast does not know of puts a healthy store 10% under its 99% bound. That is worth
  a look (a warning), not an emergency; a store losing a third of its revenue is.
- **Intermittent and lumpy series** (``ml.forecast_series.demand_class``: a product selling on a few
  days a month) are not judged by their revenue against normal bounds: most of their days are zeros
  under a forecast of a small daily rate, and a streak of them is the usual silence. Instead, a
  count model: over the year before the run the series sold on m of its n open days; its chance of a
  sale on a day is uncertain, Beta(m + ½, n - m + ½), so the number of selling days in the run's k
  open days is beta-binomial, and the run's p-value is the chance of at most the s selling days it
  had. p < 0.01 is a drop (info), under 0.001 a warning, under 0.0001 a critical; a product that
  sold 5 times in 4 years is never surprising in its silence, one that sold on most days and stopped
  for two weeks is.
- One alert per run, keyed ``sales_drop:<scope>:<scope_id>:<first day of the run>``: the key stays the
  same while the run goes on, so it is alerted once and its severity rises in place. The detection
  widens its window until it sees where a run starts (up to ``MAX_WINDOW_DAYS``), so a run longer than
  the window keeps its key and its true length.

``numbers`` of an alert: first_day, last_day, days (open days of the run), days_below (of them, the
days below the forecast), closed_days (closed days inside
the run), actual, expected (sum of yhat), lower_bound (the run's cumulative bound) and its confidence, shortfall
(expected - actual), shortfall_pct (shortfall as a percentage of expected, positive = below; null when
nothing was expected), latest_day, latest_actual, latest_expected, latest_lower_95, and the forecast
sources used (published and/or backtest). Money is rounded to the cent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.anomalies.store import record_anomalies
from sales_pipeline.forecasting.calendar import CHAIN, load_closed_days
from sales_pipeline.forecasting.models import Z95 as Z_95  # the z the published bands were built with
from sales_pipeline.records import Alert
from sales_pipeline.warehouse.db import read_frame

KIND = "sales_drop"
# The confidence of the bound a run of two days or more is judged against, by scope (see Rules).
RUN_CONFIDENCE = {"product": (0.999, 3.0902)}
CHAIN_RUN_CONFIDENCE = (0.99, 2.5758)
CRITICAL_CONFIDENCE = (0.9999, 3.7190)  # a product's run of 3 days or more is critical only under this bound
MATERIAL_SHORTFALL = 0.2  # a critical run is short of at least a fifth of its expected revenue
INTERMITTENT = ("intermittent", "lumpy")
SILENCE_P = ((0.0001, "critical"), (0.001, "warning"), (0.01, "info"))  # intermittent series: p -> severity
HISTORY_DAYS = 365  # the year an intermittent series' chance of a sale is estimated on
DEFAULT_WINDOW_DAYS = 14
MAX_WINDOW_DAYS = 366  # how far back the detection looks for the start of a long run
SEVERITY_BY_DAYS = ((3, "critical"), (2, "warning"), (1, "info"))
FORGIVEN_DAYS = 1  # open days at or above the forecast a run carries on through (see Rules); none if intermittent
ENTITY_TYPES = {"all": "total", "store": "store", "category": "category", "product": "product"}

DAY_COLUMNS = ["scope", "scope_id", "day", "actual", "yhat", "lower_95", "closed"]
# optional: sigma, a day's error scale; without it, (yhat - lower_95) / 1.96


@dataclass(frozen=True)
class _Run:
    scope: str
    scope_id: str
    name: str | None
    drops: pd.DataFrame  # the run's drop days, oldest first
    closed_days: int
    bounded: bool  # an open day before the run ends it in the data: its start is known
    demand_class: str | None = None
    history: tuple[int, int] | None = None  # intermittent series: (open days, selling days) the year before
    started: date | None = None  # a run judged from a later stretch (`_judged`): where it started, its key

    @property
    def intermittent(self) -> bool:
        return self.demand_class in INTERMITTENT and self.history is not None

    def silence_p(self) -> float:
        """The chance of at most the run's selling days in its open days, given the year before (module rules)."""
        open_days, selling_days = self.history or (0, 0)
        k, s = len(self.drops), int((self.drops["actual"] > 0).sum())
        return beta_binomial_cdf(s, k, selling_days + 0.5, open_days - selling_days + 0.5)


def severity_for(days: int) -> str:
    """info for one drop day, warning for two in a row, critical for three or more (before the critical bound)."""
    return next(severity for minimum, severity in SEVERITY_BY_DAYS if days >= minimum)


def beta_binomial_cdf(s: int, k: int, a: float, b: float) -> float:
    """P(X <= s) for X ~ BetaBinomial(k, a, b): selling days among k when the chance of one is Beta(a, b)."""
    from scipy.special import betaln, gammaln  # here: scipy is slow to load, and only the detection needs it

    x = np.arange(0, s + 1)
    log_pmf = (
        gammaln(k + 1) - gammaln(x + 1) - gammaln(k - x + 1)
        + betaln(x + a, k - x + b) - betaln(a, b)
    )  # fmt: skip
    return float(min(1.0, np.exp(log_pmf).sum()))


def find_sales_drops(days: pd.DataFrame, as_of: date, history: dict | None = None) -> list[Alert]:
    """The drops still going on at `as_of`, one Alert per series.

    `days` has one row per (scope, scope_id, day): actual, yhat, lower_95, optionally sigma (NaN without a
    forecast) and closed (bool); optional columns ``name`` (a store's or product's name, for the message)
    and ``demand_class``. Rows after `as_of` are ignored. `history`: (scope, scope_id) -> (open days,
    selling days) of the year before, for the intermittent series (module rules).
    """
    runs = _with_history(_ongoing_runs(days, as_of), history or {})
    return _drop_alerts(runs, as_of)


def _with_history(runs: list[_Run], history: dict) -> list[_Run]:
    return [replace(run, history=history.get((run.scope, run.scope_id))) for run in runs]


def _drop_alerts(runs: list[_Run], as_of: date) -> list[Alert]:
    judged = (_judged(run) for run in runs)
    return [_alert(run, as_of) for run in judged if _is_drop(run)]


def _judged(run: _Run) -> _Run:
    """The run from the earliest start of one of its stretches that is under its bound (else the whole run).

    A stretch starts at a day below the forecast after a forgiven day (or at the run's first day). The
    walk back that found the run forgives good days so that noise does not cut a drop short, but it
    also carries on into the normal days before a drop: a store losing 40% for ten days, whose run
    reached back through three good days of the week before, came out within its bound over 18 days.
    The key stays the run's first day, so that a drop judged from another stretch tomorrow is the same
    alert. An intermittent run (one silence, nothing forgiven) is judged whole.
    """
    if run.demand_class in INTERMITTENT or len(run.drops) < 2:
        return run
    below = (run.drops["actual"] < run.drops["yhat"]).to_numpy()
    starts = [at for at in range(1, len(below)) if below[at] and not below[at - 1]]
    for at in [0, *starts]:
        tail = run.drops.iloc[at:]
        if float(tail["actual"].sum()) < _lower_bound(tail, run.scope):
            closed = int(tail["closed_so_far"].iloc[-1] - tail["closed_so_far"].iloc[0])
            return replace(run, drops=tail, closed_days=closed, started=run.drops["day"].iloc[0])
    return run


def _is_drop(run: _Run) -> bool:
    if run.demand_class in INTERMITTENT:
        return run.intermittent and run.silence_p() < SILENCE_P[-1][0]
    return _under_bound(run)


def _severity(run: _Run) -> str:
    if run.intermittent:
        p = run.silence_p()
        return next(severity for limit, severity in SILENCE_P if p < limit)
    severity = severity_for(len(run.drops))
    actual, expected = float(run.drops["actual"].sum()), float(run.drops["yhat"].sum())
    if severity == "critical" and actual > (1 - MATERIAL_SHORTFALL) * expected:
        return "warning"
    if severity == "critical" and run.scope == "product" and actual >= _lower_bound(run.drops, "product", True):
        return "warning"
    return severity


def _ongoing_runs(days: pd.DataFrame, as_of: date) -> list[_Run]:
    missing = set(DAY_COLUMNS) - set(days.columns)
    if missing:
        raise ValueError(f"find_sales_drops: days lacks columns {sorted(missing)}")
    if days.empty:
        return []
    frame = days.copy()
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    frame = frame[frame["day"] <= as_of]
    if "name" not in frame.columns:
        frame["name"] = None
    if "demand_class" not in frame.columns:
        frame["demand_class"] = None
    for column in ("actual", "yhat", "lower_95"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["actual"] = frame["actual"].fillna(0.0)
    frame["closed"] = frame["closed"].fillna(False).astype(bool)
    frame["forecast"] = frame["yhat"].notna() & frame["lower_95"].notna()
    if "sigma" not in frame.columns:
        frame["sigma"] = (frame["yhat"] - frame["lower_95"]) / Z_95
    frame["sigma"] = pd.to_numeric(frame["sigma"], errors="coerce").astype(float).fillna(0.0)
    frame["below"] = ~frame["closed"] & frame["forecast"] & (frame["actual"] < frame["yhat"])

    frame = frame.sort_values(["scope", "scope_id", "day"], kind="stable").reset_index(drop=True)
    frame["closed_so_far"] = frame.groupby(["scope", "scope_id"])["closed"].cumsum()  # closed days of a trimmed run
    flags = [frame[column].to_numpy(dtype=bool) for column in ("closed", "forecast", "below")]
    runs = []
    for (scope, scope_id), rows in frame.groupby(["scope", "scope_id"], sort=True).indices.items():
        intermittent = frame["demand_class"].iloc[rows[-1]] in INTERMITTENT
        run = _latest_run(*(flag[rows] for flag in flags), forgiven=0 if intermittent else FORGIVEN_DAYS)
        if run is not None:
            members, closed_days, bounded = run
            series = frame.iloc[rows]
            name, demand = series["name"].dropna(), series["demand_class"].dropna()
            runs.append(
                _Run(
                    str(scope), str(scope_id), str(name.iloc[-1]) if len(name) else None, series.iloc[members],
                    closed_days, bounded, str(demand.iloc[-1]) if len(demand) else None,
                )
            )  # fmt: skip
    return runs


def _confidence(days: pd.DataFrame, scope: str, critical: bool = False) -> tuple[float, float]:
    """The (confidence, z) the run is judged at: 95% for one day, stricter for a streak (see Rules)."""
    if critical:
        return CRITICAL_CONFIDENCE
    return (0.95, Z_95) if len(days) == 1 else RUN_CONFIDENCE.get(scope, CHAIN_RUN_CONFIDENCE)


def _lower_bound(days: pd.DataFrame, scope: str, critical: bool = False) -> float:
    _, z = _confidence(days, scope, critical)
    return float(days["yhat"].sum() - z * math.sqrt(float((days["sigma"] ** 2).sum())))


def _under_bound(run: _Run) -> bool:
    return float(run.drops["actual"].sum()) < _lower_bound(run.drops, run.scope)


def _latest_run(
    closed: np.ndarray, forecast: np.ndarray, below: np.ndarray, forgiven: int = FORGIVEN_DAYS
) -> tuple[list[int], int, bool] | None:
    """The run ending at a series' latest open day with a forecast, if there is one (module rules).

    Takes a series' days in order (closed, with a forecast, below it) and returns the run's positions,
    the closed days inside it and whether its start is known (`bounded`). Walks back from the latest
    open day: a day below its forecast joins the run, and so do up to `forgiven` open days at or above it
    when a day below comes before them; one more such day in a row, or an open day without a forecast,
    ends it.
    """
    members: list[int] = []
    above: list[int] = []  # open days at or above the forecast since the earliest member, newest first
    bounded = False
    for position in np.flatnonzero(~closed)[::-1]:
        if not forecast[position]:
            if members or above:
                bounded = True
                break
            continue  # no forecast yet for the latest days: the run is judged on the days before
        if below[position]:
            members += [*above, position]
            above = []
        else:
            above.append(position)
            if len(above) > forgiven:
                bounded = True
                break
    if not members:
        return None
    first, last = min(members), max(members)
    closed_inside = int(closed[first : last + 1].sum())
    return sorted(members), closed_inside, bounded


def _alert(run: _Run, as_of: date) -> Alert:
    drops = run.drops
    first_day, last_day = drops["day"].iloc[0], drops["day"].iloc[-1]
    latest = drops.iloc[-1]
    actual, expected = float(drops["actual"].sum()), float(drops["yhat"].sum())
    shortfall_pct = round(100 * (expected - actual) / expected, 1) if expected > 0 else None
    count = len(drops)
    numbers = {
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
        "days": count,
        "days_below": int((drops["actual"] < drops["yhat"]).sum()),
        "closed_days": run.closed_days,
        "actual": _money(actual),
        "expected": _money(expected),
        "lower_bound": _money(max(_lower_bound(drops, run.scope), 0.0)),
        "confidence": _confidence(drops, run.scope)[0],
        "shortfall": _money(expected - actual),
        "shortfall_pct": shortfall_pct,
        "latest_day": last_day.isoformat(),
        "latest_actual": _money(latest["actual"]),
        "latest_expected": _money(latest["yhat"]),
        "latest_lower_95": _money(latest["lower_95"]),
    }
    if "source" in drops.columns:
        numbers["forecast_sources"] = sorted(str(s) for s in drops["source"].dropna().unique())
    message = _message(run, numbers, shortfall_pct)
    if run.intermittent:
        open_days, selling_days = run.history
        numbers |= {
            "demand_class": run.demand_class,
            "selling_days": int((drops["actual"] > 0).sum()),
            "history_open_days": open_days,
            "history_selling_days": selling_days,
            "p_silence": float(f"{run.silence_p():.3g}"),
        }
        message = _silence_message(run, numbers)
    return Alert(
        kind=KIND,
        severity=_severity(run),
        entity_type=ENTITY_TYPES.get(run.scope, run.scope),
        entity_id=run.scope_id if run.scope != "all" else "all",
        detected_on=as_of,
        message=message,
        numbers=numbers,
        dedupe_key=f"{KIND}:{run.scope}:{run.scope_id}:{(run.started or first_day).isoformat()}",
    )


def _subject(scope: str, scope_id: str, name: str | None) -> str:
    named = f" ({name})" if name and name != scope_id else ""
    if scope == "all":
        return "Total revenue"
    if scope == "category":
        return "Revenue of products without a category" if scope_id == "" else f"Category {scope_id} revenue"
    return f"{scope.capitalize()} {scope_id}{named} revenue"


def _message(run: _Run, numbers: dict, shortfall_pct: float | None) -> str:
    subject = _subject(run.scope, run.scope_id, run.name)
    change = f" ({-shortfall_pct:+.0f}%)" if shortfall_pct is not None else ""
    against = f"{numbers['actual']:,.2f} against {numbers['expected']:,.2f} expected{change}"
    if numbers["days"] == 1:
        return (
            f"{subject} was below its forecast on {numbers['last_day']}: {against},"
            f" under the 95% lower bound of {numbers['lower_bound']:,.2f}."
        )
    open_days = " open" if run.closed_days else ""
    if numbers["days_below"] == numbers["days"]:
        streak = f"for {numbers['days']}{open_days} days in a row"
    else:
        streak = f"on {numbers['days_below']} of the last {numbers['days']} open days"
    return (
        f"{subject} has been below its forecast {streak} ({numbers['first_day']} to {numbers['last_day']}):"
        f" {against}, under the {numbers['confidence']:.1%} lower bound of {numbers['lower_bound']:,.2f} for"
        " those days."
    )


def _silence_message(run: _Run, numbers: dict) -> str:
    subject = _subject(run.scope, run.scope_id, run.name).removesuffix(" revenue")
    sold = "has not sold in" if not numbers["selling_days"] else f"has sold on only {numbers['selling_days']} of"
    share = numbers["history_selling_days"] / max(numbers["history_open_days"], 1)
    return (
        f"{subject} {sold} the last {numbers['days']} open days ({numbers['first_day']} to {numbers['last_day']});"
        f" over the year before it sold on {numbers['history_selling_days']} of {numbers['history_open_days']} open"
        f" days ({share:.0%}), so a run that quiet has a {_chance(numbers['p_silence'])} chance."
    )


def _chance(p: float) -> str:
    """A probability as a percentage with two significant digits: 0.35%, 0.020%, 0.0041%."""
    pct = p * 100
    if pct <= 0:
        return "0%"
    return f"{pct:.{max(0, 1 - math.floor(math.log10(pct)))}f}%"


def _money(value: float) -> float:
    value = float(value)
    return round(value, 2) if math.isfinite(value) else value


# --- the warehouse -------------------------------------------------------------------------------

_DAYS_QUERY = """
WITH series AS (
    SELECT scope, scope_id FROM ml.forecast_series
    WHERE target = 'sales' AND status <> 'skipped'
      AND (%(every_series)s OR (scope, scope_id) IN (SELECT unnest(%(scopes)s::text[]), unnest(%(ids)s::text[])))
),
calendar AS (
    SELECT s.scope, s.scope_id, d::date AS day
    FROM series AS s
    CROSS JOIN generate_series(%(first_day)s::date, %(last_day)s::date, interval '1 day') AS d
),
published AS (
    -- The forecast issued first (furthest ahead) for each day: it knew nothing of a drop's first days.
    SELECT DISTINCT ON (scope, scope_id, day) scope, scope_id, day, yhat, yhat_lower_95,
           (yhat_upper_95 - yhat) / %(z_95)s AS sigma, closed
    FROM ml.forecasts
    WHERE target = 'sales' AND day BETWEEN %(first_day)s AND %(last_day)s AND origin < day
      AND (scope, scope_id) IN (SELECT scope, scope_id FROM series)
    ORDER BY scope, scope_id, day, origin
),
chosen_folds AS (
    -- The chosen model's backtest folds and each fold's squared error on its open (non-zero) days.
    SELECT b.scope, b.scope_id, b.origin, b.day, b.yhat, (b.yhat - coalesce(k.revenue, 0)) ^ 2 AS squared_error
    FROM ml.backtest_forecasts AS b
    JOIN ml.forecast_accuracy AS a
        ON a.target = b.target AND a.scope = b.scope AND a.scope_id = b.scope_id AND a.model = b.model AND a.chosen
    LEFT JOIN marts.daily_kpis AS k ON (k.day, k.scope, k.scope_id) = (b.day, b.scope, b.scope_id)
    WHERE b.target = 'sales' AND (b.scope, b.scope_id) IN (SELECT scope, scope_id FROM series)
),
earlier_sigma AS (
    -- Per fold, the RMSE of the chosen model's folds before it on their open days (a forecast above zero),
    -- from two folds or more: the days judged must not widen their own bound.
    SELECT scope, scope_id, origin,
           CASE WHEN count(*) OVER earlier >= 2 THEN sqrt(sum(squared) OVER earlier / sum(days) OVER earlier) END
               AS sigma
    FROM (
        SELECT scope, scope_id, origin, sum(squared_error) AS squared, count(*) AS days
        FROM chosen_folds WHERE yhat > 0 GROUP BY scope, scope_id, origin
    ) AS folds
    WINDOW earlier AS (PARTITION BY scope, scope_id ORDER BY origin ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
backtest AS (
    -- Before the first published forecast: the chosen model's backtest, from the first origin before the day
    -- (its weekly folds give each day one), its error scale from the folds before that origin.
    SELECT DISTINCT ON (f.scope, f.scope_id, f.day) f.scope, f.scope_id, f.day, greatest(f.yhat, 0) AS yhat,
           coalesce(e.sigma, s.sigma) AS sigma
    FROM chosen_folds AS f
    JOIN ml.forecast_series AS s ON s.target = 'sales' AND s.scope = f.scope AND s.scope_id = f.scope_id
    LEFT JOIN earlier_sigma AS e ON (e.scope, e.scope_id, e.origin) = (f.scope, f.scope_id, f.origin)
    WHERE f.day BETWEEN %(first_day)s AND %(last_day)s AND f.origin < f.day
    ORDER BY f.scope, f.scope_id, f.day, f.origin
)
SELECT c.scope,
       c.scope_id,
       c.day,
       coalesce(k.revenue, 0)::float8 AS actual,
       coalesce(p.yhat, b.yhat) AS yhat,
       coalesce(p.yhat_lower_95, greatest(b.yhat - %(z_95)s * b.sigma, 0)) AS lower_95,
       coalesce(p.sigma, b.sigma) AS sigma,
       coalesce(p.closed, false) AS closed,
       fs.demand_class,
       CASE WHEN p.yhat IS NOT NULL THEN 'published' WHEN b.yhat IS NOT NULL THEN 'backtest' END AS source,
       CASE c.scope WHEN 'store' THEN st.name WHEN 'product' THEN pr.name END AS name
FROM calendar AS c
LEFT JOIN published AS p ON p.scope = c.scope AND p.scope_id = c.scope_id AND p.day = c.day
LEFT JOIN backtest AS b ON b.scope = c.scope AND b.scope_id = c.scope_id AND b.day = c.day
LEFT JOIN marts.daily_kpis AS k ON k.day = c.day AND k.scope = c.scope AND k.scope_id = c.scope_id
LEFT JOIN ml.forecast_series AS fs ON (fs.target, fs.scope, fs.scope_id) = ('sales', c.scope, c.scope_id)
LEFT JOIN core.stores AS st ON c.scope = 'store' AND st.store_id = c.scope_id
LEFT JOIN core.products AS pr ON c.scope = 'product' AND pr.product_id = c.scope_id
ORDER BY c.scope, c.scope_id, c.day
"""


def latest_kpi_day(cursor: Cursor) -> date | None:
    """The latest day in marts.daily_kpis (scope 'all'), or None when it is empty."""
    cursor.execute("SELECT max(day) FROM marts.daily_kpis WHERE scope = 'all'")
    return cursor.fetchone()[0]


def load_days(
    cursor: Cursor, first_day: date, last_day: date, series: list[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """Actual, reference forecast and closed flag of each sales series (default: every one), first_day..last_day."""
    keys = series or []
    cursor.execute(
        _DAYS_QUERY,
        {
            "first_day": first_day,
            "last_day": last_day,
            "z_95": Z_95,
            "every_series": series is None,
            "scopes": [scope for scope, _ in keys],
            "ids": [scope_id for _, scope_id in keys],
        },
    )
    columns = [column.name for column in cursor.description]
    frame = pd.DataFrame(cursor.fetchall(), columns=columns)
    for column in ("actual", "yhat", "lower_95", "sigma"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["closed"] = frame["closed"].astype(bool)
    calendars = load_closed_days(cursor, last_day, 0)
    if calendars and len(frame):
        days = pd.to_datetime(frame["day"])
        own = (frame["scope"] == "store") & frame["scope_id"].isin(list(calendars))
        calendar_of = frame["scope_id"].where(own, CHAIN)  # a store's own calendar, else the chain's
        for store, rows in frame.groupby(calendar_of).groups.items():
            known = calendars[store].reindex(days[rows], fill_value=False).to_numpy(dtype=bool)
            frame.loc[rows, "closed"] = frame.loc[rows, "closed"].to_numpy() | known
    return frame


def load_history(cursor: Cursor, runs: list[_Run]) -> dict[tuple[str, str], tuple[int, int]]:
    """(open days, selling days) of each intermittent run's series in the year before the run starts.

    The year starts no earlier than the series' first sale: a product launched two months ago has two
    months of history, not ten months of days it could not sell on.
    """
    wanted = [run for run in runs if run.demand_class in INTERMITTENT]
    if not wanted:
        return {}
    last = max(run.drops["day"].iloc[0] for run in wanted)
    calendars = load_closed_days(cursor, last, 0)
    selling = read_frame(
        cursor,
        "SELECT scope, scope_id, day FROM marts.daily_kpis WHERE day < %s AND revenue > 0"
        " AND (scope, scope_id) IN (SELECT unnest(%s::text[]), unnest(%s::text[]))",
        (last, [run.scope for run in wanted], [run.scope_id for run in wanted]),
    )
    selling["day"] = pd.to_datetime(selling["day"])
    open_days = {key: (~closed).cumsum() for key, closed in calendars.items()}  # open days up to each day
    sold = {key: np.sort(frame["day"].to_numpy()) for key, frame in selling.groupby(["scope", "scope_id"])}
    history = {}
    for run in wanted:
        days = sold.get((run.scope, run.scope_id), np.array([], dtype="datetime64[ns]"))
        start = np.datetime64(pd.Timestamp(run.drops["day"].iloc[0]), "ns")
        since = max(start - np.timedelta64(HISTORY_DAYS, "D"), days[0] if len(days) else start)
        cumulative = open_days.get(run.scope_id if run.scope == "store" else CHAIN, open_days.get(CHAIN))
        opened = _count_between(cumulative, since, start) if cumulative is not None else 0
        history[(run.scope, run.scope_id)] = (opened, int(np.searchsorted(days, start) - np.searchsorted(days, since)))
    return history


def _count_between(cumulative: pd.Series, since: np.datetime64, until: np.datetime64) -> int:
    """How many of the counted days fall in [since, until), from their running count (a Series by day)."""
    index = cumulative.index.to_numpy()
    values = cumulative.to_numpy()
    at_until, at_since = np.searchsorted(index, until), np.searchsorted(index, since)
    return int((values[at_until - 1] if at_until else 0) - (values[at_since - 1] if at_since else 0))


def detect_sales_drops(
    cursor: Cursor, as_of: date | None = None, window_days: int = DEFAULT_WINDOW_DAYS
) -> list[Alert]:
    """The sales drops going on at `as_of` (default: the latest day of marts.daily_kpis), from the warehouse.

    Reads `window_days` days ending at as_of; when a run reaches back to the start of that window, the
    window is doubled (up to MAX_WINDOW_DAYS) so the run's first day, its key, is known.
    """
    if window_days < 1:
        raise ValueError(f"window_days must be 1 or more, not {window_days}")
    if as_of is None:
        as_of = latest_kpi_day(cursor)
        if as_of is None:
            return []
    window, runs, cut_off = window_days, [], None
    while True:
        found = _ongoing_runs(load_days(cursor, as_of - timedelta(days=window - 1), as_of, cut_off), as_of)
        runs += [run for run in found if run.bounded or window >= MAX_WINDOW_DAYS]
        # Widen for every streak cut off by the window, a drop or not yet: the whole streak decides.
        cut_off = [(run.scope, run.scope_id) for run in found if not run.bounded]
        if window >= MAX_WINDOW_DAYS or not cut_off:
            break
        window = min(2 * window, MAX_WINDOW_DAYS)
    runs = _with_history(runs, load_history(cursor, runs))
    return _drop_alerts(runs, as_of)


def refresh_sales_drops(
    cursor: Cursor, as_of: date | None = None, window_days: int = DEFAULT_WINDOW_DAYS
) -> list[Alert]:
    """Detect the sales drops at `as_of` and record them in ml.anomalies (ended runs are resolved).

    With no KPIs at all there is nothing to judge, and ml.anomalies is left as it is.
    """
    if as_of is None:
        as_of = latest_kpi_day(cursor)
        if as_of is None:
            return []
    alerts = detect_sales_drops(cursor, as_of, window_days)
    record_anomalies(cursor, KIND, alerts)
    return alerts
