"""The pipeline's settings, read from the environment once into one frozen `Settings` object.

The code location reads them when it loads (`sales_pipeline.definitions.defs`), the CLI and the read API
when they start; a bad value fails there, with one line naming the setting, its value and what is
accepted. Every setting has an embedded default so that a fresh checkout runs with nothing configured;
the names here are the ones listed in `.env.example` and the README. Secrets and server addresses (the
database URLs, the Java API's URL and token, the SMTP login, the webhook URL, the API tokens) are not in
this object: their form is checked here, but the resources read them as `EnvVar`s and the read API reads
its tokens itself (`api_tokens`), so their values never show in the UI, in run config or in a repr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DATABASE_URL = "SALES_PIPELINE_DATABASE_URL"
DAGSTER_DATABASE_URL = "SALES_PIPELINE_DAGSTER_DATABASE_URL"
HOME = "SALES_PIPELINE_HOME"
INBOX = "SALES_PIPELINE_INBOX"
PIPELINE_TIMEZONE = "PIPELINE_TIMEZONE"
DAYFIRST = "SALES_PIPELINE_DAYFIRST"
MAPPINGS = "SALES_PIPELINE_MAPPINGS"
HISTORY_START = "SALES_PIPELINE_HISTORY_START"
JAVA_API_BASE_URL = "JAVA_API_BASE_URL"
JAVA_API_TOKEN = "JAVA_API_TOKEN"
JAVA_API_DEADLINE_S = "JAVA_API_DEADLINE_S"
FORECAST_HOLIDAY_COUNTRY = "FORECAST_HOLIDAY_COUNTRY"
FORECAST_WORKERS = "FORECAST_WORKERS"
FORECAST_SHARDS = "FORECAST_SHARDS"
RUN_EXECUTOR = "SALES_PIPELINE_RUN_EXECUTOR"
REPORT_LOCALE = "REPORT_LOCALE"
REPORT_CURRENCY = "REPORT_CURRENCY"
REPORT_SEND_TIME = "REPORT_SEND_TIME"
# Alerts and the outbox (sales_pipeline/alerts/).
SMTP_HOST = "SMTP_HOST"
SMTP_PORT = "SMTP_PORT"
SMTP_USER = "SMTP_USER"
SMTP_PASSWORD = "SMTP_PASSWORD"
SMTP_STARTTLS = "SMTP_STARTTLS"
SMTP_SSL = "SMTP_SSL"
SMTP_TIMEOUT_S = "SMTP_TIMEOUT_S"
ALERT_EMAIL_FROM = "ALERT_EMAIL_FROM"
MANAGER_EMAILS = "MANAGER_EMAILS"
ENGINEER_EMAILS = "ENGINEER_EMAILS"
ALERT_WEBHOOK_URL = "ALERT_WEBHOOK_URL"
ALERT_WEBHOOK_FORMAT = "ALERT_WEBHOOK_FORMAT"
ALERT_ROUTING = "ALERT_ROUTING"
ALERT_DIGEST_TIME = "ALERT_DIGEST_TIME"
ALERT_REPEAT_HOURS = "ALERT_REPEAT_HOURS"
DAGSTER_WEBSERVER_URL = "DAGSTER_WEBSERVER_URL"
# The read API (sales_pipeline/api/).
API_TOKENS = "API_TOKENS"
API_CORS_ORIGINS = "API_CORS_ORIGINS"
API_UPLOAD_MAX_MB = "API_UPLOAD_MAX_MB"
API_UPLOAD_MAX_UNZIPPED_MB = "API_UPLOAD_MAX_UNZIPPED_MB"
API_ROLES = ("read", "write")
URL_EXAMPLE = "postgresql://user:password@host:5432/database"

# An address people type: local@domain, no spaces, no display name (ASCII: SMTP without SMTPUTF8).
EMAIL_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
WEBHOOK_FORMATS = ("slack", "teams")
# How a run's steps execute: processes of the run's own worker, or a Kubernetes Job each (deploy/README.md).
RUN_EXECUTORS = ("in_process", "multiprocess", "k8s")
# A shard is a step of its own in every forecast run: more than the executor runs at once only adds steps.
MAX_FORECAST_SHARDS = 64
# Never shown: an error quoting one has it replaced by *** (alerts/delivery.py, redact).
SECRET_SETTINGS = (SMTP_PASSWORD, ALERT_WEBHOOK_URL, JAVA_API_TOKEN, API_TOKENS)


class SettingError(ValueError):
    """A setting with a value the pipeline cannot use; the message is one line naming it."""

    def __init__(self, name: str, value: str, accepted: str) -> None:
        super().__init__(f"{name}={value!r} is not {accepted}")


@dataclass(frozen=True)
class AlertSettings:
    """Who is told what, and how (the SMTP login and the webhook's URL are secrets, not here)."""

    smtp_host: str | None  # unset: messages are written as .eml files to the outbox folder
    smtp_port: int  # default 465 with SMTP_SSL, 587 with STARTTLS, 25 plain
    smtp_starttls: bool  # upgrade the connection with STARTTLS; false: plain, for a local relay
    smtp_ssl: bool  # implicit TLS from the first byte (port 465), instead of STARTTLS
    smtp_timeout_s: float  # the longest one SMTP connection or command may wait
    email_from: str  # the sender of every email the pipeline sends
    manager_emails: tuple[str, ...]  # who gets every alert when no routing file is set
    engineer_emails: tuple[str, ...]  # who is told about failed runs
    webhook_format: str | None  # slack or teams; unset: taken from the webhook's URL (alerts/webhook.py)
    routing: Path | None  # the routing YAML file; unset: everything to the managers
    digest_time: time  # when the daily digest of warnings goes out, in the pipeline's time zone
    repeat_hours: float  # how often an open, unacknowledged critical alert is sent again

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> AlertSettings:
        ssl = _boolean(SMTP_SSL, environ.get(SMTP_SSL) or "false")
        starttls = _boolean(SMTP_STARTTLS, environ.get(SMTP_STARTTLS) or "true")
        _webhook_url_checked(environ)
        return cls(
            smtp_host=(environ.get(SMTP_HOST) or "").strip() or None,
            smtp_port=_port(SMTP_PORT, environ.get(SMTP_PORT) or ("465" if ssl else "587" if starttls else "25")),
            smtp_starttls=starttls,
            smtp_ssl=ssl,
            smtp_timeout_s=_seconds(SMTP_TIMEOUT_S, environ.get(SMTP_TIMEOUT_S) or "30", example="30"),
            email_from=_email(ALERT_EMAIL_FROM, environ.get(ALERT_EMAIL_FROM) or "sales-pipeline@localhost"),
            manager_emails=email_list(MANAGER_EMAILS, environ.get(MANAGER_EMAILS) or ""),
            engineer_emails=email_list(ENGINEER_EMAILS, environ.get(ENGINEER_EMAILS) or ""),
            webhook_format=_webhook_format(ALERT_WEBHOOK_FORMAT, environ.get(ALERT_WEBHOOK_FORMAT) or ""),
            routing=_file(ALERT_ROUTING, environ.get(ALERT_ROUTING) or ""),
            digest_time=_time_of_day(ALERT_DIGEST_TIME, environ.get(ALERT_DIGEST_TIME) or "07:00"),
            repeat_hours=_hours(ALERT_REPEAT_HOURS, environ.get(ALERT_REPEAT_HOURS) or "24"),
        )


@dataclass(frozen=True)
class ApiSettings:
    """The read API's limits and origins (its tokens are secrets: `api_tokens`)."""

    cors_origins: tuple[str, ...]  # web origins whose pages may call the API from a browser; none by default
    upload_max_bytes: int  # the largest workbook `POST /data/import` accepts
    upload_max_unzipped_bytes: int  # the most an uploaded .xlsx/.xlsm may hold once unzipped

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ApiSettings:
        api_tokens(environ)  # checked with the others; read by the API itself
        return cls(
            cors_origins=_origins(API_CORS_ORIGINS, environ.get(API_CORS_ORIGINS) or ""),
            upload_max_bytes=_megabytes(API_UPLOAD_MAX_MB, environ.get(API_UPLOAD_MAX_MB) or "50", "50"),
            upload_max_unzipped_bytes=_megabytes(
                API_UPLOAD_MAX_UNZIPPED_MB, environ.get(API_UPLOAD_MAX_UNZIPPED_MB) or "500", "500"
            ),
        )


@dataclass(frozen=True)
class Settings:
    home: Path  # everything written at run time (git-ignored): database, Dagster home, files
    inbox_dir: Path  # where people drop workbooks; the inbox sensor watches it
    mappings_dir: Path  # YAML mappings for workbooks of other layouts; the project ships data/mappings
    dayfirst: bool  # whether text dates like 03/04/2026 mean 3 April rather than 4 March
    pipeline_timezone: str  # day boundaries of the marts, forecasts and daily partitions; stores without one
    history_start: date  # first day of the daily partitions: sales before it stay out of the marts
    java_api_deadline_s: float  # the longest one pull may take, every page, retry and wait included
    forecast_holiday_country: str | None  # ISO code whose public holidays the forecasts know
    forecast_workers: int  # processes fitting forecasts in parallel
    forecast_shards: int  # steps a forecast run fans out into: see defs/forecasting/assets.py
    run_executor: str  # in_process, multiprocess or k8s: see defs/executor.py
    report_locale: str  # the language of the reports, emails and the page: en or fr
    report_currency: str  # the ISO 4217 code amounts are shown in (the warehouse keeps numbers)
    report_send_time: time  # when the daily reports of the day before are built and sent, in the pipeline's zone
    dagster_webserver_url: str  # the Dagster UI's address, for the links in emails and chat messages
    alerts: AlertSettings
    api: ApiSettings

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        home = pipeline_home(environ)
        for name in (DATABASE_URL, DAGSTER_DATABASE_URL):  # secrets: checked, not kept
            _database_url_checked(name, environ.get(name) or "")
        return cls(
            home=home,
            inbox_dir=Path(environ.get(INBOX) or home / "inbox").expanduser().resolve(),
            mappings_dir=Path(environ.get(MAPPINGS) or "data/mappings").expanduser().resolve(),
            dayfirst=_boolean(DAYFIRST, environ.get(DAYFIRST) or "true"),
            pipeline_timezone=_timezone(PIPELINE_TIMEZONE, environ.get(PIPELINE_TIMEZONE) or "UTC"),
            history_start=_day(HISTORY_START, environ.get(HISTORY_START) or "2020-01-01"),
            java_api_deadline_s=_seconds(JAVA_API_DEADLINE_S, environ.get(JAVA_API_DEADLINE_S) or "600"),
            forecast_holiday_country=_country(FORECAST_HOLIDAY_COUNTRY, environ.get(FORECAST_HOLIDAY_COUNTRY) or ""),
            forecast_workers=_processes(FORECAST_WORKERS, environ.get(FORECAST_WORKERS) or str(os.cpu_count() or 1)),
            forecast_shards=_shards(FORECAST_SHARDS, environ.get(FORECAST_SHARDS) or "1"),
            run_executor=_run_executor(RUN_EXECUTOR, (environ.get(RUN_EXECUTOR) or "in_process").strip().lower()),
            report_locale=_locale(REPORT_LOCALE, (environ.get(REPORT_LOCALE) or "en").strip()),
            report_currency=_currency(REPORT_CURRENCY, (environ.get(REPORT_CURRENCY) or "EUR").strip().upper()),
            report_send_time=_time_of_day(REPORT_SEND_TIME, environ.get(REPORT_SEND_TIME) or "07:00"),
            dagster_webserver_url=_web_url(DAGSTER_WEBSERVER_URL, environ.get(DAGSTER_WEBSERVER_URL) or ""),
            alerts=AlertSettings.from_environment(environ),
            api=ApiSettings.from_environment(environ),
        )

    @property
    def archive_dir(self) -> Path:
        """Imported originals and their feedback workbooks, one folder per content hash."""
        return self.home / "archive"

    @property
    def rejected_dir(self) -> Path:
        """Files that could not be read at all, one folder per content hash."""
        return self.home / "rejected"

    @property
    def dashboard_dir(self) -> Path:
        """Where the dashboard's JSON file is written for a web page or a BI tool to read."""
        return self.home / "dashboard"

    @property
    def reports_dir(self) -> Path:
        """The daily PDF reports (one folder per day) and the analytics export workbook."""
        return self.home / "reports"

    @property
    def outbox_dir(self) -> Path:
        """Where messages are written as .eml files when no SMTP server is configured."""
        return self.home / "outbox"


def pipeline_home(environ: Mapping[str, str] = os.environ) -> Path:
    """SALES_PIPELINE_HOME, also where the embedded PostgreSQL keeps its data (warehouse/embedded.py)."""
    return Path(environ.get(HOME) or ".sales_pipeline").expanduser().resolve()


def api_tokens(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The read API's bearer tokens and their roles (token -> read|write), from `token:role,token:role`.

    A token is a secret: a bad pair is named by its position, never by its text.
    """
    value = environ.get(API_TOKENS) or ""
    tokens: dict[str, str] = {}
    for position, pair in enumerate((p.strip() for p in value.split(",") if p.strip()), start=1):
        token, _, role = pair.rpartition(":")
        if not token or role not in API_ROLES:
            raise ValueError(
                f"{API_TOKENS}: pair {position} is not token:role with role read or write"
                " (e.g. API_TOKENS=k7f...:read,p2x...:write)"
            )
        if len(token) < 16:
            raise ValueError(f"{API_TOKENS}: the token of pair {position} is shorter than 16 characters")
        tokens[token] = role
    return tokens


def secret_values(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The values of the secret settings that are set (API_TOKENS' `token:role` pairs as their tokens)."""
    values = []
    for name in SECRET_SETTINGS:
        value = (environ.get(name) or "").strip()
        if name == API_TOKENS:
            values += [pair.rpartition(":")[0].strip() for pair in value.split(",") if pair.strip()]
        elif value:
            values.append(value)
    return tuple(values)


def without_password(url: str) -> str:
    """A database URL as it may be shown: the password, in the address or its query, replaced by ***."""
    if "://" not in url:
        return "(not a URL)"
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(f"{key}={'***' if key == 'password' else value}" for key, value in pairs)
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def email_list(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated addresses; a malformed one fails naming `name` and the address."""
    addresses = tuple(part.strip() for part in value.split(",") if part.strip())
    for address in addresses:
        if not EMAIL_ADDRESS.fullmatch(address):
            raise ValueError(f"{name}: {address!r} is not an email address (name@example.com, comma-separated)")
    return addresses


# --- each kind of value: read, or a one-line SettingError --------------------------------------------


def _boolean(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word not in {"true", "false", "1", "0", "yes", "no"}:
        raise SettingError(name, value, "a boolean: use true or false")
    return word in {"true", "1", "yes"}


def _timezone(name: str, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise SettingError(name, value, "a time zone: use an IANA name such as UTC or Europe/Paris") from error
    return value


def _day(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise SettingError(name, value, "a date: use YYYY-MM-DD") from error


def _time_of_day(name: str, value: str) -> time:
    try:
        return datetime.strptime(value.strip(), "%H:%M").time()
    except ValueError as error:
        raise SettingError(name, value.strip(), "a time of day: use HH:MM, e.g. 07:00") from error


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        return 0.0
    return number if 0 < number < float("inf") else 0.0


def _seconds(name: str, value: str, example: str = "600") -> float:
    if not _positive(value):
        raise SettingError(name, value, f"a number of seconds (more than 0), e.g. {example}")
    return float(value)


def _hours(name: str, value: str) -> float:
    if not _positive(value):
        raise SettingError(name, value, "a number of hours (more than 0), e.g. 24")
    return float(value)


def _megabytes(name: str, value: str, example: str) -> int:
    if not _positive(value) or float(value) >= 1_000_000:
        raise SettingError(name, value, f"a size in megabytes (more than 0), e.g. {example}")
    return int(float(value) * 1024 * 1024)


def _whole_number(name: str, value: str, low: int, high: int | None, accepted: str) -> int:
    """A whole number from `low` to `high` (no upper bound when None), else the setting's one-line error.
    ASCII digits only: str.isdigit() also takes '²', which int() refuses."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < low or (high is not None and int(text) > high):
        raise SettingError(name, text, accepted)
    return int(text)


def _processes(name: str, value: str) -> int:
    return _whole_number(name, value, 1, None, "a whole number of processes (1 or more)")


def _shards(name: str, value: str) -> int:
    return _whole_number(
        name, value, 1, MAX_FORECAST_SHARDS, f"a whole number of shards from 1 to {MAX_FORECAST_SHARDS}"
    )


def _port(name: str, value: str) -> int:
    return _whole_number(name, value, 1, 65535, "a port number (1 to 65535)")


def _country(name: str, value: str) -> str | None:
    code = value.strip().upper()
    if not code:
        return None
    import holidays  # only when a country is set: it loads every country's calendar

    if code not in holidays.list_supported_countries():
        raise SettingError(
            name, code, "a country the holidays package knows: use an ISO 3166 code such as US, GB, DE or FR"
        )
    return code


def _locale(name: str, value: str) -> str:
    from sales_pipeline.i18n import LOCALES

    if value not in LOCALES:
        raise SettingError(name, value, f"a report language: use one of {', '.join(LOCALES)}")
    return value


def _currency(name: str, value: str) -> str:
    from babel.numbers import list_currencies

    if value not in list_currencies():
        raise SettingError(name, value, "a currency Babel knows: use an ISO 4217 code such as EUR")
    return value


def _web_url(name: str, value: str) -> str:
    url = (value.strip() or "http://127.0.0.1:3000").rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise SettingError(name, url, "an http(s) URL, e.g. http://127.0.0.1:3000")
    return url


def _email(name: str, value: str) -> str:
    address = value.strip()
    if not EMAIL_ADDRESS.fullmatch(address):
        raise SettingError(name, address, "an email address (name@example.com)")
    return address


def _run_executor(name: str, value: str) -> str:
    if value not in RUN_EXECUTORS:
        raise SettingError(name, value, f"a run executor: use {', '.join(RUN_EXECUTORS[:-1])} or {RUN_EXECUTORS[-1]}")
    return value


def _webhook_format(name: str, value: str) -> str | None:
    word = value.strip().lower()
    if word and word not in WEBHOOK_FORMATS:
        raise SettingError(name, word, "a webhook format: use slack or teams")
    return word or None


def _webhook_url_checked(environ: Mapping[str, str]) -> None:
    """ALERT_WEBHOOK_URL is a secret: checked here, read by the alerting resource as an EnvVar."""
    value = (environ.get(ALERT_WEBHOOK_URL) or "").strip()
    if value and not value.startswith(("https://", "http://")):
        raise ValueError(f"{ALERT_WEBHOOK_URL} is not an http(s) URL (its value is a secret and not shown)")


def _database_url_checked(name: str, value: str) -> None:
    """A PostgreSQL URL, or unset; its password never appears in the message."""
    if not value:
        return
    if "://" not in value:
        raise SettingError(name, "(hidden: it may hold a password)", f"a URL: use {URL_EXAMPLE}")
    if urlsplit(value).scheme.partition("+")[0] not in ("postgres", "postgresql"):
        raise SettingError(name, without_password(value), f"a PostgreSQL URL: use {URL_EXAMPLE}")


def _file(name: str, value: str) -> Path | None:
    if not value.strip():
        return None
    path = Path(value.strip()).expanduser().resolve()
    if not path.is_file():
        raise SettingError(name, value.strip(), "a file: point it at a routing YAML file")
    return path


def _origins(name: str, value: str) -> tuple[str, ...]:
    origins = tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())
    for origin in origins:
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
            raise ValueError(
                f"{name}={value!r}: {origin!r} is not an origin: use scheme://host[:port],"
                " e.g. https://intranet.example.com, comma-separated"
            )
    return origins
