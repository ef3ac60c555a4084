"""Small charts for the Dagster UI: a matplotlib PNG embedded in markdown metadata."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def line_chart_markdown(series: dict[str, pd.Series], title: str, y_label: str) -> str:
    """A line chart of one or more series sharing an x axis, as a markdown image."""
    figure = _figure((8, 3))
    axis = figure.subplots()
    for label, values in series.items():
        axis.plot(values.index, values.to_numpy(dtype=float), label=label, linewidth=1.4)
    axis.set_title(title)
    axis.set_ylabel(y_label)
    axis.grid(alpha=0.3)
    if len(series) > 1:
        axis.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    return _markdown_image(figure, title)


def bar_chart_markdown(values: pd.Series, title: str, x_label: str) -> str:
    """A horizontal bar chart (largest on top), as a markdown image."""
    figure = _figure((8, 0.4 * max(len(values), 3) + 1))
    axis = figure.subplots()
    ordered = values.iloc[::-1]
    axis.barh([str(label) for label in ordered.index], ordered.to_numpy(dtype=float))
    axis.set_title(title)
    axis.set_xlabel(x_label)
    axis.grid(axis="x", alpha=0.3)
    return _markdown_image(figure, title)


def forecast_chart_markdown(history: pd.Series, forecast: pd.DataFrame, title: str, y_label: str) -> str:
    """Recent actuals, then the forecast (day, yhat and its 80%/95% bounds) with shaded bands."""
    figure = _figure((8, 3))
    axis = figure.subplots()
    axis.plot(history.index, history.to_numpy(dtype=float), label="actual", linewidth=1.4)
    days = pd.to_datetime(forecast["day"])
    axis.fill_between(days, forecast["yhat_lower_95"], forecast["yhat_upper_95"], alpha=0.15, label="95%")
    axis.fill_between(days, forecast["yhat_lower_80"], forecast["yhat_upper_80"], alpha=0.3, label="80%")
    axis.plot(days, forecast["yhat"], label="forecast", linewidth=1.4, linestyle="--")
    axis.set_title(title)
    axis.set_ylabel(y_label)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    return _markdown_image(figure, title)


def _figure(size: tuple[float, float]) -> Figure:
    """A figure of `size` inches. matplotlib is imported here: it takes about a second to load, and the code
    location (every run, every command) imports this module."""
    from matplotlib.figure import Figure  # not pyplot: no global state, no display needed

    return Figure(figsize=size, dpi=80)


def _markdown_image(figure: Figure, title: str) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{title}](data:image/png;base64,{encoded})"
