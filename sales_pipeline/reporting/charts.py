"""The report's charts: matplotlib figures as PNG at CHART_DPI, axes in the report's locale.

PNG rather than vector: reportlab draws a raster directly, and at 200 dpi the lines and labels print
sharply; tick labels go through the same Babel formats as the text (dates, money, percent).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # not pyplot: no global state, no display needed
from matplotlib.ticker import FuncFormatter, MaxNLocator

from sales_pipeline.i18n import Formatter

CHART_DPI = 200
WIDTH_IN = 7.0
ACTUAL, FORECAST, PREVIOUS, BAND = "#1f5f99", "#d9822b", "#a9b8c8", "#d9822b"


def _figure(height_in: float) -> Figure:
    figure = Figure(figsize=(WIDTH_IN, height_in), dpi=CHART_DPI)
    figure.set_layout_engine("constrained")
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI)
    return buffer.getvalue()


def _money_axis(axis, fmt: Formatter, which: str = "y") -> None:
    target = axis.yaxis if which == "y" else axis.xaxis
    target.set_major_locator(MaxNLocator(nbins=5, min_n_ticks=3))
    target.set_major_formatter(FuncFormatter(lambda value, _: fmt.money_compact(value)))
    axis.grid(axis=which, alpha=0.3)
    axis.spines[["top", "right"]].set_visible(False)
    axis.tick_params(labelsize=7)


def _date_axis(axis, fmt: Formatter, days: list) -> None:
    step = max(len(days) // 8, 1)
    ticks = days[::step]
    axis.set_xticks(ticks, [fmt.day_month(day) for day in ticks])


def revenue_chart(history: pd.DataFrame, forecast: pd.DataFrame, fmt: Formatter) -> bytes:
    """Revenue per day (history: day, revenue), then the forecast with its 95% and 80% bands."""
    figure = _figure(2.9)
    axis = figure.subplots()
    axis.plot(history["day"], history["revenue"], color=ACTUAL, linewidth=1.1, label=fmt.text("chart_actual"))
    if len(forecast):
        days = list(forecast["day"])
        for level, alpha in ((95, 0.15), (80, 0.3)):  # the wider band first, the narrower drawn over it
            low, high, label = forecast[f"yhat_lower_{level}"], forecast[f"yhat_upper_{level}"], f"chart_band_{level}"
            axis.fill_between(days, low, high, color=BAND, alpha=alpha, linewidth=0, label=fmt.text(label))
        axis.plot(
            days, forecast["yhat"], color=FORECAST, linewidth=1.3, linestyle="--", label=fmt.text("chart_forecast")
        )
    _money_axis(axis, fmt)
    _date_axis(axis, fmt, [*history["day"], *forecast["day"]])
    axis.set_ylim(bottom=0)
    axis.legend(loc="upper left", fontsize=7, frameon=False, ncol=4)
    return _png(figure)


def week_bars_chart(table: pd.DataFrame, fmt: Formatter, limit: int = 12) -> bytes:
    """Horizontal bars: each row's revenue this week against the week before (name, revenue, previous)."""
    rows = table.head(limit).iloc[::-1]
    figure = _figure(0.28 * len(rows) + 0.8)
    axis = figure.subplots()
    positions = np.arange(len(rows))
    axis.barh(positions + 0.2, rows["previous"], height=0.4, color=PREVIOUS, label=fmt.text("chart_week_before"))
    axis.barh(positions - 0.2, rows["revenue"], height=0.4, color=ACTUAL, label=fmt.text("chart_this_week"))
    axis.set_yticks(positions, [str(name) for name in rows["name"]])
    _money_axis(axis, fmt, which="x")
    handles, labels = axis.get_legend_handles_labels()
    axis.legend(handles[::-1], labels[::-1], loc="lower right", fontsize=7, frameon=False)
    return _png(figure)


def churn_chart(churn: pd.DataFrame, fmt: Formatter) -> bytes:
    """The churn rate of repeat customers per day it was computed (as_of, churn_rate)."""
    figure = _figure(1.9)
    axis = figure.subplots()
    axis.plot(churn["as_of"], churn["churn_rate"].astype(float), color=ACTUAL, linewidth=1.2, marker=".")
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: fmt.percent(value, 1)))
    axis.yaxis.set_major_locator(MaxNLocator(nbins=4))
    axis.set_ylim(bottom=0)
    _date_axis(axis, fmt, list(churn["as_of"]))
    axis.set_title(fmt.text("chart_churn_rate"), fontsize=8, loc="left")
    axis.grid(axis="y", alpha=0.3)
    axis.spines[["top", "right"]].set_visible(False)
    axis.tick_params(labelsize=7)
    return _png(figure)


def accuracy_chart(series: pd.DataFrame, title: str, fmt: Formatter) -> bytes:
    """Last week's forecast against what happened (day, actual, yhat)."""
    figure = _figure(2.1)
    axis = figure.subplots()
    days = list(series["day"])
    axis.bar(days, series["actual"], color=PREVIOUS, label=fmt.text("chart_actual"))
    axis.plot(days, series["yhat"], color=FORECAST, marker="o", linewidth=1.3, label=fmt.text("chart_forecast"))
    _money_axis(axis, fmt)
    _date_axis(axis, fmt, days)
    axis.set_title(title, fontsize=8, loc="left")
    axis.legend(loc="upper left", fontsize=7, frameon=False, ncol=2)
    return _png(figure)
