"""The small chart an alert email shows inline: the series around the anomaly with its forecast band.

A sales drop: the scope's revenue a day over the five weeks ending at the drop's last day, against the
forecast the drop was judged by (the one issued before each day, or the chosen model's backtest before
forecasts were published: `anomalies.drops.load_days`) and its 95% band. A stock-out risk: units sold
a day at the store over four weeks, then the demand forecast ahead with its band. A churned customer
has no series to draw (None).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping

import numpy as np
import pandas as pd
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.anomalies.drops import load_days
from sales_pipeline.forecasting.models import Z95
from sales_pipeline.i18n import Formatter
from sales_pipeline.warehouse.db import read_frame

DROP_WINDOW_DAYS = 35
SCOPES = {"total": "all", "store": "store", "category": "category", "product": "product"}

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


class AlertCharts:
    """Draws alert charts on one cursor; the drops' days are read once per last day, for every series."""

    def __init__(self, cursor: Cursor, fmt: Formatter) -> None:
        self.cursor = cursor
        self.fmt = fmt
        self._drop_days: dict[dt.date, pd.DataFrame] = {}

    def png(self, alert: Mapping) -> bytes | None:
        """A PNG of the alert's series, or None when it has none (a churned customer, no data)."""
        numbers = alert["numbers"] or {}
        if alert["kind"] == "sales_drop" and alert["entity_type"] in SCOPES:
            last = dt.date.fromisoformat(numbers["last_day"])
            if last not in self._drop_days:
                first = last - dt.timedelta(days=DROP_WINDOW_DAYS - 1)
                self._drop_days[last] = load_days(self.cursor, first, last)
            days = self._drop_days[last]
            scope_id = "" if alert["entity_type"] == "total" else alert["entity_id"]
            series = days[(days["scope"] == SCOPES[alert["entity_type"]]) & (days["scope_id"] == scope_id)]
            series = series.assign(lower=series["lower_95"], upper=series["yhat"] + Z95 * series["sigma"])
            return _png(series.reset_index(drop=True), self.fmt.text("chart.revenue"), self.fmt)
        if alert["kind"] == "stock_risk":
            product, _, store = alert["entity_id"].rpartition("@")
            as_of = dt.date.fromisoformat(numbers["as_of"])
            params = {"first": as_of - dt.timedelta(days=27), "last": as_of, "product": product, "store": store}
            history = read_frame(self.cursor, _UNITS_SOLD, params)
            ahead = read_frame(self.cursor, _DEMAND_AHEAD, {"scope_id": alert["entity_id"]})
            return _png(pd.concat([history, ahead], ignore_index=True), self.fmt.text("chart.units"), self.fmt)
        return None


def _png(series: pd.DataFrame, title: str, fmt: Formatter) -> bytes | None:
    """Days along x as positions, a few of them labelled with Babel's short date: a date axis and an
    automatic layout cost ten times the drawing, and an email may need fifty charts."""
    if series.empty:
        return None
    # Imported here: matplotlib takes about a second to load, and the code location loads in every run.
    from matplotlib.figure import Figure  # not pyplot: no global state, no display needed

    for column in ("actual", "yhat", "lower", "upper"):
        series[column] = pd.to_numeric(series.get(column), errors="coerce").astype(float)
    days = pd.to_datetime(series["day"]).dt.date.tolist()
    x = np.arange(len(days))
    figure = Figure(figsize=(7, 2.6), dpi=80)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.14)
    axis = figure.add_subplot()
    banded = series["yhat"].notna().to_numpy()
    axis.fill_between(x[banded], series.loc[banded, "lower"], series.loc[banded, "upper"], alpha=0.2,
                      color="#1f77b4", label=fmt.text("chart.band"))  # fmt: skip
    axis.plot(x[banded], series.loc[banded, "yhat"], linestyle="--", linewidth=1.2, color="#1f77b4",
              label=fmt.text("chart.forecast"))  # fmt: skip
    known = series["actual"].notna().to_numpy()
    axis.plot(x[known], series.loc[known, "actual"], linewidth=1.6, color="#b42318", label=fmt.text("chart.actual"))
    ticks = x[:: max(len(x) // 6, 1)]
    axis.set_xticks(ticks, [fmt.date(days[i], "short") for i in ticks], fontsize=8)
    axis.tick_params(axis="y", labelsize=8)
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()
