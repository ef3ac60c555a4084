"""What a daily report shows, read from the warehouse for one day and one scope.

Definitions
-----------
- **Scope**: ``all`` (the whole chain), ``store:<store_id>`` or ``category:<category>``.
- **Headline periods** (cover): the day against the same weekday a week before; the week to date
  (Monday to the day) and the month to date (the 1st to the day) against the same days of the week
  and of the month before (a month before with fewer days stops at its last day). From
  ``marts.daily_kpis``; gross margin covers the lines whose cost is known (the mart's definition).
- **History**: revenue per day over the ``HISTORY_DAYS`` ending at the day (days without sales are
  0); a scope with fewer than ``MIN_HISTORY_DAYS`` days since its first sale gets a sentence instead
  of the chart. The forecast is the latest published one (``ml.forecasts``) made on or before the day.
- **Weeks** (breakdown, top products, fallers): the 7 days ending at the day against the 7 before,
  from ``core.sales`` by reporting day (any day and scope, a category's stores too). Ranks as in
  ``marts.top_products``: by revenue, ties share a rank, every product ranked within the top N kept.
  Fallers are the products whose revenue fell the most, in money.
- **Stock at risk**: the active ``stock_risk`` anomalies of the scope. The suggested order covers
  the lead time plus ``REVIEW_DAYS`` of forecast demand, less the projected on hand and what is on
  order, rounded up (never below 0).
- **Forecast accuracy**: the forecast made ``ACCURACY_LAG_DAYS`` before the day (the latest origin
  on or before day - 7) against the revenue of its days up to the day; closed days are left out.
  MASE = MAE / mean |y(t) - y(t-7)| over the 28 days up to the origin; sMAPE in %, over the days with
  a forecast or a sale; bias = (sum of forecasts - sum of actuals) / sum of actuals.

Stock health, anomalies and churn are the warehouse's current state (a report of an earlier day shows
them as they are now); forecasts and anomalies are read through their documented columns only.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.warehouse.db import read_frame

HISTORY_DAYS = 90
MIN_HISTORY_DAYS = 28
TOP_N = 5
FALLERS = 5
REVIEW_DAYS = 7
ACCURACY_LAG_DAYS = 7
MASE_SCALE_DAYS = 28
MAX_ALERTS = 25
CHURN_DAYS = 90
KPIS = ("revenue", "orders", "units", "average_order_value", "gross_margin")
PERIODS = ("day", "week", "month")
SEVERITY_ORDER = ("critical", "warning", "info")


@dataclass(frozen=True)
class Scope:
    """What a report covers: the chain (`all`), one store or one category."""

    kind: str  # all | store | category
    id: str = ""

    @classmethod
    def parse(cls, text: str) -> Scope:
        """'all', 'store:S01' or 'category:Bakery' (the category may be '' for products without one)."""
        if text == "all":
            return cls("all")
        kind, sep, ident = text.partition(":")
        if not sep or kind not in ("store", "category") or (kind == "store" and not ident):
            raise ValueError(f"scope {text!r} is not all, store:<store id> or category:<category>")
        return cls(kind, ident)

    def __str__(self) -> str:
        return "all" if self.kind == "all" else f"{self.kind}:{self.id}"

    @property
    def slug(self) -> str:
        """For file names: chain, store-S01, category-Bakery."""
        if self.kind == "all":
            return "chain"
        return f"{self.kind}-" + (re.sub(r"[^A-Za-z0-9_-]+", "_", self.id).strip("_")[:60] or "none")


@dataclass
class ReportData:
    """Everything one report shows; the frames are empty when there is nothing to show."""

    day: dt.date
    scope: Scope
    scope_name: str
    headline: dict[str, dict[str, tuple[float | None, float | None]]]  # period -> kpi -> (value, previous)
    history: pd.DataFrame  # day, revenue
    history_days: int
    forecast: pd.DataFrame  # day, yhat, yhat_lower_80/upper_80/lower_95/upper_95
    breakdowns: dict[str, pd.DataFrame]  # category|store -> name, revenue, previous
    top_products: pd.DataFrame  # rank, product_id, name, revenue, units, previous_rank, rank_change
    fallers: pd.DataFrame  # product_id, name, revenue, previous, change
    stock_counted_on: dt.date | None
    stock_risks: pd.DataFrame  # product_id, name, store_id, on_hand, days_until_stockout, lead_time_days, ...
    alerts: pd.DataFrame  # severity, kind, message, first_seen, status (open, acknowledged, snoozed)
    alerts_total: int
    churn: pd.DataFrame  # as_of, churn_rate
    accuracy_origin: dt.date | None
    accuracy: pd.DataFrame  # scope, scope_id, label, mase, smape, bias
    accuracy_series: pd.DataFrame  # day, actual, yhat (the report's own scope)

    @property
    def sold_on_the_day(self) -> bool:
        return bool(self.headline["day"]["orders"][0])


def load_report_data(cursor: Cursor, day: dt.date, scope: Scope, timezone: str) -> ReportData:
    """Read everything the report of `day` for `scope` shows, in the caller's transaction."""
    scope_name = _scope_name(cursor, scope)
    history, history_days = _history(cursor, day, scope)
    weeks = _fortnight(cursor, day, scope, timezone)
    top, fallers = _products(weeks)
    counted_on, risks = _stock(cursor, scope)
    alerts, alerts_total = _alerts(cursor, scope)
    origin, accuracy, accuracy_series = _accuracy(cursor, day, scope)
    return ReportData(
        day=day,
        scope=scope,
        scope_name=scope_name,
        headline=_headline(cursor, day, scope),
        history=history,
        history_days=history_days,
        forecast=_forecast(cursor, day, scope),
        breakdowns=_breakdowns(weeks, scope),
        top_products=top,
        fallers=fallers,
        stock_counted_on=counted_on,
        stock_risks=risks,
        alerts=alerts,
        alerts_total=alerts_total,
        churn=read_frame(
            cursor,
            "SELECT as_of, churn_rate FROM ml.churn_kpis WHERE as_of BETWEEN %s AND %s ORDER BY as_of",
            (day - dt.timedelta(days=CHURN_DAYS - 1), day),
        ),
        accuracy_origin=origin,
        accuracy=accuracy,
        accuracy_series=accuracy_series,
    )


