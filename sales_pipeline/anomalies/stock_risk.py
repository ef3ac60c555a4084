"""Stock risk: a product that will run out in a store before the supplier can deliver more.

Rules
-----
- The **position** of a product in a store is its latest count (``core.stock``, counted on or before
  as_of): ``projected_on_hand = max(on_hand - units sold after the count day up to as_of, 0)`` (sales by
  ``sale_date``, the store's business day, like the count).
- **Demand** is the latest published demand forecast of the pair (``ml.forecasts``, target 'demand',
  scope_id ``<product_id>@<store_id>``, its latest origin on or before as_of), for the days after
  as_of (normally 7; a closed day forecasts 0). ``daily_demand`` is the mean over those days.
- **Days until stock-out**: the stock runs out during the first day k >= 1 whose cumulative forecast
  reaches the projected on hand, at ``k - 1 + (on hand - cumulative of the k - 1 days before) / yhat_k``
  (linear within the day, so 24 units at 9.6 a day last 2.5 days). Past the forecast's last day the
  mean daily forecast carries on. 0 when nothing is left; infinite when no demand is forecast.
  ``stockout_day`` = as_of + ceil(days) (as_of when already out; none when never, or past the last day a
  date can hold: a slow mover's rate of a few units a century).
- **Lead time**: ``core.products.lead_time_days``; when it is unknown ``DEFAULT_LEAD_TIME_DAYS`` (7)
  is assumed and the message says so (``lead_time_known`` false).
- **At risk** when days until stock-out <= lead time: it will be out before an order placed today
  arrives. A pair forecast to sell under ``MIN_UNITS_BEFORE_DELIVERY`` (half a unit) over the lead time
  (at least one day) is never at risk, even with nothing on the shelf (a delisted product, a store
  about to close, a product silent for months whose intermittent rate decays toward 0 but never
  reaches it): most likely nothing would be lost.
- **Severity**: critical when days <= lead time / 2 (already out included), else warning; with units
  on order (``on_order > 0``) one step lower (critical -> warning, warning -> info), since
  a delivery is already on its way, and the message says so.
- A pair without a demand forecast (or without any forecast day after as_of) is not assessed:
  ``assessed`` is false and it raises no alert.
- One alert per pair at risk, keyed ``stock_risk:<product_id>@<store_id>:<counted_on>``: a new count is
  a new situation. A pair no longer at risk is resolved by ``record_anomalies``.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.anomalies.store import record_anomalies
from sales_pipeline.records import Alert

KIND = "stock_risk"
DEFAULT_LEAD_TIME_DAYS = 7
# Less than this forecast over the lead time is no risk (module rules): at 1M order lines 1,167 of
# 30,400 positions were empty shelves of products unsold for months, each a critical "reorder now".
MIN_UNITS_BEFORE_DELIVERY = 0.5
LOWER = {"critical": "warning", "warning": "info", "info": "info"}

POSITION_COLUMNS = ["product_id", "store_id", "counted_on", "on_hand", "on_order", "sold_since_count", "lead_time_days"]
DEMAND_COLUMNS = ["product_id", "store_id", "day", "yhat"]
PROJECTION_COLUMNS = [
    "product_id", "store_id", "product_name", "as_of", "counted_on", "on_hand", "sold_since_count",
    "projected_on_hand", "on_order", "forecast_days", "daily_demand", "days_until_stockout", "stockout_day",
    "lead_time_days", "lead_time_known", "assessed", "at_risk", "severity",
]  # fmt: skip


def project_stockouts(positions: pd.DataFrame, demand: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """One row per position: projected on hand, daily demand, days until stock-out, risk and severity.

    `positions`: product_id, store_id, counted_on, on_hand, on_order, sold_since_count, lead_time_days
    (NaN when unknown), optionally product_name. `demand`: product_id, store_id, day, yhat; only the
    days after `as_of` are used.
    """
    for frame, needed, what in ((positions, POSITION_COLUMNS, "positions"), (demand, DEMAND_COLUMNS, "demand")):
        missing = set(needed) - set(frame.columns)
        if missing:
            raise ValueError(f"project_stockouts: {what} lacks columns {sorted(missing)}")
    out = _positions_on(positions, as_of)
    yhat, own_horizon = _demand_ahead(demand, out[["product_id", "store_id"]], as_of)
    assessed = own_horizon > 0
    daily = np.divide(yhat.sum(axis=1), own_horizon, out=np.zeros(len(out)), where=assessed)
    on_hand = out["projected_on_hand"].to_numpy(dtype=float)
    days = np.where(assessed, _days_until_stockout(on_hand, yhat, own_horizon, daily), np.nan)

    out["forecast_days"] = own_horizon.astype("int64")
    out["daily_demand"] = np.where(assessed, daily, np.nan)
    out["days_until_stockout"] = days
    last = (date.max - as_of).days
    out["stockout_day"] = [as_of + timedelta(days=math.ceil(d)) if d <= last else None for d in days]  # NaN: none
    out["assessed"] = assessed
    lead = out["lead_time_days"].to_numpy()
    selling = daily * np.maximum(lead, 1) >= MIN_UNITS_BEFORE_DELIVERY
    out["at_risk"] = assessed & selling & (np.nan_to_num(days, nan=np.inf) <= lead)
    out["severity"] = [
        _severity(d, lt, oo) if risk else None
        for d, lt, oo, risk in zip(days, out["lead_time_days"], out["on_order"], out["at_risk"], strict=True)
    ]
    return out[PROJECTION_COLUMNS]


def _positions_on(positions: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The positions with whole-unit counts, the stock projected to as_of and the lead time assumed."""
    out = positions.reset_index(drop=True).copy()
    if "product_name" not in out.columns:
        out["product_name"] = None
    out["as_of"] = as_of
    out["counted_on"] = pd.to_datetime(out["counted_on"]).dt.date
    for column in ("on_hand", "on_order", "sold_since_count"):
        out[column] = pd.to_numeric(out[column], errors="coerce").fillna(0).astype("int64")
    out["projected_on_hand"] = (out["on_hand"] - out["sold_since_count"]).clip(lower=0)
    lead = pd.to_numeric(out["lead_time_days"], errors="coerce")
    out["lead_time_known"] = lead.notna()
    out["lead_time_days"] = lead.fillna(DEFAULT_LEAD_TIME_DAYS).astype("int64")
    return out


