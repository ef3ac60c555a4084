"""Dagster resources: where the settings enter the code location.

They are built from the one `Settings` object (settings.py). The database URL, the Java API's URL and
token, the SMTP login and the webhook's URL are not in it: they enter as `EnvVar`s when set, so their
values never show in the UI or in run config, and fall back to the embedded default when not.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from psycopg2.extensions import cursor as Cursor
from pydantic import Field

from sales_pipeline import settings
from sales_pipeline.alerts.delivery import AlertingConfig
from sales_pipeline.alerts.mail import SmtpSettings
from sales_pipeline.alerts.outbox import Message, enqueue
from sales_pipeline.alerts.policy import Policy
from sales_pipeline.alerts.routing import Routing, load_routing
from sales_pipeline.excel.importer import ImportSettings
from sales_pipeline.excel.mapping import TEMPLATE, Mapping, MappingError, load_mapping
from sales_pipeline.forecasting.models import ForecastSettings
from sales_pipeline.javaapi.client import JavaApiClient
from sales_pipeline.settings import Settings
from sales_pipeline.warehouse import db, embedded


def env_or_default(name: str, default: str | None = None) -> str | dg.EnvVar | None:
    """An EnvVar when `name` is set in the environment, else the embedded default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


_migrated: set[str] = set()  # the warehouses this process has migrated


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse, migrated to the current schema once per process, before its first run or tick."""

    database_url: str | None = Field(
        default=None,
        description=f"PostgreSQL URL ({settings.DATABASE_URL}); unset: the embedded server.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        url = self.url()
        if url not in _migrated:
            with db.transaction(url) as cursor:
                db.migrate(cursor)
            _migrated.add(url)

    def url(self) -> str:
        return self.database_url or embedded.warehouse_url()

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
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
    dayfirst: bool = Field(description=f"03/04/2026 is 3 April ({settings.DAYFIRST}).")
    timezone: str = Field(description=f"Time zone of stores with none ({settings.PIPELINE_TIMEZONE}).")
    settle_seconds: float = Field(default=2.0, description="Ignore files modified more recently (still copying).")

    def import_settings(self) -> ImportSettings:
        return ImportSettings(
            archive_dir=Path(self.archive_dir),
            rejected_dir=Path(self.rejected_dir),
            timezone=self.timezone,
            dayfirst=self.dayfirst,
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

    timezone: str = Field(description=f"Day boundaries of the KPIs ({settings.PIPELINE_TIMEZONE}).")
    dashboard_dir: str = Field(description="Folder of dashboard.json, the record a web page or BI tool reads.")


class ForecastingResource(dg.ConfigurableResource):
    """How forecasts are made: their days, the country whose public holidays they know, how many processes fit them."""

    timezone: str = Field(description=f"Day boundaries of the forecast days ({settings.PIPELINE_TIMEZONE}).")
    holiday_country: str | None = Field(
        default=None, description=f"ISO country code ({settings.FORECAST_HOLIDAY_COUNTRY}); none by default."
    )
    workers: int = Field(default=1, ge=1, description=f"Processes fitting in parallel ({settings.FORECAST_WORKERS}).")

    def settings(self) -> ForecastSettings:
        return ForecastSettings(holiday_country=self.holiday_country)


class ReportingResource(dg.ConfigurableResource):
    """The daily reports: when they go out and where the files are written. Their language and currency, who
    gets them and how are the alerting resource's (one set of settings for everything sent)."""

    send_time: str = Field(
        default="07:00",
        description=f"When yesterday's reports go out, HH:MM in the pipeline's zone ({settings.REPORT_SEND_TIME}).",
    )
    reports_dir: str = Field(description="Folder of the PDF reports (one folder per day) and the analytics export.")


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


