"""The analytics export: one workbook of the marts, forecasts and open alerts (xlsxwriter).

Each sheet has a frozen header, an autofilter, number and date formats and columns as wide as their
content; a README sheet says what each sheet holds and when the workbook was built. A native line
chart shows the chain's revenue and its forecast, a bar chart the top products of the last 7 days.

Text that came from input (product, store, customer names, messages) is always written as text, never
as a formula: the workbook does not turn strings into formulas, numbers or links, and every string goes
through `write_string`, so `=HYPERLINK(...)` or `@SUM(A1)` in a product name stays those characters
(OWASP CSV/Excel injection).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xlsxwriter
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.warehouse.db import read_frame

DEFAULT_DAYS = 90
MAX_WIDTH = 60


@dataclass(frozen=True)
class SheetSpec:
    """A sheet: its name, what it holds (README), and its columns as (header, column, format)."""

    name: str
    about: str
    columns: tuple[tuple[str, str, str], ...]  # format: text, int, money, ratio, percent, date, number


SHEETS = (
    SheetSpec("Daily KPIs", "Per day, for the whole chain, each store and each category (marts.daily_kpis).", (
        ("Day", "day", "date"), ("Scope", "scope", "text"), ("Store or category", "scope_id", "text"),
        ("Name", "name", "text"), ("Revenue", "revenue", "money"), ("Units", "units", "int"),
        ("Orders", "orders", "int"), ("Customers", "customers", "int"),
        ("Average order value", "average_order_value", "money"), ("Gross margin", "gross_margin", "money"),
        ("Margin rate", "margin_rate", "ratio"), ("Discount given", "discount_given", "money"),
    )),
    SheetSpec("Trends", "Moving averages, growth and direction, chain and categories (marts.sales_trends).", (
        ("Day", "day", "date"), ("Scope", "scope", "text"), ("Category", "scope_id", "text"),
        ("Revenue", "revenue", "money"), ("7-day average", "ma_7", "money"), ("28-day average", "ma_28", "money"),
        ("Week over week", "wow_growth", "ratio"), ("Month over month", "mom_growth", "ratio"),
        ("Year over year", "yoy_growth", "ratio"), ("Direction", "direction", "text"),
    )),
    SheetSpec("Top products", "Top products by revenue per period, latest day, for the whole chain, each store and"
              " each category (marts.top_products).", (
        ("As of", "as_of", "date"), ("Period", "period", "text"), ("Scope", "scope", "text"),
        ("Store or category", "scope_id", "text"), ("Rank", "rank", "int"),
        ("Product", "product_id", "text"), ("Name", "product_name", "text"), ("Category", "category", "text"),
        ("Units", "units", "int"), ("Revenue", "revenue", "money"), ("Share", "share", "ratio"),
        ("Previous rank", "previous_rank", "int"), ("Rank change", "rank_change", "int"),
    )),
    SheetSpec("Stock health", "Each product and store at its latest count (marts.stock_health).", (
        ("Product", "product_id", "text"), ("Name", "name", "text"), ("Store", "store_id", "text"),
        ("Counted on", "as_of", "date"), ("On hand", "on_hand", "int"), ("On order", "on_order", "int"),
        ("Reorder point", "reorder_point", "int"), ("Daily demand", "avg_daily_demand", "number"),
        ("Days of cover", "days_of_cover", "number"), ("Status", "status", "text"),
        ("Stock value at cost", "stock_value_at_cost", "money"),
    )),
    SheetSpec("Forecasts", "The latest 7-day revenue forecast per series with its 80% and 95% bands (ml.forecasts).", (
        ("Scope", "scope", "text"), ("Store or category", "scope_id", "text"), ("Made on", "origin", "date"),
        ("Day", "day", "date"), ("Model", "model", "text"), ("Forecast", "yhat", "money"),
        ("Lower 80%", "yhat_lower_80", "money"), ("Upper 80%", "yhat_upper_80", "money"),
        ("Lower 95%", "yhat_lower_95", "money"), ("Upper 95%", "yhat_upper_95", "money"),
    )),
    SheetSpec("Open alerts", "Anomalies still open: sales drops, stock risks, churn (ml.anomalies).", (
        ("Severity", "severity", "text"), ("Kind", "kind", "text"), ("About", "entity_type", "text"),
        ("Who", "entity_id", "text"), ("Detected on", "detected_on", "date"), ("First seen", "first_seen", "date"),
        ("Alert", "message", "text"),
    )),
)  # fmt: skip

_QUERIES = {
    "Daily KPIs": """
        SELECT k.day, k.scope, k.scope_id, CASE k.scope WHEN 'store' THEN s.name WHEN 'all' THEN 'Whole chain'
               ELSE k.scope_id END AS name, k.revenue, k.units, k.orders, k.customers, k.average_order_value,
               k.gross_margin, k.margin_rate, k.discount_given
        FROM marts.daily_kpis AS k LEFT JOIN core.stores AS s ON k.scope = 'store' AND s.store_id = k.scope_id
        WHERE k.scope IN ('all', 'store', 'category') AND k.day BETWEEN %(first)s AND %(last)s
        ORDER BY array_position(ARRAY['all', 'store', 'category'], k.scope), k.scope_id, k.day""",
    "Trends": """
        SELECT day, scope, scope_id, revenue, ma_7, ma_28, wow_growth, mom_growth, yoy_growth, direction
        FROM marts.sales_trends WHERE scope IN ('all', 'category') AND day BETWEEN %(first)s AND %(last)s
        ORDER BY scope, scope_id, day""",
    "Top products": """
        SELECT as_of, period, scope, scope_id, rank, product_id, product_name, category, units, revenue, share,
               previous_rank, rank_change
        FROM marts.top_products WHERE as_of = (SELECT max(as_of) FROM marts.top_products WHERE as_of <= %(last)s)
        ORDER BY array_position(ARRAY['all', 'store', 'category'], scope), scope_id,
                 array_position(ARRAY['last_7_days', 'yesterday', 'last_30_days', 'month_to_date'], period), rank,
                 product_id""",
    "Stock health": """
        SELECT h.product_id, p.name, h.store_id, h.as_of, h.on_hand, h.on_order, h.reorder_point,
               h.avg_daily_demand, h.days_of_cover, h.status, h.stock_value_at_cost
        FROM marts.stock_health AS h LEFT JOIN core.products AS p USING (product_id)
        ORDER BY h.days_of_cover NULLS LAST, h.product_id, h.store_id""",
    "Forecasts": """
        SELECT scope, scope_id, origin, day, model, yhat, yhat_lower_80, yhat_upper_80, yhat_lower_95, yhat_upper_95
        FROM ml.forecasts
        WHERE target = 'sales'
          AND origin = (SELECT max(origin) FROM ml.forecasts WHERE target = 'sales' AND origin <= %(last)s)
        ORDER BY array_position(ARRAY['all', 'store', 'category', 'product'], scope), scope_id, day""",
    "Open alerts": """
        SELECT severity, kind, entity_type, entity_id, detected_on, first_seen_at::date AS first_seen, message
        FROM ml.anomalies WHERE active
        ORDER BY array_position(ARRAY['critical', 'warning', 'info'], severity), kind, entity_id""",
}


def load_export_frames(cursor: Cursor, last_day: dt.date, days: int = DEFAULT_DAYS) -> dict[str, pd.DataFrame]:
    """Every sheet's rows: the `days` ending at `last_day` for the daily sheets, the latest state for the rest."""
    params = {"first": last_day - dt.timedelta(days=days - 1), "last": last_day}
    return {spec.name: read_frame(cursor, _QUERIES[spec.name], params) for spec in SHEETS}