def _demand_ahead(demand: pd.DataFrame, pairs: pd.DataFrame, as_of: date) -> tuple[np.ndarray, np.ndarray]:
    """The forecast days after as_of as a matrix, one row per pair and one column per day ahead (1..horizon).

    Returns the matrix (0 where a pair has no forecast that day) and each pair's own horizon: its last
    forecast day, 0 when it has none (days missing before it count as no demand).
    """
    ahead = demand.loc[:, DEMAND_COLUMNS].copy()
    ahead["k"] = (pd.to_datetime(ahead["day"]) - pd.Timestamp(as_of)).dt.days
    ahead = ahead[ahead["k"] >= 1]
    ahead["yhat"] = pd.to_numeric(ahead["yhat"], errors="coerce").fillna(0.0).clip(lower=0.0)
    horizon = int(ahead["k"].max()) if len(ahead) else 0
    if not horizon:
        return np.zeros((len(pairs), 0)), np.zeros(len(pairs))
    wide = ahead.pivot_table(index=["product_id", "store_id"], columns="k", values="yhat", aggfunc="sum").reindex(
        index=pd.MultiIndex.from_frame(pairs), columns=range(1, horizon + 1)
    )
    has_day = wide.notna().to_numpy()
    own_horizon = np.where(has_day.any(axis=1), horizon - np.argmax(has_day[:, ::-1], axis=1), 0)
    return wide.fillna(0.0).to_numpy(dtype=float), own_horizon.astype(float)


