"""The small chart an alert email shows inline: the series around the anomaly with its forecast band.

A sales drop: the scope's revenue a day over the three weeks before the drop and the drop itself,
against the forecast issued before each day and its 95% band. A stock-out risk: units sold a day at
the store over four weeks, then the demand forecast ahead with its band. A churned customer has no
series to draw (None).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping

import pandas as pd
from matplotlib.figure import Figure  # not pyplot: no global state, no display needed
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.i18n import Formatter
from sales_pipeline.warehouse.db import read_frame

BEFORE_DAYS = 21
SCOPES = {"total": "all", "store": "store", "category": "category", "product": "product"}

_DROP_SERIES = """
SELECT d::date AS day, k.revenue AS actual, f.yhat, f.yhat_lower_95 AS lower, f.yhat_upper_95 AS upper
FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d
LEFT JOIN marts.daily_kpis AS k ON k.day = d::date AND k.scope = %(scope)s AND k.scope_id = %(scope_id)s
LEFT JOIN LATERAL (
    SELECT yhat, yhat_lower_95, yhat_upper_95 FROM ml.forecasts
    WHERE target = 'sales' AND scope = %(scope)s AND scope_id = %(scope_id)s AND day = d::date AND origin < d::date
    ORDER BY origin DESC LIMIT 1
) AS f ON true
ORDER BY 1
"""

_UNITS_SOLD = """
SELECT d::date AS day, coalesce(sum(s.quantity), 0) AS actual
FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d
LEFT JOIN core.sales AS s ON s.sale_date = d::date AND s.product_id = %(product)s AND s.store_id = %(store)s
GROUP BY 1 ORDER BY 1
"""

_DEMAND_AHEAD = """
SELECT day, yhat, yhat_lower_95 AS lower, yhat_upper_95 AS upper FROM ml.forecasts
WHERE target = 'demand' AND scope = 'product_store' AND scope_id = %(scope_id)s
  AND origin = (SELECT max(origin) FROM ml.forecasts
                WHERE target = 'demand' AND scope = 'product_store' AND scope_id = %(scope_id)s)
ORDER BY day
"""


def alert_chart(cursor: Cursor, alert: Mapping, fmt: Formatter) -> bytes | None:
    """A PNG of the alert's series, or None when it has none (a churned customer, no data)."""
    numbers = alert["numbers"] or {}
    if alert["kind"] == "sales_drop" and alert["entity_type"] in SCOPES:
        last = dt.date.fromisoformat(numbers["last_day"])
        first = dt.date.fromisoformat(numbers["first_day"]) - dt.timedelta(days=BEFORE_DAYS)
        scope_id = "" if alert["entity_type"] == "total" else alert["entity_id"]
        params = {"first": first, "last": last, "scope": SCOPES[alert["entity_type"]], "scope_id": scope_id}
        series = read_frame(cursor, _DROP_SERIES, params)
        series["actual"] = series["actual"].astype(float).fillna(0.0)
        return _png(series, fmt.text("chart.revenue"), fmt)
    if alert["kind"] == "stock_risk":
        product, _, store = alert["entity_id"].rpartition("@")
        as_of = dt.date.fromisoformat(numbers["as_of"])
        params = {"first": as_of - dt.timedelta(days=27), "last": as_of, "product": product, "store": store}
        history = read_frame(cursor, _UNITS_SOLD, params)
        ahead = read_frame(cursor, _DEMAND_AHEAD, {"scope_id": alert["entity_id"]})
        return _png(pd.concat([history, ahead], ignore_index=True), fmt.text("chart.units"), fmt)
    return None


def _png(series: pd.DataFrame, title: str, fmt: Formatter) -> bytes | None:
    if series.empty:
        return None
    for column in ("actual", "yhat", "lower", "upper"):
        series[column] = pd.to_numeric(series.get(column), errors="coerce").astype(float)
    days = pd.to_datetime(series["day"])
    figure = Figure(figsize=(7, 2.6), dpi=80)
    axis = figure.subplots()
    banded = series["yhat"].notna()
    axis.fill_between(days[banded], series.loc[banded, "lower"], series.loc[banded, "upper"], alpha=0.2,
                      color="#1f77b4", label=fmt.text("chart.band"))  # fmt: skip
    axis.plot(days[banded], series.loc[banded, "yhat"], linestyle="--", linewidth=1.2, color="#1f77b4",
              label=fmt.text("chart.forecast"))  # fmt: skip
    known = series["actual"].notna()
    axis.plot(days[known], series.loc[known, "actual"], linewidth=1.6, color="#b42318", label=fmt.text("chart.actual"))
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