def report_scopes(cursor: Cursor) -> list[Scope]:
    """The scopes the daily reports are built for: the chain, then each store."""
    cursor.execute("SELECT store_id FROM core.stores ORDER BY store_id")
    return [Scope("all"), *(Scope("store", row[0]) for row in cursor.fetchall())]


def _scope_name(cursor: Cursor, scope: Scope) -> str:
    if scope.kind == "store":
        cursor.execute("SELECT name FROM core.stores WHERE store_id = %s", (scope.id,))
        row = cursor.fetchone()
        if row is None:
            raise ValueError(f"scope {scope}: no store {scope.id!r} in core.stores")
        return f"{scope.id} {row[0]}" if row[0] else scope.id
    if scope.kind == "category":
        cursor.execute("SELECT 1 FROM core.products WHERE coalesce(category, '') = %s LIMIT 1", (scope.id,))
        if cursor.fetchone() is None:
            raise ValueError(f"scope {scope}: no product of category {scope.id!r} in core.products")
    return scope.id


def _filters(scope: Scope) -> dict[str, str | None]:
    """The store and category a query keeps (None: all), as %(store)s and %(category)s."""
    return {
        "store": scope.id if scope.kind == "store" else None,
        "category": scope.id if scope.kind == "category" else None,
    }


def _kpi_scope(scope: Scope) -> tuple[str, str]:
    """The (scope, scope_id) of marts.daily_kpis and ml.forecasts for a report scope."""
    return (scope.kind, scope.id)


# --- cover -------------------------------------------------------------------------------------


def period_bounds(day: dt.date) -> dict[str, tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]]]:
    """Per headline period: (first, last) day and the (first, last) day it is compared with."""
    week_start = day - dt.timedelta(days=day.weekday())
    week = dt.timedelta(days=7)
    month_start = day.replace(day=1)
    previous_start = (month_start - dt.timedelta(days=1)).replace(day=1)
    previous_end = min(previous_start + (day - month_start), month_start - dt.timedelta(days=1))
    return {
        "day": ((day, day), (day - week, day - week)),
        "week": ((week_start, day), (week_start - week, day - week)),
        "month": ((month_start, day), (previous_start, previous_end)),
    }


