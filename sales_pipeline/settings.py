"""Where the pipeline keeps its files, and the settings read from the environment.

Every setting has an embedded default so that a fresh checkout runs with nothing configured.
The names here are the ones listed in `.env.example` and the README.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time
from pathlib import Path

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
REPORT_LOCALE = "REPORT_LOCALE"
REPORT_CURRENCY = "REPORT_CURRENCY"
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
API_TOKENS = "API_TOKENS"
API_CORS_ORIGINS = "API_CORS_ORIGINS"
API_UPLOAD_MAX_MB = "API_UPLOAD_MAX_MB"
API_UPLOAD_MAX_UNZIPPED_MB = "API_UPLOAD_MAX_UNZIPPED_MB"
API_ROLES = ("read", "write")


def home() -> Path:
    """Folder for everything written at run time (git-ignored): database, Dagster home, files."""
    return Path(os.environ.get(HOME, ".sales_pipeline")).expanduser().resolve()


def inbox_dir() -> Path:
    """Where people drop workbooks; the inbox sensor watches it."""
    return Path(os.environ.get(INBOX) or home() / "inbox").expanduser().resolve()


def archive_dir() -> Path:
    """Imported originals and their feedback workbooks, one folder per content hash."""
    return home() / "archive"


def rejected_dir() -> Path:
    """Files that could not be read at all, one folder per content hash."""
    return home() / "rejected"


def mappings_dir() -> Path:
    """YAML mappings for workbooks of other layouts; the project ships data/mappings."""
    return Path(os.environ.get(MAPPINGS) or "data/mappings").expanduser().resolve()


def dashboard_dir() -> Path:
    """Where the dashboard's JSON file is written for a web page or a BI tool to read."""
    return home() / "dashboard"


def outbox_dir() -> Path:
    """Where messages are written as .eml files when no SMTP server is configured."""
    return home() / "outbox"


def history_start() -> str:
    """First day of the daily partitions (YYYY-MM-DD): sales before it stay out of the marts."""
    value = os.environ.get(HISTORY_START) or "2020-01-01"
    try:
        date.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"{HISTORY_START}={value!r} is not a date: use YYYY-MM-DD") from error
    return value


def pipeline_timezone() -> str:
    return os.environ.get(PIPELINE_TIMEZONE) or "UTC"


def dayfirst() -> bool:
    """Whether text dates like 03/04/2026 mean 3 April (day first) rather than 4 March."""
    value = os.environ.get(DAYFIRST, "true").strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no"}:
        raise ValueError(f"{DAYFIRST}={value!r} is not a boolean: use true or false")
    return value in {"true", "1", "yes"}


def forecast_holiday_country() -> str | None:
    """ISO country code whose public holidays the forecasts know (the `holidays` package); none by default."""
    value = (os.environ.get(FORECAST_HOLIDAY_COUNTRY) or "").strip().upper()
    if not value:
        return None
    import holidays

    if value not in holidays.list_supported_countries():
        raise ValueError(
            f"{FORECAST_HOLIDAY_COUNTRY}={value!r} is not a country the holidays package knows:"
            " use an ISO 3166 code such as US, GB, DE or FR"
        )
    return value


def forecast_workers() -> int:
    """Processes fitting forecasts in parallel; one per CPU by default."""
    value = os.environ.get(FORECAST_WORKERS) or str(os.cpu_count() or 1)
    if not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"{FORECAST_WORKERS}={value!r} is not a whole number of processes (1 or more)")
    return int(value)


def java_api_deadline_s() -> float:
    """The longest one pull from the Java API may take, every page, retry and wait included (seconds)."""
    value = os.environ.get(JAVA_API_DEADLINE_S) or "600"
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{JAVA_API_DEADLINE_S}={value!r} is not a number of seconds (more than 0), e.g. 600")
    return seconds


def api_tokens() -> dict[str, str]:
    """The read API's bearer tokens and their roles (token -> read|write), from `token:role,token:role`.

    A token is a secret: a bad pair is named by its position, never by its text.
    """
    value = os.environ.get(API_TOKENS) or ""
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