class AlertingResource(dg.ConfigurableResource):
    """Who is told what, and how: the mail server, the webhook, routing and the alerting policy.

    The SMTP password and the webhook's URL enter as EnvVars: they never show in the UI or run config.
    """

    smtp_host: str | None = Field(default=None, description=f"Mail server ({settings.SMTP_HOST}); unset: .eml files.")
    smtp_port: int = Field(default=587, description=f"{settings.SMTP_PORT}: 465 with SMTP_SSL, 25 plain.")
    smtp_user: str | None = Field(default=None, description=f"Login ({settings.SMTP_USER}); unset: no login.")
    smtp_password: str | None = Field(default=None, description=f"Password ({settings.SMTP_PASSWORD}).")
    smtp_starttls: bool = Field(default=True, description=f"Upgrade with STARTTLS ({settings.SMTP_STARTTLS}).")
    smtp_ssl: bool = Field(default=False, description=f"Implicit TLS ({settings.SMTP_SSL}).")
    smtp_timeout_s: float = Field(
        default=30.0, gt=0, description=f"Per connection or command ({settings.SMTP_TIMEOUT_S})."
    )
    email_from: str = Field(default="sales-pipeline@localhost", description=f"Sender ({settings.ALERT_EMAIL_FROM}).")
    manager_emails: list[str] = Field(default=[], description=f"Everything goes to them without a routing file "
                                      f"({settings.MANAGER_EMAILS}).")  # fmt: skip
    engineer_emails: list[str] = Field(default=[], description=f"Told of failed runs ({settings.ENGINEER_EMAILS}).")
    webhook_url: str | None = Field(default=None, description=f"Slack or Teams webhook ({settings.ALERT_WEBHOOK_URL}).")
    webhook_format: str | None = Field(default=None, description=f"slack or teams ({settings.ALERT_WEBHOOK_FORMAT}).")
    routing_file: str | None = Field(default=None, description=f"Routing YAML ({settings.ALERT_ROUTING}).")
    digest_time: str = Field(default="07:00", description=f"Daily digest of warnings ({settings.ALERT_DIGEST_TIME}).")
    repeat_hours: float = Field(default=24.0, gt=0, description=f"Reminders of open criticals "
                                f"({settings.ALERT_REPEAT_HOURS}).")  # fmt: skip
    webserver_url: str = Field(
        default="http://127.0.0.1:3000", description=f"Links ({settings.DAGSTER_WEBSERVER_URL})."
    )
    locale: str = Field(default="en", description=f"Language of the messages and reports ({settings.REPORT_LOCALE}).")
    currency: str = Field(default="EUR", description=f"Currency of amounts ({settings.REPORT_CURRENCY}).")
    timezone: str = Field(description=f"Digest time and dates ({settings.PIPELINE_TIMEZONE}).")
    outbox_dir: str = Field(description="Where .eml files go when no mail server is set.")

    def config(self) -> AlertingConfig:
        routing = load_routing(Path(self.routing_file)) if self.routing_file else None
        return AlertingConfig(
            smtp=SmtpSettings(
                host=self.smtp_host,
                port=self.smtp_port,
                sender=self.email_from,
                user=self.smtp_user,
                password=self.smtp_password,
                starttls=self.smtp_starttls,
                ssl=self.smtp_ssl,
                timeout_s=self.smtp_timeout_s,
            ),
            outbox_dir=Path(self.outbox_dir),
            routing=routing or Routing.everything_to(tuple(self.manager_emails)),
            policy=Policy(
                timezone=self.timezone,
                digest_time=dt.time.fromisoformat(self.digest_time),
                repeat_hours=self.repeat_hours,
                webhook=bool(self.webhook_url),
            ),
            webhook_url=self.webhook_url,
            webhook_format=self.webhook_format,
            engineers=tuple(self.engineer_emails),
            webserver_url=self.webserver_url,
            locale=self.locale,
            currency=self.currency,
            secrets=(*settings.secret_values(), self.smtp_password or "", self.webhook_url or ""),
        )

    def enqueue(self, cursor: Cursor, message: Message) -> int | None:
        """Queue a message in the outbox (see alerts/outbox.py), its Message-ID on the sender's domain."""
        return enqueue(cursor, message, self.email_from.rpartition("@")[2])


def alerting_resource(config: Settings) -> AlertingResource:
    """The alerting settings, checked now (a bad routing file fails here, naming its file and line)."""
    alerts = config.alerts
    if alerts.routing:
        load_routing(alerts.routing)
    return AlertingResource(
        smtp_host=alerts.smtp_host,
        smtp_port=alerts.smtp_port,
        smtp_user=env_or_default(settings.SMTP_USER),
        smtp_password=env_or_default(settings.SMTP_PASSWORD),
        smtp_starttls=alerts.smtp_starttls,
        smtp_ssl=alerts.smtp_ssl,
        smtp_timeout_s=alerts.smtp_timeout_s,
        email_from=alerts.email_from,
        manager_emails=list(alerts.manager_emails),
        engineer_emails=list(alerts.engineer_emails),
        webhook_url=env_or_default(settings.ALERT_WEBHOOK_URL),
        webhook_format=alerts.webhook_format,
        routing_file=str(alerts.routing) if alerts.routing else None,
        digest_time=alerts.digest_time.strftime("%H:%M"),
        repeat_hours=alerts.repeat_hours,
        webserver_url=config.dagster_webserver_url,
        locale=config.report_locale,
        currency=config.report_currency,
        timezone=config.pipeline_timezone,
        outbox_dir=str(config.outbox_dir),
    )


def default_resources(config: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(database_url=env_or_default(settings.DATABASE_URL)),
        "inbox": WorkbookInboxResource(
            inbox_dir=str(config.inbox_dir),
            archive_dir=str(config.archive_dir),
            rejected_dir=str(config.rejected_dir),
            mappings_dir=str(config.mappings_dir),
            dayfirst=config.dayfirst,
            timezone=config.pipeline_timezone,
        ),
        "java_api": JavaApiResource(
            base_url=env_or_default(settings.JAVA_API_BASE_URL),
            token=env_or_default(settings.JAVA_API_TOKEN),
            deadline_s=config.java_api_deadline_s,
        ),
        "analytics": AnalyticsResource(timezone=config.pipeline_timezone, dashboard_dir=str(config.dashboard_dir)),
        "reporting": ReportingResource(
            send_time=config.report_send_time.strftime("%H:%M"), reports_dir=str(config.reports_dir)
        ),
        "forecasting": ForecastingResource(
            timezone=config.pipeline_timezone,
            holiday_country=config.forecast_holiday_country,
            workers=config.forecast_workers,
        ),
        "alerting": alerting_resource(config),
    }
