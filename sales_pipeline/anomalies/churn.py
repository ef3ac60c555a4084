"""Customer churn: which known customers have gone quiet for longer than their own rhythm explains.

Model
-----
A *purchase day* is a distinct (customer, day): two orders or ten lines on the same day are one
visit. Anonymous walk-ins (``customer_id`` NULL) are not customers here.

Each repeat customer (at least two purchase days) buys at a rate ``λ`` of their own and with a
regularity ``k`` of their own: their waits between purchases are Gamma(k, kλ), a mean of 1/λ days
and a coefficient of variation of 1/√k (k = 1: the memoryless Poisson shopper of the NBD, Pareto/NBD
and BG/NBD family; a large k: someone who comes back about when due). Purchases fall on whole days,
so a gap of g days is taken as a wait of g - ½ (``ROUNDING``): without it, a daily Poisson shopper's
gaps, never under a day, look more regular than they are. For a customer with ``x = purchases - 1``
waits summing to ``T`` days (``last - first - x/2``) and their logs to ``G``:

- the rates' prior Gamma(r, α) is fitted by maximum likelihood over every repeat customer's (x, T),
  with the gamma-Poisson marginal ``Γ(r+x)/Γ(r) · α^r / (α+T)^(r+x)`` (``fit_prior``);
- the population is a grid of points (r, α, k): that fitted prior, and a vague one (r = 1, one
  pseudo-wait of the population's mean), each with every shape of ``SHAPES``; the points' weights
  are fitted by EM over the repeat customers (a nonparametric maximum likelihood, ``fit_population``):
  the prior's strength is estimated, not fixed. Given a point, the evidence of a customer's waits is
  ``(k-1)·G + kx·log k - x·logΓ(k) + logΓ(r+kx) - logΓ(r) + r·log α - (r+kx)·log(α+kT)``, and λ's
  posterior is Gamma(r + kx, α + kT);
- if the customer were still buying, the chance of a silence of at least ``t`` days after the last
  purchase averages, over the points' posterior, the chance that the next wait exceeds t (a compound
  gamma: ``1 - I_z(k, r + kx)`` with ``z = kt / (kt + α + kT)``); with k = 1 it is the negative
  binomial zero term ``((α + T) / (α + T + t)) ** (r + x)``.

Why both: on Superstore the population is all alike (793 customers whose purchase-day counts have a
variance of 6.4 for a mean of 6.3, the Poisson's, and whose counts in 2014-15 and 2016-17 correlate
at -0.05), so the fitted rates' prior is rightly tight (r at the top of its grid, 500) and a rate
estimate alone cannot hear a customer's own ten purchases; but ten purchases 30 days apart make a
200-day silence all but impossible for that customer, which their regularity shows and the vague
point lets their own rhythm decide. On Superstore and the generated retailers the weights come out
on the fitted prior at k = 1 (94-96%): those shoppers are memoryless, and judged as before.

``T`` deliberately stops at the last purchase: the silence being judged is not used to estimate the
rhythm it is judged against (otherwise a long silence would lower the rate and excuse itself).

``p_silence`` is a per-customer surprise (a p-value): among N repeat customers who all still buy,
about N·p sit below p on any day. The thresholds are therefore chosen for the number of false alarms
they cost, not only for what they catch:

=============  ==================================  =======================================
status         rule                                alert
=============  ==================================  =======================================
``churned``    ``p_silence < CHURNED_P`` (0.005)   warning; critical below ``CRITICAL_P``
                                                   (0.001)
``at_risk``    ``p_silence < AT_RISK_P`` (0.05)    none, counted in the KPI
``active``     otherwise                           none
=============  ==================================  =======================================

Why 0.005 and not 0.01: on 30 generated retailers (scale 2, seeds 1-30, ~490 repeat customers each,
219 planted churners, each retailer assessed at its last day) the model is
well calibrated (false alarms at 0.02/0.01/0.005/0.002/0.001: 343/164/75/36/19 against 294/147/73/29/15
expected). 0.01 costs ~5.5 false churn alerts per 500 regulars for 54% of the planted churners; 0.005
halves the false alarms (~2.5 per 500) and still finds 40%, so more than half of what it flags is
real (88 against 75). Critical (pushed at once) stays at 0.001: ~0.6 false per 500.
The planted churners it misses are not a model weakness: a customer who bought every 27 days and
has been silent 106 has a 2% chance of that silence while still a customer, as do ~10 of every 500
regulars, so no detector can single them out from silence alone; they show as ``at_risk``.

One-time buyers have no rhythm of their own, so they are never alerted and never count in the churn
rate. They are judged against the population with the same model at ``x = 0, T = 0`` (the prior
predictive, which covers both how rhythms differ between customers and the waiting within one):
``one_time_lapsed`` when a customer drawn from the repeat population would be silent that long with
probability below ``ONE_TIME_LAPSED_P`` (0.05; about 95 days on the generated data), else
``one_time_recent``. Their ``mean_gap_days`` is NULL and their ``p_silence`` is that population
probability. (The 90th percentile of regulars' mean gaps, ~49 days on the same data, would call a
one-time buyer lapsed after a silence that a regular with that very gap has 37% of the time.)

Churn rate KPI = churned / repeat customers (NULL when there are none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import execute_values

from sales_pipeline.anomalies.store import record_anomalies
from sales_pipeline.records import Alert
from sales_pipeline.warehouse.db import refresh_in_turn

KIND = "customer_churn"
CHURNED_P = 0.005
CRITICAL_P = 0.001
AT_RISK_P = 0.05
ONE_TIME_LAPSED_P = 0.05
# When too few repeat customers exist to fit a prior, a vague one: a mean of one visit a month
# with the weight of a single observed gap.
FALLBACK_PRIOR = (1.0, 30.0)
MIN_CUSTOMERS_TO_FIT = 5
# How regular a customer may be: their gaps are Gamma(k, kλ), a coefficient of variation of 1/sqrt(k);
# k = 1 is the memoryless shopper of the Poisson model, 64 one who comes back within a few days of due.
SHAPES = np.array([0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0])
EM_STEPS = 200
ROUNDING = 0.5  # a gap of g whole days is a wait of about g - ½ on a continuous clock (module doc)

COLUMNS = [
    "customer_id",
    "as_of",
    "purchases",
    "first_purchase",
    "last_purchase",
    "mean_gap_days",
    "median_gap_days",
    "days_silent",
    "p_silence",
    "status",
]
STATUSES = ("active", "at_risk", "churned", "one_time_recent", "one_time_lapsed")

_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def _log_likelihood(r: np.ndarray, alpha: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Total marginal log-likelihood of every customer's gaps, for each (r, alpha) pair of the grid."""
    values, counts = np.unique(x, return_counts=True)  # few distinct x: lgamma is a Python call each
    grid_r = r[:, None] + values[None, :]
    log_gamma = (_lgamma(grid_r).astype(float) * counts).sum(axis=1) - len(x) * _lgamma(r).astype(float)
    r_, a_ = r[:, None], alpha[:, None]
    return log_gamma + (r_ * np.log(a_) - (r_ + x[None, :]) * np.log(a_ + t[None, :])).sum(axis=1)


