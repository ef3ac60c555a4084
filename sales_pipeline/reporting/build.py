"""Build a day's report for a scope: read the warehouse, draw the PDF, write it, record it.

The file is `<reports_dir>/<day>/report-<day>-<scope slug>-<locale>.pdf`, written under a temporary
name and renamed, so a reader never sees half a report; building it again replaces the file and its
row in ops.generated_reports (GeneratedReport).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import tempfile
from pathlib import Path

from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

from sales_pipeline.i18n import Formatter
from sales_pipeline.records import GeneratedReport
from sales_pipeline.reporting.data import ReportData, Scope, change, load_report_data
from sales_pipeline.reporting.pdf import RenderedReport, render_report


def report_path(reports_dir: Path, day: dt.date, scope: Scope, locale: str) -> Path:
    return reports_dir / day.isoformat() / f"report-{day.isoformat()}-{scope.slug}-{locale}.pdf"


def build_report(
    cursor: Cursor, day: dt.date, scope: Scope, fmt: Formatter, timezone: str, reports_dir: Path
) -> tuple[GeneratedReport, RenderedReport]:
    """Build, write and record the report of `day` for `scope`; returns the record and the rendering."""
    data = load_report_data(cursor, day, scope, timezone)
    cursor.execute("SELECT now()")
    built_at: dt.datetime = cursor.fetchone()[0]
    rendered = render_report(data, fmt, fmt.text("built_at", when=fmt.datetime(built_at, "short")))
    path = report_path(reports_dir, day, scope, fmt.locale)
    write_atomically(path, rendered.pdf)
    report = GeneratedReport(
        day=day,
        scope=str(scope),
        locale=fmt.locale,
        path=str(path),
        pages=rendered.pages,
        bytes=len(rendered.pdf),
        sha256=hashlib.sha256(rendered.pdf).hexdigest(),
        headline=headline_record(data),
    )
    cursor.execute(
        """
        INSERT INTO ops.generated_reports (day, scope, locale, path, pages, bytes, sha256, headline, built_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (day, scope, locale) DO UPDATE SET
            path = EXCLUDED.path, pages = EXCLUDED.pages, bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256,
            headline = EXCLUDED.headline, built_at = EXCLUDED.built_at
        RETURNING sent_to
        """,
        (
            day,
            report.scope,
            report.locale,
            report.path,
            report.pages,
            report.bytes,
            report.sha256,
            Json(report.headline),
            built_at,
        ),
    )
    sent_to = tuple(cursor.fetchone()[0])
    return GeneratedReport(**{**report.__dict__, "sent_to": sent_to}), rendered


def headline_record(data: ReportData) -> dict:
    """The cover's KPIs as JSON: period -> kpi -> {value, previous, change} (money rounded to the cent)."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(float(value), 2)

    return {
        period: {
            kpi: {"value": rounded(value), "previous": rounded(previous), "change": rounded_change(value, previous)}
            for kpi, (value, previous) in kpis.items()
        }
        for period, kpis in data.headline.items()
    }


def rounded_change(value: float | None, previous: float | None) -> float | None:
    ratio = change(value, previous)
    return None if ratio is None else round(ratio, 4)


def write_atomically(path: Path, content: bytes) -> None:
    """Write under a temporary name of this writer's own, then rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp", delete=False) as out:
        out.write(content)
    Path(out.name).chmod(0o644)
    Path(out.name).replace(path)


def page_one_png(pdf: bytes, width_px: int = 600) -> bytes:
    """The first page as a PNG `width_px` wide (the preview in the Dagster UI and the README)."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        page = document[0]
        image = page.render(scale=width_px / page.get_width()).to_pil()
    finally:
        document.close()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
