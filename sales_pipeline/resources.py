"""Dagster resources: the one place where settings from the environment enter the code location.

Each setting is an `EnvVar` when it is set, so its value never shows in the UI or in run config,
and falls back to the embedded default when it is not (see settings.py and the README).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import dagster as dg
import psycopg2.extensions
from pydantic import Field

from sales_pipeline import settings
from sales_pipeline.alerts.routing import Routing, load_routing
from sales_pipeline.excel.importer import ImportSettings
from sales_pipeline.excel.mapping import TEMPLATE, Mapping, MappingError, load_mapping
from sales_pipeline.forecasting.models import ForecastSettings
from sales_pipeline.i18n import Formatter
from sales_pipeline.javaapi.client import JavaApiClient
from sales_pipeline.warehouse import db, embedded


def env_or_default(name: str, default: str | None = None) -> str | dg.EnvVar | None:
    """An EnvVar when `name` is set in the environment, else the embedded default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


@cache
def _migrated_url(url: str) -> str:
    db.migrate(url)
    return url


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse, migrated to the current schema on first use in each process."""

    database_url: str | None = Field(
        default=None,
        description=f"PostgreSQL URL ({settings.DATABASE_URL}); unset: the embedded server.",
    )

    def url(self) -> str:
        return _migrated_url(self.database_url or embedded.warehouse_url())

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor inside one transaction: committed when the block ends, rolled back if it raises."""
        with db.transaction(self.url()) as cursor:
            yield cursor


class WorkbookInboxResource(dg.ConfigurableResource):
    """Where workbooks are dropped, archived and rejected, and how their text dates read."""

    inbox_dir: str = Field(description=f"Folder the sensor watches ({settings.INBOX}).")
    archive_dir: str = Field(description="Imported originals and feedback workbooks.")
    rejected_dir: str = Field(description="Files that could not be read at all.")
    mappings_dir: str = Field(
        description=f"Folder of YAML mappings ({settings.MAPPINGS}): inbox/<name>/ uses <name>.yaml."
    )
    dayfirst: bool = Field(default=True, description=f"03/04/2026 is 3 April ({settings.DAYFIRST}).")
    timezone: str = Field(default="UTC", description=f"Time zone of stores with none ({settings.PIPELINE_TIMEZONE}).")
    settle_seconds: float = Field(default=2.0, description="Ignore files modified more recently (still copying).")

    def import_settings(self, database_url: str) -> ImportSettings:
        return ImportSettings(
            database_url=database_url,
            archive_dir=Path(self.archive_dir),
            rejected_dir=Path(self.rejected_dir),
            dayfirst=self.dayfirst,
            timezone=self.timezone,
            inbox_dir=Path(self.inbox_dir),
        )

    def mapping_for(self, name: str) -> Mapping:
        """The template for ''; a .yaml path as it is; otherwise <mappings_dir>/<name>.yaml."""
        if not name:
            return TEMPLATE
        path = Path(name) if name.endswith((".yaml", ".yml")) else Path(self.mappings_dir) / f"{name}.yaml"
        if not path.exists():
            raise MappingError(f"mapping '{name}' not found: {path} does not exist ({settings.MAPPINGS})")
        return load_mapping(path)


class AnalyticsResource(dg.ConfigurableResource):
    """How the marts read the sales: the pipeline's time zone, and where the dashboard file goes."""

    timezone: str = Field(default="UTC", description=f"Day boundaries of the KPIs ({settings.PIPELINE_TIMEZONE}).")
    dashboard_dir: str = Field(description="Folder of dashboard.json, the record a web page or BI tool reads.")


class ForecastingResource(dg.ConfigurableResource):
    """How forecasts are made: the country whose public holidays they know, and how many processes fit them."""

    holiday_country: str | None = Field(
        default=None, description=f"ISO country code ({settings.FORECAST_HOLIDAY_COUNTRY}); none by default."
    )
    workers: int = Field(default=1, ge=1, description=f"Processes fitting in parallel ({settings.FORECAST_WORKERS}).")

    def settings(self) -> ForecastSettings:
        return ForecastSettings(holiday_country=self.holiday_country)