def _days_until_stockout(
    on_hand: np.ndarray, yhat: np.ndarray, own_horizon: np.ndarray, daily: np.ndarray
) -> np.ndarray:
    """Days until the stock runs out (module rules): 0 when out, inf when no demand, NaN without a forecast."""
    days = np.full(len(on_hand), np.nan)
    if yhat.shape[1]:
        cumulative = np.cumsum(yhat, axis=1)
        reached = cumulative >= on_hand[:, None]
        found = reached.any(axis=1)
        k = np.argmax(reached, axis=1)  # first day (0-based) the cumulative demand reaches the stock
        rows = np.arange(len(on_hand))
        before = np.where(k > 0, cumulative[rows, np.maximum(k - 1, 0)], 0.0)
        that_day = yhat[rows, k]
        with np.errstate(divide="ignore", invalid="ignore"):
            within = k + (on_hand - before) / that_day
            beyond = own_horizon + (on_hand - cumulative[:, -1]) / daily
        days = np.where(found, within, np.where(daily > 0, beyond, np.inf))
    return np.where(on_hand <= 0, 0.0, days)


def _severity(days: float, lead_time: int, on_order: int) -> str:
    severity = "critical" if days <= lead_time / 2 else "warning"
    return LOWER[severity] if on_order > 0 else severity


def stock_risk_alerts(projection: pd.DataFrame) -> list[Alert]:
    """One Alert per position at risk in a project_stockouts result."""
    alerts = []
    for row in projection[projection["at_risk"]].itertuples(index=False):
        key = f"{row.product_id}@{row.store_id}"
        numbers = {
            "as_of": row.as_of.isoformat(),
            "counted_on": row.counted_on.isoformat(),
            "on_hand": int(row.on_hand),
            "sold_since_count": int(row.sold_since_count),
            "projected_on_hand": int(row.projected_on_hand),
            "on_order": int(row.on_order),
            "daily_demand": round(float(row.daily_demand), 3),
            "forecast_days": int(row.forecast_days),
            "days_until_stockout": round(float(row.days_until_stockout), 2),
            "stockout_day": row.stockout_day.isoformat(),
            "lead_time_days": int(row.lead_time_days),
            "lead_time_known": bool(row.lead_time_known),
        }
        alerts.append(
            Alert(
                kind=KIND,
                severity=row.severity,
                entity_type="product_store",
                entity_id=key,
                detected_on=row.as_of,
                message=_message(row),
                numbers=numbers,
                dedupe_key=f"{KIND}:{key}:{row.counted_on.isoformat()}",
            )
        )
    return alerts


def _number(value: float) -> str:
    """1 decimal, without a trailing .0: 2.5, 3, 0.4."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _days(value: float) -> str:
    text = _number(value)
    return f"{text} day" if text == "1" else f"{text} days"


def _message(row) -> str:
    name = f" ({row.product_name})" if isinstance(row.product_name, str) and row.product_name else ""
    subject = f"Product {row.product_id}{name} at store {row.store_id}"
    demand = f"~{_number(row.daily_demand)} sold a day"
    if row.on_hand <= 0:
        state = f"is out of stock (none counted on {row.counted_on.isoformat()}, {demand})"
    elif row.projected_on_hand <= 0:
        state = (
            f"has probably run out ({row.on_hand} counted on {row.counted_on.isoformat()},"
            f" {row.sold_since_count} sold since, {demand})"
        )
    else:
        state = (
            f"will run out in about {_days(row.days_until_stockout)}"
            f" (projected {row.projected_on_hand} on hand, {demand})"
        )
    if row.lead_time_known:
        supplier = f"the supplier needs {_days(row.lead_time_days)}"
    else:
        supplier = f"the supplier's lead time is unknown ({_days(row.lead_time_days)} assumed)"
    link = "and" if row.projected_on_hand <= 0 else "but"
    if row.on_order > 0:
        return f"{subject} {state} {link} {supplier}; {row.on_order} units are already on order."
    return f"{subject} {state} {link} {supplier}: reorder now."


# --- the warehouse -------------------------------------------------------------------------------

_POSITIONS_QUERY = """
WITH latest AS (
    SELECT DISTINCT ON (product_id, store_id) product_id, store_id, as_of AS counted_on, on_hand, on_order
    FROM core.stock
    WHERE as_of <= %(as_of)s
    ORDER BY product_id, store_id, as_of DESC
),
sold AS (
    SELECT product_id, store_id, sale_date, sum(quantity) AS units
    FROM core.sales
    WHERE sale_date > (SELECT min(counted_on) FROM latest) AND sale_date <= %(as_of)s
    GROUP BY product_id, store_id, sale_date
)
SELECT l.product_id, l.store_id, p.name AS product_name, l.counted_on, l.on_hand, l.on_order,
       coalesce(sum(s.units), 0)::bigint AS sold_since_count, p.lead_time_days