def _headline(cursor: Cursor, day: dt.date, scope: Scope) -> dict[str, dict[str, tuple[float | None, float | None]]]:
    bounds = period_bounds(day)
    first = min(previous[0] for _, previous in bounds.values())
    kpis = read_frame(
        cursor,
        "SELECT day, revenue, orders, units, revenue_with_cost, gross_margin FROM marts.daily_kpis"
        " WHERE (scope, scope_id) = (%s, %s) AND day BETWEEN %s AND %s",
        (*_kpi_scope(scope), first, day),
    )

    def totals(first: dt.date, last: dt.date) -> dict[str, float | None]:
        rows = kpis[(kpis["day"] >= first) & (kpis["day"] <= last)]
        revenue, orders = float(rows["revenue"].sum()), int(rows["orders"].sum())
        margins = rows["gross_margin"].dropna()
        return {
            "revenue": revenue,
            "orders": orders,
            "units": int(rows["units"].sum()),
            "average_order_value": revenue / orders if orders else None,
            "gross_margin": float(margins.sum()) if len(margins) else None,
        }

    headline = {}
    for period, (current, previous) in bounds.items():
        now, before = totals(*current), totals(*previous)
        headline[period] = {kpi: (now[kpi], before[kpi]) for kpi in KPIS}
    return headline


def change(value: float | None, previous: float | None) -> float | None:
    """value / previous - 1, None when there is nothing to compare with (as the dashboard's)."""
    if value is None or not previous or previous < 0:
        return None
    return value / previous - 1


# --- revenue and forecast ----------------------------------------------------------------------


def _history(cursor: Cursor, day: dt.date, scope: Scope) -> tuple[pd.DataFrame, int]:
    first = day - dt.timedelta(days=HISTORY_DAYS - 1)
    rows = read_frame(
        cursor,
        "SELECT day, revenue::float8 AS revenue FROM marts.daily_kpis"
        " WHERE (scope, scope_id) = (%s, %s) AND day BETWEEN %s AND %s",
        (*_kpi_scope(scope), first, day),
    )
    days = pd.Series(pd.date_range(first, day, freq="D").date, name="day")
    history = pd.DataFrame({"day": days}).merge(rows, on="day", how="left").fillna({"revenue": 0.0})
    cursor.execute(
        "SELECT min(day) FROM marts.daily_kpis WHERE (scope, scope_id) = (%s, %s) AND day <= %s",
        (*_kpi_scope(scope), day),
    )
    first_sale = cursor.fetchone()[0]
    return history, (day - first_sale).days + 1 if first_sale else 0


def _forecast(cursor: Cursor, day: dt.date, scope: Scope) -> pd.DataFrame:
    return read_frame(
        cursor,
        """
        SELECT day, yhat, yhat_lower_80, yhat_upper_80, yhat_lower_95, yhat_upper_95
        FROM ml.forecasts
        WHERE (target, scope, scope_id) = ('sales', %(scope)s, %(id)s) AND day > %(day)s
          AND origin = (SELECT max(origin) FROM ml.forecasts
                        WHERE (target, scope, scope_id) = ('sales', %(scope)s, %(id)s) AND origin <= %(day)s)
        ORDER BY day
        """,
        {"scope": scope.kind, "id": scope.id, "day": day},
    )


# --- the last two weeks ------------------------------------------------------------------------


def _fortnight(cursor: Cursor, day: dt.date, scope: Scope, timezone: str) -> pd.DataFrame:
    """Revenue and units per product, store and category, for the last 7 days and the 7 before."""
    return read_frame(
        cursor,
        """
        SELECT s.product_id, coalesce(p.name, s.product_id) AS name, s.store_id, coalesce(st.name, s.store_id)
                   AS store_name, coalesce(p.category, '') AS category,
               core.reporting_day(s.sold_at, s.sale_date, s.time_given, %(tz)s) > %(day)s::date - 7 AS current,
               sum(s.revenue)::float8 AS revenue, sum(s.quantity)::int AS units
        FROM core.sales AS s
        LEFT JOIN core.products AS p USING (product_id)
        LEFT JOIN core.stores AS st USING (store_id)
        WHERE core.reported_between(s.sold_at, s.sale_date, s.time_given, %(tz)s, %(day)s::date - 13, %(day)s)
          AND (%(store)s IS NULL OR s.store_id = %(store)s)
          AND (%(category)s IS NULL OR coalesce(p.category, '') = %(category)s)
        GROUP BY 1, 2, 3, 4, 5, 6
        """,
        {"tz": timezone, "day": day, **_filters(scope)},
    )