def write_export(
    frames: dict[str, pd.DataFrame], built_at: dt.datetime, first_day: dt.date, last_day: dt.date
) -> bytes:
    """The workbook's bytes (in memory: written to its file at once by the caller)."""
    buffer = io.BytesIO()
    # Never turn input text into a formula, a number or a link.
    options = {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False}
    workbook = xlsxwriter.Workbook(buffer, options)
    formats = {
        "header": workbook.add_format({"bold": True, "bg_color": "#E5E7EB", "bottom": 1, "text_wrap": True}),
        "money": workbook.add_format({"num_format": "#,##0.00"}),
        "int": workbook.add_format({"num_format": "#,##0"}),
        "number": workbook.add_format({"num_format": "#,##0.0##"}),
        "ratio": workbook.add_format({"num_format": "0.0%"}),
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "text": None,
    }
    readme = workbook.add_worksheet("README")
    for spec in SHEETS:
        _write_sheet(workbook.add_worksheet(spec.name), spec, frames[spec.name], formats)
    _write_readme(readme, frames, built_at, first_day, last_day, formats["header"])
    _add_charts(workbook, frames)
    workbook.close()
    return buffer.getvalue()


def _write_sheet(sheet, spec: SheetSpec, frame: pd.DataFrame, formats: dict) -> None:
    for column, (header, _, _) in enumerate(spec.columns):
        sheet.write_string(0, column, header, formats["header"])
    widths = [len(header) + 2 for header, _, _ in spec.columns]
    values = [frame[key].tolist() if key in frame else [None] * len(frame) for _, key, _ in spec.columns]
    for column, ((_, _, kind), cells) in enumerate(zip(spec.columns, values, strict=True)):
        cell_format = formats[kind]
        for row, value in enumerate(cells, start=1):
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                continue
            if kind == "text":
                text = str(value)
                sheet.write_string(row, column, text)
                widths[column] = max(widths[column], len(text) + 1)
            elif kind == "date":
                sheet.write_datetime(row, column, dt.datetime.combine(value, dt.time()), cell_format)
                widths[column] = max(widths[column], 11)
            else:
                sheet.write_number(row, column, float(value), cell_format)
                widths[column] = max(widths[column], len(f"{float(value):,.2f}") + 1)
    for column, width in enumerate(widths):
        sheet.set_column(column, column, min(width, MAX_WIDTH))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(frame), 1), len(spec.columns) - 1)