class ReportingResource(dg.ConfigurableResource):
    """The daily reports: language, currency, when they go out, and where the files are written."""

    locale: str = Field(default="en", description=f"Language of the reports: en or fr ({settings.REPORT_LOCALE}).")
    currency: str = Field(default="EUR", description=f"ISO 4217 code of the amounts ({settings.REPORT_CURRENCY}).")
    send_time: str = Field(
        default="07:00",
        description=f"When yesterday's reports go out, HH:MM in the pipeline's zone ({settings.REPORT_SEND_TIME}).",
    )
    reports_dir: str = Field(description="Folder of the PDF reports (one folder per day) and the analytics export.")
    routing_file: str | None = Field(
        default=None, description=f"Who gets which report: the alert routing file ({settings.ALERT_ROUTING})."
    )
    manager_emails: list[str] = Field(
        default_factory=list,
        description=f"Without a routing file, who gets the chain's report ({settings.MANAGER_EMAILS}).",
    )
    email_from: str = Field(default="sales-pipeline@localhost", description=f"Sender ({settings.ALERT_EMAIL_FROM}).")

    def formatter(self) -> Formatter:
        return Formatter(self.locale, self.currency)

    def routing(self) -> Routing:
        if self.routing_file:
            return load_routing(Path(self.routing_file))
        return Routing.everything_to(tuple(self.manager_emails))

    @property
    def email_domain(self) -> str:
        """The right-hand side of the emails' Message-IDs: the sender's domain."""
        return self.email_from.rpartition("@")[2] or "localhost"


class JavaApiResource(dg.ConfigurableResource):
    """The back office's API (Spring Boot): where it is, the token, and how patiently to call it."""

    base_url: str | None = Field(
        default=None,
        description=f"Base URL ({settings.JAVA_API_BASE_URL}); `sales-pipeline dev --simulator` serves a simulator.",
    )
    token: str | None = Field(default=None, description=f"Bearer token ({settings.JAVA_API_TOKEN}).")
    connect_timeout_s: float = 5.0
    read_timeout_s: float = Field(default=30.0, description="Longest one response may take, request to last byte.")
    page_size: int = Field(default=1000, ge=1, le=1000)
    max_retries: int = Field(default=6, ge=0)
    max_wait_s: float = Field(default=120.0, description="Longest total wait between retries of one pull.")
    deadline_s: float = Field(
        default=600.0,
        gt=0,
        description=f"Longest a whole pull may take, retries included ({settings.JAVA_API_DEADLINE_S}).",
    )

    def client(self) -> JavaApiClient:
        if not self.base_url:
            raise ValueError(
                f"{settings.JAVA_API_BASE_URL} is not set: set it to the back office's URL, or run "
                "`sales-pipeline dev --simulator`, which serves the bundled simulator"
            )
        if not self.token:
            raise ValueError(f"{settings.JAVA_API_TOKEN} is not set: the API needs a bearer token")
        return JavaApiClient(
            base_url=self.base_url,
            token=self.token,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            page_size=self.page_size,
            max_retries=self.max_retries,
            max_wait_s=self.max_wait_s,
            deadline_s=self.deadline_s,
        )


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(database_url=env_or_default(settings.DATABASE_URL)),
        "inbox": WorkbookInboxResource(
            inbox_dir=str(settings.inbox_dir()),
            archive_dir=str(settings.archive_dir()),
            rejected_dir=str(settings.rejected_dir()),
            mappings_dir=str(settings.mappings_dir()),
            dayfirst=settings.dayfirst(),
            timezone=env_or_default(settings.PIPELINE_TIMEZONE, "UTC"),
        ),
        "java_api": JavaApiResource(
            base_url=env_or_default(settings.JAVA_API_BASE_URL),
            token=env_or_default(settings.JAVA_API_TOKEN),
            deadline_s=settings.java_api_deadline_s(),
        ),
        "analytics": AnalyticsResource(
            timezone=env_or_default(settings.PIPELINE_TIMEZONE, "UTC"), dashboard_dir=str(settings.dashboard_dir())
        ),
        "reporting": ReportingResource(
            locale=settings.report_locale(),
            currency=settings.report_currency(),
            send_time=settings.report_send_time().strftime("%H:%M"),
            reports_dir=str(settings.reports_dir()),
            routing_file=str(routing) if (routing := settings.alert_routing()) else None,
            manager_emails=list(settings.manager_emails()),
            email_from=settings.alert_email_from(),
        ),
        "forecasting": ForecastingResource(
            holiday_country=settings.forecast_holiday_country(), workers=settings.forecast_workers()
        ),
    }
