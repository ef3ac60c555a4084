"""The reports as assets: the daily PDFs (one partition per day: the chain's and each store's) and the
analytics export workbook. The logic is in sales_pipeline/reporting/."""

import base64
import datetime as dt
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pandas as pd
from babel import Locale
from pydantic import Field

from sales_pipeline.analytics.marts import last_complete_day
from sales_pipeline.defs.conventions import WAREHOUSE_POOL
from sales_pipeline.records import GeneratedReport
from sales_pipeline.reporting.data import report_scopes
from sales_pipeline.reporting.export import DEFAULT_DAYS, build_export
from sales_pipeline.reporting.mailing import enqueue_report_emails, report_recipients
from sales_pipeline.resources import AlertingResource, AnalyticsResource, ReportingResource, WarehouseResource
from sales_pipeline.settings import Settings

GROUP = "reporting"
DAILY_REPORT_KEY = dg.AssetKey(["reports", "daily_report"])
EXPORT_FILE = "analytics_export.xlsx"
# What a report reads; the report sensor waits until each was built after the day's KPIs.
REPORT_INPUTS = [
    dg.AssetKey(["marts", "daily_kpis"]),
    dg.AssetKey(["marts", "top_products"]),
    dg.AssetKey(["marts", "stock_health"]),
    dg.AssetKey(["forecasting", "sales_forecast"]),
    dg.AssetKey(["anomalies", "sales_drops"]),
    dg.AssetKey(["anomalies", "stock_risks"]),
    dg.AssetKey(["anomalies", "customer_churn"]),
]


def build_day_reports(
    warehouse: WarehouseResource,
    analytics: AnalyticsResource,
    reporting: ReportingResource,
    alerting: AlertingResource,
    day: dt.date,
) -> list[tuple[GeneratedReport, bytes]]:
    """The chain's report and each store's for `day`, each written, recorded and its emails queued in one
    transaction; the alerts' delivery run sends them. Language, currency and recipients are the alerts'."""
    # Imported here, as page_one_png below: reportlab and matplotlib take a second or two to load, and the code
    # location loads in every run and command.
    from sales_pipeline.reporting.build import build_report

    sending = alerting.config()
    fmt = sending.formatter
    with warehouse.transaction() as cursor:
        scopes = report_scopes(cursor)
    built = []
    for scope in scopes:
        # The report, its record and its emails in the outbox: all or nothing.
        with warehouse.transaction() as cursor:
            report, rendered = build_report(cursor, day, scope, fmt, analytics.timezone, Path(reporting.reports_dir))
            recipients = report_recipients(sending.routing, scope)
            enqueue_report_emails(cursor, report, rendered.scope_label, recipients, fmt, sending.domain)
        built.append((replace(report, sent_to=recipients), rendered.pdf))
    return built


def report_metadata(built: list[tuple[GeneratedReport, bytes]]) -> dict:
    """The chain report's path, pages, size, page-1 preview and headline KPIs, and a line per store report."""
    from sales_pipeline.reporting.build import page_one_png

    chain, pdf = built[0]
    preview = base64.b64encode(page_one_png(pdf)).decode()
    day = chain.headline["day"]
    stores = pd.DataFrame(
        [
            {
                "scope": r.scope,
                "pages": r.pages,
                "kB": round(r.bytes / 1024),
                "to": ", ".join(r.sent_to),
                "path": r.path,
            }
            for r, _ in built
        ]
    )
    return {
        "path": dg.MetadataValue.path(chain.path),
        "pages": chain.pages,
        "size_kb": round(chain.bytes / 1024, 1),
        "sha256": chain.sha256,
        "locale": chain.locale,
        "revenue": day["revenue"]["value"],
        "orders": day["orders"]["value"],
        "units": day["units"]["value"],
        "average_order_value": day["average_order_value"]["value"],
        "gross_margin": day["gross_margin"]["value"],
        "headline": dg.MetadataValue.json(chain.headline),
        "page_1": dg.MetadataValue.md(f"![page 1](data:image/png;base64,{preview})"),
        "reports": dg.MetadataValue.md(stores.to_markdown(index=False)),
    }


def build_daily_report(partitions: dg.DailyPartitionsDefinition, settings: Settings) -> dg.AssetsDefinition:
    """The daily reports, one partition per day of the daily KPIs' `partitions`, in the settings' language."""
    send_time = settings.report_send_time.strftime("%H:%M")
    language = Locale.parse(settings.report_locale).get_display_name("en")

    @dg.asset(
        key=DAILY_REPORT_KEY,
        group_name=GROUP,
        pool=WAREHOUSE_POOL,
        kinds={"pdf", "reportlab"},
        description=f"The daily PDF report of the day (partition): the whole chain's and each store's, in "
        f"{language}. Cover KPIs (day, week and month to date), revenue with the 7-day forecast, "
        "categories and stores, top 5 and fallers, stock at risk, open alerts and churn, last week's forecast "
        "accuracy. Recorded in ops.generated_reports, each report's emails queued in the outbox (ops.notifications) "
        "to its recipients by the alert routing; the alerts' delivery sends them. The daily_report_sensor builds "
        f"yesterday's at {send_time} ({settings.pipeline_timezone}) once its inputs are fresh.",
        partitions_def=partitions,
        deps=REPORT_INPUTS,
    )
    def daily_report(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        analytics: AnalyticsResource,
        reporting: ReportingResource,
        alerting: AlertingResource,
    ) -> dg.MaterializeResult:
        day = dt.date.fromisoformat(context.partition_key)
        built = build_day_reports(warehouse, analytics, reporting, alerting, day)
        context.log.info(f"{len(built)} reports of {day} in {Path(built[0][0].path).parent}")
        return dg.MaterializeResult(metadata=report_metadata(built))

    return daily_report


class AnalyticsExportConfig(dg.Config):
    days: int = Field(default=DEFAULT_DAYS, ge=1, le=3660, description="Days of daily KPIs and trends in the workbook.")


@dg.asset(
    key=["reports", "analytics_export"],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    kinds={"excel", "xlsxwriter"},
    description="The analytics workbook beside the reports: daily KPIs, trends, top products, stock health, forecasts "
    "with bands and open alerts, one sheet each, with a README sheet and native charts. Input text is always "
    "written as text (never a formula).",
    deps=[*REPORT_INPUTS, dg.AssetKey(["marts", "sales_trends"])],
)
def analytics_export(
    config: AnalyticsExportConfig, warehouse: WarehouseResource, reporting: ReportingResource
) -> dg.MaterializeResult:
    path = Path(reporting.reports_dir) / EXPORT_FILE
    with warehouse.transaction() as cursor:
        last_day = last_complete_day(cursor)
        if last_day is None:
            return dg.MaterializeResult(metadata={"note": "no daily KPIs yet: nothing to export"})
        rows = build_export(cursor, path, last_day, config.days)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "size_kb": round(path.stat().st_size / 1024, 1),
            "last_day": str(last_day),
            "rows_per_sheet": dg.MetadataValue.json(rows),
        }
    )


analytics_export_job = dg.define_asset_job(
    "analytics_export",
    selection=[analytics_export.key],
    description="Write the analytics workbook now (automation does it after the marts change).",
)
