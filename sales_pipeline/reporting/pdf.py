"""The daily report as a PDF (reportlab platypus): seven sections, one outline entry each.

Every page has the report's header and a footer with "page X of Y" (the canvas keeps the pages until
the end, when the count is known). Text is set in DejaVu Sans, embedded, so that every character of
the locale's formats prints (the built-in Helvetica has no U+202F, the narrow no-break space of
French amounts). Every label, number and date goes through the catalogue and Babel (`Formatter`).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

import pandas as pd
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    Image,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from sales_pipeline.i18n import Formatter
from sales_pipeline.reporting import charts
from sales_pipeline.reporting.data import (
    KPIS,
    MIN_HISTORY_DAYS,
    PERIODS,
    REVIEW_DAYS,
    ReportData,
    change,
    period_bounds,
)

AUTHOR = "sales_pipeline"
FONT, BOLD = "DejaVuSans", "DejaVuSans-Bold"
MARGIN = 16 * mm
UP, DOWN, MUTED, INK, RULE = (colors.HexColor(c) for c in ("#1e7b34", "#b3261e", "#6b7280", "#111827", "#d1d5db"))
FRAME_WIDTH = A4[0] - 2 * MARGIN


@cache
def register_fonts() -> None:
    """DejaVu Sans (regular and bold) from matplotlib's own copy, embedded in every report."""
    import matplotlib  # here: it takes about a second to load, and the code location imports this module

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, folder / "DejaVuSans.ttf"))
    pdfmetrics.registerFont(TTFont(BOLD, folder / "DejaVuSans-Bold.ttf"))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12, textColor=INK)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5, textColor=MUTED),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10),
        "title": ParagraphStyle("title", parent=base, fontName=BOLD, fontSize=22, leading=27, spaceAfter=4),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=13, leading=17, textColor=MUTED),
        "section": ParagraphStyle(
            "section", parent=base, fontName=BOLD, fontSize=13, leading=17, spaceBefore=10, spaceAfter=6
        ),
        "subsection": ParagraphStyle(
            "subsection", parent=base, fontName=BOLD, fontSize=10, leading=13, spaceBefore=6, spaceAfter=3
        ),
    }


@dataclass(frozen=True)
class RenderedReport:
    """The PDF's bytes, its page count, its scope as the reader sees it, how long each section took (seconds)."""

    pdf: bytes
    pages: int
    scope_label: str
    section_seconds: dict[str, float]


class _Section(Paragraph):
    """A section heading: it starts an outline entry (PDF bookmark) where it lands."""

    def __init__(self, text: str, style: ParagraphStyle, key: str) -> None:
        super().__init__(escape(text), style)
        self.outline_title, self.key = text, key


class _ReportDocument(BaseDocTemplate):
    def afterFlowable(self, flowable: Flowable) -> None:
        if isinstance(flowable, _Section):
            self.canv.bookmarkPage(flowable.key)
            self.canv.addOutlineEntry(flowable.outline_title, flowable.key, level=0)