def _by_week(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Revenue (and units) per key for the last 7 days (`revenue`) and the 7 before (`previous`)."""
    columns = [*keys, "revenue", "units", "previous", "previous_units"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    pivot = frame.pivot_table(index=keys, columns="current", values=["revenue", "units"], aggfunc="sum", fill_value=0)
    out = pd.DataFrame(index=pivot.index)
    for value, current, name in (
        ("revenue", True, "revenue"),
        ("units", True, "units"),
        ("revenue", False, "previous"),
        ("units", False, "previous_units"),
    ):
        out[name] = pivot[(value, current)] if (value, current) in pivot.columns else 0
    return out.reset_index()[columns]


def _breakdowns(weeks: pd.DataFrame, scope: Scope) -> dict[str, pd.DataFrame]:
    """The chain by category and by store; a store by category; a category by store."""
    dimensions = {"all": ("category", "store"), "store": ("category",), "category": ("store",)}[scope.kind]
    out = {}
    for dimension in dimensions:
        key = "category" if dimension == "category" else "store_name"
        table = _by_week(weeks, [key]).rename(columns={key: "name"})
        out[dimension] = table.sort_values(["revenue", "name"], ascending=[False, True]).reset_index(drop=True)
    return out


def _products(weeks: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    products = _by_week(weeks, ["product_id", "name"])
    selling = products[products["revenue"] > 0].copy()
    selling["rank"] = selling["revenue"].rank(method="min", ascending=False).astype(int)
    before = products[products["previous"] > 0].set_index("product_id")["previous"]
    previous_rank = before.rank(method="min", ascending=False).astype(int)
    selling["previous_rank"] = selling["product_id"].map(previous_rank).astype("Int64")
    selling["rank_change"] = selling["previous_rank"] - selling["rank"]
    top = selling[selling["rank"] <= TOP_N].sort_values(["rank", "product_id"]).reset_index(drop=True)
    falling = products.assign(change=products["revenue"] - products["previous"])
    fallers = falling[falling["change"] < 0].sort_values(["change", "product_id"]).head(FALLERS)
    return top, fallers.reset_index(drop=True)


# --- stock, alerts, churn ----------------------------------------------------------------------


STOCK_RISK_COLUMNS = [
    "severity",
    "product_id",
    "name",
    "category",
    "store_id",
    "on_hand",
    "on_order",
    "daily_demand",
    "days_until_stockout",
    "lead_time_days",
    "suggested_order",
]


def _stock(cursor: Cursor, scope: Scope) -> tuple[dt.date | None, pd.DataFrame]:
    """The latest stock count of the scope (None without one) and its products at risk."""
    cursor.execute(
        "SELECT max(h.as_of) FROM marts.stock_health AS h LEFT JOIN core.products AS p USING (product_id)"
        " WHERE (%(store)s IS NULL OR h.store_id = %(store)s)"
        " AND (%(category)s IS NULL OR coalesce(p.category, '') = %(category)s)",
        _filters(scope),
    )
    counted_on = cursor.fetchone()[0]
    frame = _stock_risks(cursor)
    if frame.empty:
        return counted_on, pd.DataFrame(columns=STOCK_RISK_COLUMNS)
    if scope.kind == "store":
        frame = frame[frame["store_id"] == scope.id]
    elif scope.kind == "category":
        frame = frame[frame["category"] == scope.id]
    frame["suggested_order"] = [
        suggested_order(demand, lead, on_hand, on_order)
        for demand, lead, on_hand, on_order in frame[["daily_demand", "lead_time_days", "on_hand", "on_order"]]
        .astype(float)
        .itertuples(index=False)
    ]
    frame = frame.assign(rank=frame["severity"].map({s: i for i, s in enumerate(SEVERITY_ORDER)}))
    frame = frame.sort_values(["rank", "days_until_stockout", "product_id", "store_id"])
    return counted_on, frame[STOCK_RISK_COLUMNS].reset_index(drop=True)


def _stock_risks(cursor: Cursor) -> pd.DataFrame:
    """Every active stock-out risk, with its product's name and category (empty when none)."""
    risks = read_frame(
        cursor,
        """
        SELECT a.severity, a.entity_id, a.numbers
        FROM ml.anomalies AS a
        WHERE a.active AND a.kind = 'stock_risk' AND a.entity_type = 'product_store'
        """,
    )
    if risks.empty:
        return risks
    pairs = risks["entity_id"].str.rsplit("@", n=1, expand=True)  # a store id never holds an '@'
    numbers = pd.DataFrame(list(risks["numbers"]))
    frame = pd.DataFrame(
        {
            "severity": risks["severity"],
            "product_id": pairs[0],
            "store_id": pairs[1],
            "on_hand": numbers.get("projected_on_hand", numbers.get("on_hand")),
            "on_order": numbers.get("on_order", 0),
            "daily_demand": numbers.get("daily_demand"),
            "days_until_stockout": numbers.get("days_until_stockout"),
            "lead_time_days": numbers.get("lead_time_days"),
        }
    )
    names = read_frame(
        cursor,
        "SELECT product_id, coalesce(name, product_id) AS name, coalesce(category, '') AS category"
        " FROM core.products WHERE product_id = ANY(%s)",
        (list(frame["product_id"].unique()),),
    )
    frame = frame.merge(names, on="product_id", how="left")
    frame["name"] = frame["name"].fillna(frame["product_id"])
    return frame


def suggested_order(daily_demand: float, lead_time_days: float, on_hand: float, on_order: float) -> int:
    """Units to order now: the lead time and REVIEW_DAYS of demand, less what is there and coming."""
    if any(math.isnan(v) for v in (daily_demand, lead_time_days)):
        return 0
    needed = daily_demand * (lead_time_days + REVIEW_DAYS) - (on_hand or 0) - (on_order or 0)
    return max(math.ceil(round(needed, 6)), 0)


def _alerts(cursor: Cursor, scope: Scope) -> tuple[pd.DataFrame, int]:
    """The scope's active anomalies, most severe first (at most MAX_ALERTS), and how many there are."""
    alerts = read_frame(
        cursor,
        """
        SELECT a.severity, a.kind, a.entity_type, a.entity_id, a.message, a.first_seen_at::date AS first_seen,
               coalesce(p.category, '') AS category, coalesce(o.status, 'open') AS status
        FROM ml.anomalies AS a
        LEFT JOIN ops.alerts AS o USING (dedupe_key)  -- acknowledged (or snoozed) by a person, or not
        LEFT JOIN core.products AS p
          ON p.product_id = CASE a.entity_type WHEN 'product' THEN a.entity_id
                                               WHEN 'product_store' THEN split_part(a.entity_id, '@', 1) END
        WHERE a.active
        ORDER BY array_position(%s, a.severity), a.kind, a.entity_id
        """,
        (list(SEVERITY_ORDER),),
    )
    if scope.kind == "store":
        mine = ((alerts["entity_type"] == "store") & (alerts["entity_id"] == scope.id)) | (
            (alerts["entity_type"] == "product_store") & alerts["entity_id"].str.endswith("@" + scope.id)
        )
        alerts = alerts[mine]
    elif scope.kind == "category":
        mine = ((alerts["entity_type"] == "category") & (alerts["entity_id"] == scope.id)) | (
            alerts["entity_type"].isin(["product", "product_store"]) & (alerts["category"] == scope.id)
        )
        alerts = alerts[mine]
    return alerts.head(MAX_ALERTS).reset_index(drop=True), len(alerts)


# --- forecast accuracy -------------------------------------------------------------------------


def _accuracy(cursor: Cursor, day: dt.date, scope: Scope) -> tuple[dt.date | None, pd.DataFrame, pd.DataFrame]:
    cursor.execute(
        "SELECT max(origin) FROM ml.forecasts WHERE target = 'sales' AND origin <= %s",
        (day - dt.timedelta(days=ACCURACY_LAG_DAYS),),
    )
    origin = cursor.fetchone()[0]
    empty = pd.DataFrame(columns=["scope", "scope_id", "mase", "smape", "bias"])
    if origin is None:
        return None, empty, pd.DataFrame(columns=["day", "actual", "yhat"])
    scopes = {"all": ["all", "store", "category"], "store": ["store"], "category": ["category"]}[scope.kind]
    only = None if scope.kind == "all" else scope.id
    params = {"origin": origin, "day": day, "scopes": scopes, "only": only}
    forecasts = read_frame(
        cursor,
        """
        SELECT scope, scope_id, day, yhat, closed FROM ml.forecasts
        WHERE target = 'sales' AND origin = %(origin)s AND day <= %(day)s AND scope = ANY(%(scopes)s)
          AND (%(only)s IS NULL OR scope_id = %(only)s)
        """,
        params,
    )
    actuals = read_frame(
        cursor,
        """
        SELECT scope, scope_id, day, revenue::float8 AS actual FROM marts.daily_kpis
        WHERE day BETWEEN %(origin)s::date - 34 AND %(day)s AND scope = ANY(%(scopes)s)
          AND (%(only)s IS NULL OR scope_id = %(only)s)
        """,
        params,
    )
    if forecasts.empty:
        return origin, empty, pd.DataFrame(columns=["day", "actual", "yhat"])
    scores = [
        {"scope": key[0], "scope_id": key[1], **accuracy_scores(group, actuals_of(actuals, key), origin)}
        for key, group in forecasts.groupby(["scope", "scope_id"], sort=True)
    ]
    table = pd.DataFrame(scores)
    table = table.assign(order=table["scope"].map({"all": 0, "store": 1, "category": 2})).sort_values(
        ["order", "scope_id"]
    )
    own = forecasts[(forecasts["scope"] == scope.kind) & (forecasts["scope_id"] == scope.id)]
    series = own[["day", "yhat"]].merge(actuals_of(actuals, (scope.kind, scope.id)), on="day", how="left")
    return origin, table.drop(columns="order").reset_index(drop=True), series.fillna({"actual": 0.0})


def actuals_of(actuals: pd.DataFrame, key: tuple[str, str]) -> pd.DataFrame:
    """One series' revenue per day (day, actual)."""
    rows = actuals[(actuals["scope"] == key[0]) & (actuals["scope_id"] == key[1])]
    return rows[["day", "actual"]]


def accuracy_scores(forecast: pd.DataFrame, actuals: pd.DataFrame, origin: dt.date) -> dict[str, float | None]:
    """MASE, sMAPE (%) and bias of one series' forecast (day, yhat, closed) against its actuals (day, actual)."""
    daily = actuals.set_index("day")["actual"]
    open_days = forecast[~forecast["closed"].astype(bool)]
    y = open_days["day"].map(daily).fillna(0.0).to_numpy(dtype=float)
    yhat = open_days["yhat"].to_numpy(dtype=float)
    if len(y) == 0:
        return {"mase": None, "smape": None, "bias": None}
    errors = np.abs(y - yhat)
    denominators = np.abs(y) + np.abs(yhat)
    smape = (
        float(np.mean(2 * errors[denominators > 0] / denominators[denominators > 0]) * 100)
        if (denominators > 0).any()
        else None
    )
    scale_days = pd.date_range(origin - dt.timedelta(days=MASE_SCALE_DAYS - 1), origin, freq="D").date
    history = pd.Series([daily.get(d, 0.0) for d in scale_days])
    earlier = pd.Series([daily.get(d - dt.timedelta(days=7), 0.0) for d in scale_days])
    scale = float(np.mean(np.abs(history.to_numpy() - earlier.to_numpy())))
    return {
        "mase": float(errors.mean() / scale) if scale > 0 else None,
        "smape": smape,
        "bias": float((yhat.sum() - y.sum()) / y.sum()) if y.sum() > 0 else None,
    }