def api_cors_origins() -> list[str]:
    """Web origins (scheme://host[:port]) whose pages may call the read API from a browser; none by default."""
    value = os.environ.get(API_CORS_ORIGINS) or ""
    origins = [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
    for origin in origins:
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
            raise ValueError(
                f"{API_CORS_ORIGINS}={value!r}: {origin!r} is not an origin: use scheme://host[:port],"
                " e.g. https://intranet.example.com, comma-separated"
            )
    return origins


def _megabytes(name: str, default: str) -> int:
    value = os.environ.get(name) or default
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = 0.0
    if not 0 < megabytes < 1_000_000:
        raise ValueError(f"{name}={value!r} is not a size in megabytes (more than 0), e.g. {default}")
    return int(megabytes * 1024 * 1024)


def api_upload_max_bytes() -> int:
    """The largest workbook `POST /data/import` accepts (API_UPLOAD_MAX_MB, default 50)."""
    return _megabytes(API_UPLOAD_MAX_MB, "50")


def api_upload_max_unzipped_bytes() -> int:
    """The most an uploaded .xlsx/.xlsm may hold once unzipped (API_UPLOAD_MAX_UNZIPPED_MB, default 500)."""
    return _megabytes(API_UPLOAD_MAX_UNZIPPED_MB, "500")


def report_locale() -> str:
    """The language of the reports and emails: en or fr."""
    from sales_pipeline.i18n import LOCALES

    value = (os.environ.get(REPORT_LOCALE) or "en").strip()
    if value not in LOCALES:
        raise ValueError(f"{REPORT_LOCALE}={value!r} is not a report language: use one of {', '.join(LOCALES)}")
    return value


def report_currency() -> str:
    """The ISO 4217 code amounts are shown in (the warehouse keeps numbers, not currencies)."""
    from babel.numbers import list_currencies

    value = (os.environ.get(REPORT_CURRENCY) or "EUR").strip().upper()
    if value not in list_currencies():
        raise ValueError(f"{REPORT_CURRENCY}={value!r} is not a currency Babel knows: use an ISO 4217 code such as EUR")
    return value


# --- alerts and the outbox -------------------------------------------------------------------------

# An address people type: local@domain, no spaces, no display name (ASCII: SMTP without SMTPUTF8).
EMAIL_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
WEBHOOK_FORMATS = ("slack", "teams")


def _flag(name: str, default: str) -> bool:
    value = (os.environ.get(name) or default).strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no"}:
        raise ValueError(f"{name}={value!r} is not a boolean: use true or false")
    return value in {"true", "1", "yes"}


def email_list(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated addresses; a malformed one fails naming `name` and the address."""
    addresses = tuple(part.strip() for part in value.split(",") if part.strip())
    for address in addresses:
        if not EMAIL_ADDRESS.fullmatch(address):
            raise ValueError(f"{name}: {address!r} is not an email address (name@example.com, comma-separated)")
    return addresses


def smtp_host() -> str | None:
    """The mail server; unset: messages are written as .eml files to the outbox folder."""
    return (os.environ.get(SMTP_HOST) or "").strip() or None


def smtp_ssl() -> bool:
    """Implicit TLS from the first byte (port 465), instead of STARTTLS."""
    return _flag(SMTP_SSL, "false")


def smtp_starttls() -> bool:
    """Upgrade the connection with STARTTLS (true by default); false: plain, for a local relay."""
    return _flag(SMTP_STARTTLS, "true")


def smtp_port() -> int:
    """Default 465 with SMTP_SSL, 587 with STARTTLS, 25 plain."""
    default = "465" if smtp_ssl() else "587" if smtp_starttls() else "25"
    value = (os.environ.get(SMTP_PORT) or default).strip()
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{SMTP_PORT}={value!r} is not a port number (1 to 65535)")
    return int(value)


def smtp_timeout_s() -> float:
    """The longest one SMTP connection or command may wait (seconds)."""
    value = os.environ.get(SMTP_TIMEOUT_S) or "30"
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{SMTP_TIMEOUT_S}={value!r} is not a number of seconds (more than 0), e.g. 30")
    return seconds


def alert_email_from() -> str:
    """The sender of every email the pipeline sends."""
    value = (os.environ.get(ALERT_EMAIL_FROM) or "sales-pipeline@localhost").strip()
    if not EMAIL_ADDRESS.fullmatch(value):
        raise ValueError(f"{ALERT_EMAIL_FROM}={value!r} is not an email address (name@example.com)")
    return value


def manager_emails() -> tuple[str, ...]:
    """Who gets every alert when no routing file is set."""
    return email_list(MANAGER_EMAILS, os.environ.get(MANAGER_EMAILS) or "")


def engineer_emails() -> tuple[str, ...]:
    """Who is told about failed runs."""
    return email_list(ENGINEER_EMAILS, os.environ.get(ENGINEER_EMAILS) or "")


def alert_webhook_format() -> str | None:
    """slack or teams; unset: taken from the webhook's URL (see alerts/webhook.py)."""
    value = (os.environ.get(ALERT_WEBHOOK_FORMAT) or "").strip().lower()
    if value and value not in WEBHOOK_FORMATS:
        raise ValueError(f"{ALERT_WEBHOOK_FORMAT}={value!r} is not a webhook format: use slack or teams")
    return value or None


def alert_webhook_configured() -> bool:
    """Whether a webhook URL is set (its value is a secret: resources read it as an EnvVar)."""
    value = (os.environ.get(ALERT_WEBHOOK_URL) or "").strip()
    if value and not value.startswith(("https://", "http://")):
        raise ValueError(f"{ALERT_WEBHOOK_URL} is not an http(s) URL (its value is a secret and not shown)")
    return bool(value)


def alert_routing() -> Path | None:
    """The routing YAML file; unset: everything to MANAGER_EMAILS."""
    value = (os.environ.get(ALERT_ROUTING) or "").strip()
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"{ALERT_ROUTING}={value!r} is not a file: point it at a routing YAML file")
    return path


def alert_digest_time() -> time:
    """When the daily digest of warnings goes out, in PIPELINE_TIMEZONE (HH:MM)."""
    value = (os.environ.get(ALERT_DIGEST_TIME) or "07:00").strip()
    try:
        return datetime.strptime(value, "%H:%M").time()
    except ValueError as error:
        raise ValueError(f"{ALERT_DIGEST_TIME}={value!r} is not a time of day: use HH:MM, e.g. 07:00") from error


def alert_repeat_hours() -> float:
    """How often an open, unacknowledged critical alert is sent again."""
    value = os.environ.get(ALERT_REPEAT_HOURS) or "24"
    try:
        hours = float(value)
    except ValueError:
        hours = 0.0
    if not 0 < hours < float("inf"):
        raise ValueError(f"{ALERT_REPEAT_HOURS}={value!r} is not a number of hours (more than 0), e.g. 24")
    return hours


# Never shown: an error quoting one has it replaced by *** (alerts/delivery.py, redact).
SECRET_SETTINGS = (SMTP_PASSWORD, ALERT_WEBHOOK_URL, JAVA_API_TOKEN, API_TOKENS)


def secret_values() -> tuple[str, ...]:
    """The values of the secret settings that are set (API_TOKENS' `token:role` pairs as their tokens)."""
    values = []
    for name in SECRET_SETTINGS:
        value = (os.environ.get(name) or "").strip()
        if name == API_TOKENS:
            values += [pair.rpartition(":")[0].strip() for pair in value.split(",") if pair.strip()]
        elif value:
            values.append(value)
    return tuple(values)


def dagster_webserver_url() -> str:
    """The Dagster UI's address, for the links in emails and chat messages."""
    value = (os.environ.get(DAGSTER_WEBSERVER_URL) or "http://127.0.0.1:3000").strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError(f"{DAGSTER_WEBSERVER_URL}={value!r} is not an http(s) URL, e.g. http://127.0.0.1:3000")
    return value