def _numbered_canvas(header: str, footer: str, fmt: Formatter, pages: list[int]) -> type[Canvas]:
    """A canvas that draws each page's header and footer once the page count is known."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            pages.append(len(self._pages))
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self._decorate(number, len(self._pages))
                super().showPage()
            super().save()

        def _decorate(self, number: int, count: int) -> None:
            width, height = A4
            self.setStrokeColor(RULE)
            self.line(MARGIN, height - 12 * mm, width - MARGIN, height - 12 * mm)
            self.line(MARGIN, 12 * mm, width - MARGIN, 12 * mm)
            self.setFillColor(MUTED)
            self.setFont(FONT, 7.5)
            self.drawString(MARGIN, height - 10.5 * mm, header)
            self.drawString(MARGIN, 8 * mm, footer)
            self.drawRightString(width - MARGIN, 8 * mm, fmt.text("page_of", page=number, pages=count))

    return NumberedCanvas


def render_report(data: ReportData, fmt: Formatter, built_at_text: str) -> RenderedReport:
    """The report of `data` as PDF bytes, in the locale of `fmt`."""
    register_fonts()
    styles = _styles()
    title, scope_label, day_text = fmt.text("report_title"), scope_label_of(data, fmt), fmt.date(data.day)
    sections: list[tuple[str, Callable[[], list[Flowable]]]] = [
        ("cover", lambda: _cover(data, fmt, styles)),
        ("revenue", lambda: _revenue(data, fmt, styles, scope_label)),
        ("breakdown", lambda: _breakdown(data, fmt, styles)),
        ("products", lambda: _products(data, fmt, styles)),
        ("stock", lambda: _stock(data, fmt, styles, scope_label)),
        ("alerts", lambda: _alerts(data, fmt, styles)),
        ("accuracy", lambda: _accuracy(data, fmt, styles, scope_label)),
    ]
    story: list[Flowable] = [
        Paragraph(escape(title), styles["title"]),
        Paragraph(escape(f"{scope_label} · {day_text}"), styles["subtitle"]),
        Spacer(1, 6 * mm),
    ]
    seconds = {}
    for name, build in sections:
        started = time.perf_counter()
        story += build()
        seconds[name] = time.perf_counter() - started
    started = time.perf_counter()
    buffer, pages = io.BytesIO(), []
    document = _ReportDocument(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=fmt.text("report_subject", title=title, scope=scope_label, day=day_text),
        author=AUTHOR,
        subject=scope_label,
        creator=AUTHOR,
        lang=fmt.locale,
        initialFontName=FONT,  # else the canvas starts in Helvetica, listed in the PDF though never used
    )
    frame = Frame(document.leftMargin, document.bottomMargin, document.width, document.height, id="body")
    document.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    header = f"{title} · {scope_label} · {day_text}"
    document.build(story, canvasmaker=_numbered_canvas(header, built_at_text, fmt, pages))
    seconds["layout"] = time.perf_counter() - started
    return RenderedReport(buffer.getvalue(), pages[0], scope_label, seconds)


def scope_label_of(data: ReportData, fmt: Formatter) -> str:
    if data.scope.kind == "all":
        return fmt.text("scope_all")
    if data.scope.kind == "store":
        return fmt.text("scope_store", name=data.scope_name)
    return fmt.text("scope_category", name=data.scope_name or fmt.text("unnamed_category"))


# --- building blocks ---------------------------------------------------------------------------


def _heading(fmt: Formatter, styles: dict, number: int, key: str) -> _Section:
    return _Section(f"{number}. {fmt.text('section_' + key)}", styles["section"], key)


def _sentence(text: str, styles: dict) -> Paragraph:
    return Paragraph(escape(text), styles["body"])


def _chart(png: bytes, width: float = FRAME_WIDTH) -> Image:
    pixels_wide, pixels_high = ImageReader(io.BytesIO(png)).getSize()
    return Image(io.BytesIO(png), width=width, height=width * pixels_high / pixels_wide)


def _table(
    header: list[str], rows: list[list], widths: list[float], styles: dict, numeric_from: int = 1, markup: bool = False
) -> Table:
    """A table with a bold header row (plain text, or `markup`); columns from `numeric_from` on are right-aligned."""
    cell = styles["cell"]
    head = ParagraphStyle("head", parent=cell, fontName=BOLD, textColor=MUTED)
    right, head_right = (ParagraphStyle(f"{s.name}-r", parent=s, alignment=2) for s in (cell, head))

    def paragraph(value: object, column: int, style: ParagraphStyle, style_right: ParagraphStyle) -> Flowable:
        if isinstance(value, Flowable):
            return value
        return Paragraph(str(value), style_right if column >= numeric_from else style)

    body = [[paragraph(h if markup else escape(h), i, head, head_right) for i, h in enumerate(header)]]
    body += [[paragraph(v, i, cell, right) for i, v in enumerate(row)] for row in rows]
    table = Table(body, colWidths=[w * FRAME_WIDTH for w in widths], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), FONT, 8),  # the cells are Paragraphs, but the table sets its font anyway
                ("LINEBELOW", (0, 0), (-1, 0), 0.6, INK),
                ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _arrow(ratio: float | None, fmt: Formatter) -> str:
    """The change as a coloured arrow and signed percent (markup for a Paragraph)."""
    if ratio is None:
        return f'<font color="#{MUTED.hexval()[2:]}">{escape(fmt.change(None))}</font>'
    color, arrow = (UP, "▲") if ratio > 0 else (DOWN, "▼") if ratio < 0 else (MUTED, "=")
    return f'<font color="#{color.hexval()[2:]}">{arrow} {escape(fmt.change(ratio))}</font>'


def _rank_change(change_: object, fmt: Formatter) -> str:
    if change_ is None or pd.isna(change_):
        return escape(fmt.text("rank_new"))
    change_ = int(change_)
    color, arrow = (UP, "▲") if change_ > 0 else (DOWN, "▼") if change_ < 0 else (MUTED, "=")
    return f'<font color="#{color.hexval()[2:]}">{arrow} {abs(change_) if change_ else ""}</font>'


def kpi_text(kpi: str, value: float | None, fmt: Formatter) -> str:
    if value is None:
        return fmt.text("not_comparable")
    if kpi in ("orders", "units"):
        return fmt.number(value)
    return fmt.money(value)


# --- the seven sections ------------------------------------------------------------------------


def _cover(data: ReportData, fmt: Formatter, styles: dict) -> list[Flowable]:
    bounds = period_bounds(data.day)
    header = [""]
    for period in PERIODS:
        (first, last), _ = bounds[period]
        span = fmt.day_month(first) if first == last else f"{fmt.day_month(first)} – {fmt.day_month(last)}"
        header.append(f"{escape(fmt.text('period_' + period))}<br/>{escape(span)}")
    rows = []
    for kpi in KPIS:
        row: list = [f"<b>{escape(fmt.text('kpi_' + kpi))}</b>"]
        for period in PERIODS:
            value, previous = data.headline[period][kpi]
            row.append(
                f"<font size=11><b>{escape(kpi_text(kpi, value, fmt))}</b></font><br/>"
                + _arrow(change(value, previous), fmt)
            )
        rows.append(row)
    table = _table(header, rows, [0.28, 0.24, 0.24, 0.24], styles, markup=True)
    table.setStyle(TableStyle([("TOPPADDING", (0, 1), (-1, -1), 5), ("BOTTOMPADDING", (0, 1), (-1, -1), 5)]))
    flowables: list[Flowable] = [_heading(fmt, styles, 1, "cover"), table, Spacer(1, 3 * mm)]
    if not data.sold_on_the_day:
        flowables.append(_sentence(fmt.text("no_sales_day", day=fmt.date(data.day)), styles))
    flowables.append(Paragraph(escape(fmt.text("cover_note")), styles["small"]))
    return flowables


def _revenue(data: ReportData, fmt: Formatter, styles: dict, scope_label: str) -> list[Flowable]:
    heading = _heading(fmt, styles, 2, "revenue")
    if data.history_days < MIN_HISTORY_DAYS:
        text = fmt.text(
            "short_history",
            scope=scope_label,
            days=fmt.number(data.history_days),
            day=fmt.date(data.day),
            needed=fmt.number(MIN_HISTORY_DAYS),
        )
        return [heading, _sentence(text, styles)]
    flowables: list[Flowable] = [heading, _chart(charts.revenue_chart(data.history, data.forecast, fmt))]
    if data.forecast.empty:
        flowables.append(_sentence(fmt.text("no_forecast", scope=scope_label), styles))
    return [KeepTogether(flowables)]


def _breakdown(data: ReportData, fmt: Formatter, styles: dict) -> list[Flowable]:
    key = "breakdown" if len(data.breakdowns) > 1 else "breakdown_" + next(iter(data.breakdowns))
    heading = _Section(f"3. {fmt.text('section_' + key)}", styles["section"], "breakdown")
    if all(table.empty for table in data.breakdowns.values()):
        return [heading, _sentence(fmt.text("no_sales_fortnight", day=fmt.date(data.day)), styles)]
    flowables: list[Flowable] = []
    for dimension, table in data.breakdowns.items():
        named = table.assign(name=table["name"].replace("", fmt.text("unnamed_category")))
        rows = [
            [
                escape(str(r.name)),
                fmt.money(r.revenue),
                fmt.money(r.previous),
                _arrow(change(r.revenue, r.previous), fmt),
            ]
            for r in named.head(12).itertuples()
        ]
        header = [
            fmt.text("col_" + dimension),
            fmt.text("col_revenue"),
            fmt.text("col_previous"),
            fmt.text("col_change"),
        ]
        block = [_chart(charts.week_bars_chart(named, fmt)), _table(header, rows, [0.4, 0.2, 0.2, 0.2], styles)]
        first = not flowables  # the heading stays with the first chart
        flowables += [KeepTogether([heading, *block] if first else block), Spacer(1, 4 * mm)]
    return flowables


def _products(data: ReportData, fmt: Formatter, styles: dict) -> list[Flowable]:
    heading = _heading(fmt, styles, 4, "products")
    if data.top_products.empty and data.fallers.empty:
        return [heading, _sentence(fmt.text("no_sales_fortnight", day=fmt.date(data.day)), styles)]
    header = [
        fmt.text("col_rank"),
        fmt.text("col_product"),
        fmt.text("col_revenue"),
        fmt.text("col_units"),
        fmt.text("col_rank_change"),
    ]
    rows = [
        [str(r.rank), escape(str(r.name)), fmt.money(r.revenue), fmt.number(r.units), _rank_change(r.rank_change, fmt)]
        for r in data.top_products.itertuples()
    ]
    top = KeepTogether([heading, _table(header, rows, [0.08, 0.44, 0.18, 0.12, 0.18], styles, numeric_from=2)])
    fallers_title = Paragraph(escape(fmt.text("fallers_title")), styles["subsection"])
    if data.fallers.empty:
        return [top, fallers_title, _sentence(fmt.text("no_fallers"), styles)]
    header = [fmt.text("col_product"), fmt.text("col_revenue"), fmt.text("col_previous"), fmt.text("col_change")]
    rows = [
        [escape(str(r.name)), fmt.money(r.revenue), fmt.money(r.previous), _arrow(change(r.revenue, r.previous), fmt)]
        for r in data.fallers.itertuples()
    ]
    return [top, KeepTogether([fallers_title, _table(header, rows, [0.46, 0.18, 0.18, 0.18], styles)])]


def _stock(data: ReportData, fmt: Formatter, styles: dict, scope_label: str) -> list[Flowable]:
    heading = _heading(fmt, styles, 5, "stock")
    if data.stock_counted_on is None:
        return [heading, _sentence(fmt.text("no_stock_counts", scope=scope_label), styles)]
    counted = fmt.date(data.stock_counted_on, "long")
    if data.stock_risks.empty:
        return [heading, _sentence(fmt.text("no_stock_risk", day=counted), styles)]
    chain = data.scope.kind != "store"
    header = [
        fmt.text("col_product"),
        *([fmt.text("col_store")] if chain else []),
        fmt.text("col_on_hand"),
        fmt.text("col_days_left"),
        fmt.text("col_lead_time"),
        fmt.text("col_suggested_order"),
        fmt.text("col_severity"),
    ]
    rows = []
    for r in data.stock_risks.itertuples():
        severity = escape(fmt.text("severity." + r.severity))
        rows.append(
            [
                escape(f"{r.name} ({r.product_id})"),
                *([escape(r.store_id)] if chain else []),
                fmt.number(r.on_hand),
                fmt.number(r.days_until_stockout, 1),
                fmt.number(r.lead_time_days),
                f"<b>{fmt.number(r.suggested_order)}</b>",
                severity,
            ]
        )
    widths = [0.3, 0.08, 0.1, 0.13, 0.13, 0.13, 0.13] if chain else [0.38, 0.1, 0.13, 0.13, 0.13, 0.13]
    note = Paragraph(escape(fmt.text("stock_note", day=counted, review=fmt.number(REVIEW_DAYS))), styles["small"])
    return [heading, _table(header, rows, widths, styles), Spacer(1, 2 * mm), note]


def _alerts(data: ReportData, fmt: Formatter, styles: dict) -> list[Flowable]:
    flowables: list[Flowable] = [_heading(fmt, styles, 6, "alerts")]
    if data.alerts.empty:
        flowables.append(_sentence(fmt.text("no_alerts"), styles))
    else:
        header = [fmt.text("col_severity"), fmt.text("col_alert"), fmt.text("col_since"), fmt.text("col_status")]
        rows = [
            [
                escape(fmt.text("severity." + r.severity)),
                escape(r.message),
                fmt.date(r.first_seen, "short"),
                escape(fmt.text("status." + r.status)),
            ]
            for r in data.alerts.itertuples()
        ]
        flowables.append(_table(header, rows, [0.13, 0.62, 0.12, 0.13], styles, numeric_from=4))
        if data.alerts_total > len(data.alerts):
            more = fmt.text("more_alerts", count=fmt.number(data.alerts_total - len(data.alerts)))
            flowables.append(Paragraph(escape(more), styles["small"]))
    flowables.append(Spacer(1, 4 * mm))
    churn = data.churn.dropna()
    if churn.empty:
        return [*flowables, _sentence(fmt.text("no_churn"), styles)]
    if len(churn) < 2:  # one point is not a trend
        latest = churn.iloc[-1]
        text = fmt.text("churn_rate_on", day=fmt.date(latest["as_of"], "long"), rate=fmt.percent(latest["churn_rate"]))
        return [*flowables, _sentence(text, styles)]
    return [*flowables, KeepTogether([_chart(charts.churn_chart(churn, fmt))])]


def _accuracy(data: ReportData, fmt: Formatter, styles: dict, scope_label: str) -> list[Flowable]:
    heading = _heading(fmt, styles, 7, "accuracy")
    if data.accuracy_origin is None or data.accuracy.empty:
        return [heading, _sentence(fmt.text("no_accuracy", day=fmt.date(data.day)), styles)]
    note = fmt.text("accuracy_note", origin=fmt.date(data.accuracy_origin, "long"), day=fmt.date(data.day, "long"))
    labels = {
        "all": lambda _: fmt.text("scope_all"),
        "store": lambda i: fmt.text("scope_store", name=i),
        "category": lambda i: fmt.text("scope_category", name=i or fmt.text("unnamed_category")),
    }

    def shown(value: float | None, show: Callable[[float], str]) -> str:
        return fmt.text("not_comparable") if value is None or pd.isna(value) else show(value)

    rows = [
        [
            escape(labels[r.scope](r.scope_id)),
            shown(r.mase, lambda v: fmt.number(v, 2)),
            shown(r.smape, lambda v: fmt.percent(v / 100)),
            shown(r.bias, fmt.change),
        ]
        for r in data.accuracy.itertuples()
    ]
    header = [fmt.text("col_scope"), fmt.text("col_mase"), fmt.text("col_smape"), fmt.text("col_bias")]
    flowables: list[Flowable] = [
        heading,
        Paragraph(escape(note), styles["small"]),
        Spacer(1, 2 * mm),
        _table(header, rows, [0.46, 0.18, 0.18, 0.18], styles),
    ]
    if len(data.accuracy_series):
        title = fmt.text("chart_accuracy", scope=scope_label)
        flowables += [
            Spacer(1, 3 * mm),
            KeepTogether([_chart(charts.accuracy_chart(data.accuracy_series, title, fmt))]),
        ]
    return flowables