FROM latest AS l
LEFT JOIN sold AS s ON s.product_id = l.product_id AND s.store_id = l.store_id AND s.sale_date > l.counted_on
LEFT JOIN core.products AS p ON p.product_id = l.product_id
GROUP BY l.product_id, l.store_id, p.name, l.counted_on, l.on_hand, l.on_order, p.lead_time_days
ORDER BY l.product_id, l.store_id
"""

_DEMAND_QUERY = """
WITH latest AS (
    SELECT scope_id, max(origin) AS origin
    FROM ml.forecasts
    WHERE target = 'demand' AND scope = 'product_store' AND origin <= %(as_of)s
    GROUP BY scope_id
)
SELECT f.scope_id, f.day, f.yhat
FROM ml.forecasts AS f
JOIN latest AS l ON l.scope_id = f.scope_id AND l.origin = f.origin
WHERE f.target = 'demand' AND f.scope = 'product_store' AND f.day > %(as_of)s
"""


def latest_demand_origin(cursor: Cursor) -> date | None:
    """The latest origin of a published demand forecast, or None when there is none."""
    cursor.execute("SELECT max(origin) FROM ml.forecasts WHERE target = 'demand'")
    return cursor.fetchone()[0]


def load_positions(cursor: Cursor, as_of: date) -> pd.DataFrame:
    """Each product and store's latest count on or before as_of, the units sold since, and the lead time."""
    cursor.execute(_POSITIONS_QUERY, {"as_of": as_of})
    return pd.DataFrame(cursor.fetchall(), columns=[column.name for column in cursor.description])


def load_demand(cursor: Cursor, as_of: date) -> pd.DataFrame:
    """The latest demand forecast of each product and store, days after as_of (product_id, store_id, day, yhat)."""
    cursor.execute(_DEMAND_QUERY, {"as_of": as_of})
    frame = pd.DataFrame(cursor.fetchall(), columns=["scope_id", "day", "yhat"])
    # Split on the last '@' (a store id never holds one; the product id is the rest).
    parts = frame["scope_id"].astype(str).str.rsplit("@", n=1, expand=True)
    frame["product_id"] = parts[0] if len(frame) else pd.Series(dtype=str)
    frame["store_id"] = parts[1] if len(frame) else pd.Series(dtype=str)
    return frame[DEMAND_COLUMNS]


def refresh_stock_risks(cursor: Cursor, as_of: date | None = None) -> tuple[pd.DataFrame, list[Alert]]:
    """Project every position's stock-out at `as_of` (default: the latest demand-forecast origin) and record
    the risks in ml.anomalies; returns the projection (assessed false where no demand forecast exists) and
    the alerts. Without any demand forecast nothing can be judged, and ml.anomalies is left as it is.
    """
    if as_of is None:
        as_of = latest_demand_origin(cursor)
        if as_of is None:
            return pd.DataFrame(columns=PROJECTION_COLUMNS), []
    projection = project_stockouts(load_positions(cursor, as_of), load_demand(cursor, as_of), as_of)
    alerts = stock_risk_alerts(projection)
    record_anomalies(cursor, KIND, alerts)
    return projection, alerts