def _write_readme(sheet, frames: dict, built_at: dt.datetime, first_day: dt.date, last_day: dt.date, header) -> None:
    lines = [
        ("Analytics export of sales_pipeline", ""),
        ("Built at", built_at.isoformat(timespec="seconds")),
        ("Days covered by the daily sheets", f"{first_day.isoformat()} to {last_day.isoformat()}"),
        ("", ""),
    ]
    sheet.write_string(0, 0, lines[0][0], header)
    for row, (label, value) in enumerate(lines[1:], start=1):
        sheet.write_string(row, 0, label)
        sheet.write_string(row, 1, value)
    start = len(lines)
    for column, title in enumerate(("Sheet", "What it holds", "Rows")):
        sheet.write_string(start, column, title, header)
    for row, spec in enumerate(SHEETS, start=start + 1):
        sheet.write_string(row, 0, spec.name)
        sheet.write_string(row, 1, spec.about)
        sheet.write_number(row, 2, len(frames[spec.name]))
    sheet.write_string(
        start + len(SHEETS) + 2, 0, "Charts: revenue and forecast on 'Daily KPIs', top products on 'Top products'."
    )
    sheet.set_column(0, 0, 34)
    sheet.set_column(1, 1, 100)
    sheet.set_column(2, 2, 8)


def _add_charts(workbook, frames: dict[str, pd.DataFrame]) -> None:
    """Native charts: the chain's revenue with its forecast, and the top products of the last 7 days."""
    kpis, forecasts, top = frames["Daily KPIs"], frames["Forecasts"], frames["Top products"]
    chain_days = int((kpis["scope"] == "all").sum()) if len(kpis) else 0
    if chain_days:
        chart = workbook.add_chart({"type": "scatter", "subtype": "straight"})
        chart.add_series(
            {
                "name": "Revenue",
                "categories": ["Daily KPIs", 1, 0, chain_days, 0],
                "values": ["Daily KPIs", 1, 4, chain_days, 4],
                "line": {"color": "#1F5F99"},
            }
        )
        chain_forecast = int((forecasts["scope"] == "all").sum()) if len(forecasts) else 0
        if chain_forecast:
            chart.add_series(
                {
                    "name": "Forecast",
                    "categories": ["Forecasts", 1, 3, chain_forecast, 3],
                    "values": ["Forecasts", 1, 5, chain_forecast, 5],
                    "line": {"color": "#D9822B", "dash_type": "dash"},
                }
            )
        chart.set_title({"name": "Revenue, whole chain, and the forecast"})
        chart.set_x_axis({"num_format": "dd mmm", "date_axis": True})
        chart.set_y_axis({"num_format": "#,##0", "major_gridlines": {"visible": True}})
        chart.set_size({"width": 900, "height": 360})
        workbook.get_worksheet_by_name("Daily KPIs").insert_chart("N2", chart)
    # The chain's last 7 days are the sheet's first rows (its order).
    week = int(((top["scope"] == "all") & (top["period"] == "last_7_days")).sum()) if len(top) else 0
    if week:
        name, revenue = _column("Top products", "product_name"), _column("Top products", "revenue")
        bars = workbook.add_chart({"type": "bar"})
        bars.add_series(
            {
                "name": "Revenue, last 7 days",
                "categories": ["Top products", 1, name, week, name],
                "values": ["Top products", 1, revenue, week, revenue],
                "fill": {"color": "#1F5F99"},
            }
        )
        bars.set_title({"name": "Top products, last 7 days"})
        bars.set_y_axis({"reverse": True})
        bars.set_legend({"none": True})
        workbook.get_worksheet_by_name("Top products").insert_chart("O2", bars)


def _column(sheet: str, column: str) -> int:
    """Where `column` is on `sheet` (0-based), as SHEETS lays it out."""
    spec = next(spec for spec in SHEETS if spec.name == sheet)
    return [name for _, name, _ in spec.columns].index(column)


def build_export(cursor: Cursor, path: Path, last_day: dt.date, days: int = DEFAULT_DAYS) -> dict[str, int]:
    """Write the analytics export of the `days` ending at `last_day` to `path`; returns the rows per sheet."""
    from sales_pipeline.reporting.build import write_atomically  # here: build loads reportlab, slow to import

    cursor.execute("SELECT now()")
    built_at = cursor.fetchone()[0]
    frames = load_export_frames(cursor, last_day, days)
    write_atomically(path, write_export(frames, built_at, last_day - dt.timedelta(days=days - 1), last_day))
    return {name: len(frame) for name, frame in frames.items()}