def _best_alpha(r: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For each r, the alpha that maximises the likelihood: the root of sum(r/α - (r+x)/(α+T)) = 0.

    The score is positive for small α and negative for large α, so bisection on log α finds it.
    """
    lo = np.full(len(r), math.log(1e-6))
    hi = np.full(len(r), math.log(1e9))
    for _ in range(80):
        mid = (lo + hi) / 2
        alpha = np.exp(mid)[:, None]
        score = (r[:, None] / alpha - (r[:, None] + x[None, :]) / (alpha + t[None, :])).sum(axis=1)
        lo = np.where(score > 0, mid, lo)
        hi = np.where(score > 0, hi, mid)
    return np.exp((lo + hi) / 2)


def fit_prior(repeats: np.ndarray, spans: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood Gamma(r, α) prior of purchase rates (per day) from repeat customers' (x, T).

    Profile likelihood: α solved for each r on a log grid, then the grid refined around the best r.
    Identical rhythms drive r to the top of the grid, which only means a tight prior at the mean rate.
    """
    x = np.asarray(repeats, dtype=float)
    t = np.asarray(spans, dtype=float)
    keep = (x >= 1) & (t > 0)
    x, t = x[keep], t[keep]
    if len(x) < MIN_CUSTOMERS_TO_FIT:
        return FALLBACK_PRIOR
    grid = np.exp(np.linspace(math.log(0.05), math.log(500.0), 60))
    for _ in range(3):
        alphas = _best_alpha(grid, x, t)
        ll = _log_likelihood(grid, alphas, x, t)
        best = int(np.argmax(ll))
        lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        grid = np.exp(np.linspace(math.log(lo), math.log(hi), 21))
    alphas = _best_alpha(grid, x, t)
    best = int(np.argmax(_log_likelihood(grid, alphas, x, t)))
    return float(grid[best]), float(alphas[best])


def gap_logs(frame: pd.DataFrame) -> pd.DataFrame:
    """Per customer (index): the sum of the logs of their waits (gaps less ½ day) and their median gap in days."""
    ordered = frame.sort_values(["customer_id", "day"])
    gaps = ordered.groupby("customer_id", sort=True)["day"].diff().dt.days.dropna()
    per = pd.DataFrame({"customer_id": ordered.loc[gaps.index, "customer_id"], "gap": gaps.to_numpy(dtype=float)})
    per["log_gap"] = np.log(per["gap"] - ROUNDING)
    return per.groupby("customer_id").agg(log_gaps=("log_gap", "sum"), median=("gap", "median"))


@dataclass(frozen=True)
class Population:
    """What a customer is judged against: points (r, α, k) of the rates' prior and the gaps' shape, weighted.

    Two rate priors: the one fitted on the repeat customers, and a vague one (one pseudo-gap of the
    population's mean length) for a customer whose own rhythm departs from the crowd's; each with
    every shape of SHAPES. The weights are fitted by EM over the repeat customers.
    """

    r: np.ndarray
    alpha: np.ndarray
    k: np.ndarray
    weights: np.ndarray

    @classmethod
    def poisson(cls, prior: tuple[float, float]) -> Population:
        """Memoryless shoppers (k = 1) with one rate prior: the gamma-Poisson model, as worked by hand."""
        return cls(np.array([prior[0]]), np.array([prior[1]]), np.array([1.0]), np.array([1.0]))


def fit_population(x: np.ndarray, span: np.ndarray, log_gaps: np.ndarray) -> Population:
    """The rates' prior by maximum likelihood (fit_prior), then the weights of every (rate prior, shape) by EM.

    A nonparametric maximum likelihood over the grid: each repeat customer's evidence for each point,
    weighted, averaged, until the weights settle; a population of Poisson shoppers comes out near k = 1
    and the fitted rate prior, one holding a few clockwork regulars gives them their share.
    """
    r, alpha = fit_prior(x, span)
    if len(x) < MIN_CUSTOMERS_TO_FIT:
        return Population.poisson((r, alpha))
    points = 2 * len(SHAPES)
    grid = Population(
        np.repeat([r, 1.0], len(SHAPES)), np.repeat([alpha, alpha / r], len(SHAPES)), np.tile(SHAPES, 2),
        np.full(points, 1 / points),
    )  # fmt: skip
    evidence = _log_evidence(grid, x, span, log_gaps)
    likelihood = np.exp(evidence - evidence.max(axis=1, keepdims=True))
    weights = grid.weights
    for _ in range(EM_STEPS):
        posterior = likelihood * weights
        posterior /= posterior.sum(axis=1, keepdims=True)
        weights = posterior.mean(axis=0)
    return Population(grid.r, grid.alpha, grid.k, weights)


def _log_evidence(population: Population, x: np.ndarray, span: np.ndarray, log_gaps: np.ndarray) -> np.ndarray:
    """log m(gaps | point), customers x points: x gaps summing to T days, their logs to G, under Gamma(k, kλ)
    gaps with λ ~ Gamma(r, α). A constant all points share is left out; x = 0 gives 0 (no gap, no evidence).
    """
    from scipy.special import gammaln  # here: scipy is slow to load, and only the detection needs it

    r, alpha, k = population.r[None, :], population.alpha[None, :], population.k[None, :]
    x_, t, g = x[:, None], span[:, None], log_gaps[:, None]
    return (
        (k - 1) * g + k * x_ * np.log(k) - x_ * gammaln(k)
        + gammaln(r + k * x_) - gammaln(r) + r * np.log(alpha) - (r + k * x_) * np.log(alpha + k * t)
    )  # fmt: skip


def silence_chance(
    silent: np.ndarray, x: np.ndarray, span: np.ndarray, log_gaps: np.ndarray, population: Population
) -> np.ndarray:
    """P(a gap of at least `silent` days | the customer's gaps), averaged over the points' posterior."""
    from scipy.special import betainc

    evidence = _log_evidence(population, x, span, log_gaps) + np.log(np.maximum(population.weights, 1e-300))
    posterior = np.exp(evidence - evidence.max(axis=1, keepdims=True))
    posterior /= posterior.sum(axis=1, keepdims=True)
    r, alpha, k = population.r[None, :], population.alpha[None, :], population.k[None, :]
    t = silent[:, None]
    # The next gap, Gamma(k, kλ) with λ ~ Gamma(r + kx, α + kT): P(gap > t) = 1 - I_z(k, r + kx).
    z = k * t / (k * t + alpha + k * span[:, None])
    beyond = 1.0 - betainc(k, r + k * x[:, None], z)
    return (posterior * beyond).sum(axis=1)


def assess_customers(purchases: pd.DataFrame, as_of: date, prior: tuple[float, float] | None = None) -> pd.DataFrame:
    """One row per known customer: their rhythm, their silence at `as_of`, how improbable it is, a status.

    `purchases` needs columns customer_id and day (any number of rows per customer and day); days after
    `as_of` are ignored, so the assessment of a past day does not see the future. `prior` (r, α) skips
    the fit and judges memoryless (Poisson) shoppers with that one rate prior: the cases worked by hand,
    and one customer scored against a known population.
    """
    as_of = pd.Timestamp(as_of).date()
    frame = purchases[["customer_id", "day"]].dropna()
    days = pd.to_datetime(frame["day"]).dt.normalize()
    frame = pd.DataFrame({"customer_id": frame["customer_id"].astype(str), "day": days})
    frame = frame[frame["day"] <= pd.Timestamp(as_of)].drop_duplicates()
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    per = frame.groupby("customer_id", sort=True)["day"].agg(["count", "min", "max"]).join(gap_logs(frame))
    n = per["count"].to_numpy(dtype=float)
    x = n - 1
    span = (per["max"] - per["min"]).dt.days.to_numpy(dtype=float)
    waits = span - ROUNDING * x  # on a continuous clock (module doc)
    silent = (pd.Timestamp(as_of) - per["max"]).dt.days.to_numpy(dtype=float)
    log_gaps = per["log_gaps"].fillna(0.0).to_numpy(dtype=float)
    repeat = n >= 2
    if prior is None:
        population = fit_population(x[repeat], waits[repeat], log_gaps[repeat])
    else:
        population = Population.poisson(prior)
    p = silence_chance(silent, x, waits, log_gaps, population)  # one-time buyers: x = 0, T = 0, the prior alone
    status = np.select(
        [repeat & (p < CHURNED_P), repeat & (p < AT_RISK_P), repeat, p < ONE_TIME_LAPSED_P],
        ["churned", "at_risk", "active", "one_time_lapsed"],
        "one_time_recent",
    )
    mean_gap = np.where(repeat, span / np.maximum(x, 1), np.nan)
    return pd.DataFrame(
        {
            "customer_id": per.index.to_numpy(dtype=object),
            "as_of": as_of,
            "purchases": n.astype(int),
            "first_purchase": per["min"].dt.date.to_numpy(),
            "last_purchase": per["max"].dt.date.to_numpy(),
            "mean_gap_days": mean_gap,
            "median_gap_days": per["median"].to_numpy(dtype=float),
            "days_silent": silent.astype(int),
            "p_silence": p,
            "status": status,
        },
        columns=COLUMNS,
    ).reset_index(drop=True)


def churn_kpis(customers: pd.DataFrame, as_of: date | None) -> dict:
    """The ml.churn_kpis row: counts per status and churn rate = churned / repeat customers."""
    counts = customers["status"].value_counts()
    count = {s: int(counts.get(s, 0)) for s in STATUSES}
    repeat = count["active"] + count["at_risk"] + count["churned"]
    return {
        "as_of": None if as_of is None else pd.Timestamp(as_of).date(),
        "repeat_customers": repeat,
        "active": count["active"],
        "at_risk": count["at_risk"],
        "churned": count["churned"],
        "churn_rate": count["churned"] / repeat if repeat else None,
        "one_time_recent": count["one_time_recent"],
        "one_time_lapsed": count["one_time_lapsed"],
    }


def _chance(p: float) -> str:
    """A probability as a percentage with two significant digits, e.g. 0.35%, 0.020% or 0.0041%."""
    pct = p * 100
    if pct <= 0:
        return "0%"
    decimals = max(0, 1 - math.floor(math.log10(pct)))
    return f"{pct:.{decimals}f}%"


def _rhythm(row: object) -> str:
    """The customer's own rhythm in words: their purchases and the median of their gaps, as they were."""
    median = f"{row.median_gap_days:.0f} day{'s' if round(row.median_gap_days) != 1 else ''}"
    if row.purchases == 2:
        return f"they bought twice, {median} apart"
    return f"they bought {row.purchases} times, a median of {median} apart"


def churn_alerts(customers: pd.DataFrame) -> list[Alert]:
    """One alert per churned customer: a warning, critical when p_silence is below CRITICAL_P too.

    The dedupe key carries the last purchase day: the same silence stays one situation however many
    days it lasts, and a customer who comes back and stops again is a new one.
    """
    alerts = []
    for row in customers[customers["status"] == "churned"].itertuples(index=False):
        p = float(row.p_silence)
        last = pd.Timestamp(row.last_purchase).date()
        numbers = {
            "purchases": int(row.purchases),
            "mean_gap_days": round(float(row.mean_gap_days), 1),
            "median_gap_days": round(float(row.median_gap_days), 1),
            "days_silent": int(row.days_silent),
            "p_silence": float(f"{p:.3g}"),
            "last_purchase": last.isoformat(),
        }
        message = (
            f"Customer {row.customer_id} has not bought for {int(row.days_silent)} days; {_rhythm(row)}:"
            f" a silence that long has a {_chance(p)} chance if they were still a customer."
        )
        alerts.append(
            Alert(
                kind=KIND,
                severity="critical" if p < CRITICAL_P else "warning",
                entity_type="customer",
                entity_id=str(row.customer_id),
                detected_on=pd.Timestamp(row.as_of).date(),
                message=message,
                numbers=numbers,
                dedupe_key=f"{KIND}:{row.customer_id}:{last.isoformat()}",
            )
        )
    return alerts


def refresh_churn(cursor: Cursor, as_of: date | None = None) -> tuple[dict, list[Alert]]:
    """Recompute ml.customer_churn and the day's ml.churn_kpis row from core.sales; record the alerts.

    Runs in the caller's transaction: the table is replaced (DELETE + one INSERT), the KPI row of
    `as_of` upserted and the anomalies recorded together, or not at all. `as_of` defaults to the
    latest sale_date; sales after it are not seen. Without any sale there is no day to judge: the
    table is emptied, open churn alerts are resolved and no KPI row is written. Returns the KPI row
    and the alerts.
    """
    if as_of is None:
        cursor.execute("SELECT max(sale_date) FROM core.sales")
        as_of = cursor.fetchone()[0]
    purchases = pd.DataFrame(columns=["customer_id", "day"])
    if as_of is not None:
        cursor.execute(
            "SELECT DISTINCT customer_id, sale_date FROM core.sales WHERE customer_id IS NOT NULL AND sale_date <= %s",
            (as_of,),
        )
        purchases = pd.DataFrame(cursor.fetchall(), columns=["customer_id", "day"])
    customers = assess_customers(purchases, as_of or date.today())
    kpis = churn_kpis(customers, as_of)
    alerts = churn_alerts(customers)

    refresh_in_turn(cursor, "ml.customer_churn")
    cursor.execute("DELETE FROM ml.customer_churn")
    rows = [
        (
            row.customer_id,
            row.as_of,
            int(row.purchases),
            row.first_purchase,
            row.last_purchase,
            None if pd.isna(row.mean_gap_days) else float(row.mean_gap_days),
            None if pd.isna(row.median_gap_days) else float(row.median_gap_days),
            int(row.days_silent),
            None if pd.isna(row.p_silence) else float(row.p_silence),
            row.status,
        )
        for row in customers.itertuples(index=False)
    ]
    execute_values(cursor, f"INSERT INTO ml.customer_churn ({', '.join(COLUMNS)}) VALUES %s", rows, page_size=5000)
    if as_of is not None:
        cursor.execute(
            """
            INSERT INTO ml.churn_kpis
                (as_of, repeat_customers, active, at_risk, churned, churn_rate, one_time_recent, one_time_lapsed)
            VALUES (%(as_of)s, %(repeat_customers)s, %(active)s, %(at_risk)s, %(churned)s, %(churn_rate)s,
                    %(one_time_recent)s, %(one_time_lapsed)s)
            ON CONFLICT (as_of) DO UPDATE SET
                repeat_customers = EXCLUDED.repeat_customers, active = EXCLUDED.active,
                at_risk = EXCLUDED.at_risk, churned = EXCLUDED.churned, churn_rate = EXCLUDED.churn_rate,
                one_time_recent = EXCLUDED.one_time_recent, one_time_lapsed = EXCLUDED.one_time_lapsed,
                computed_at = now()
            """,
            kpis,
        )
    record_anomalies(cursor, KIND, alerts)
    return kpis, alerts
