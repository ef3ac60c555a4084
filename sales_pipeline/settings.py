"""Where the pipeline keeps its files, and the settings read from the environment.

Every setting has an embedded default so that a fresh checkout runs with nothing configured.
The names here are the ones listed in `.env.example` and the README.
"""

from __future__ import annotations

import os
import re
from datetime import date
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
API_TOKENS = "API_TOKENS"
API_CORS_ORIGINS = "API_CORS_ORIGINS"
API_UPLOAD_MAX_MB = "API_UPLOAD_MAX_MB"
API_UPLOAD_MAX_UNZIPPED_MB = "API_UPLOAD_MAX_UNZIPPED_MB"
DAGSTER_WEBSERVER_URL = "DAGSTER_WEBSERVER_URL"
REPORT_LOCALE = "REPORT_LOCALE"
REPORT_CURRENCY = "REPORT_CURRENCY"
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


def reports_dir() -> Path:
    """The daily PDF reports, one folder per day."""
    return home() / "reports"


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


def dagster_webserver_url() -> str:
    """The Dagster UI and its GraphQL API: links in messages, and where the read API launches runs."""
    value = (os.environ.get(DAGSTER_WEBSERVER_URL) or "http://127.0.0.1:3000").rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
        raise ValueError(f"{DAGSTER_WEBSERVER_URL}={value!r} is not an http(s) URL, e.g. http://127.0.0.1:3000")
    return value


def report_locale() -> str:
    """The language of the reports, emails and the dashboard page: en or fr."""
    value = (os.environ.get(REPORT_LOCALE) or "en").strip().lower()
    if value not in ("en", "fr"):
        raise ValueError(f"{REPORT_LOCALE}={value!r} is not a locale we write: use en or fr")
    return value


def report_currency() -> str:
    """ISO 4217 code of the money amounts (the warehouse records none)."""
    value = (os.environ.get(REPORT_CURRENCY) or "EUR").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError(f"{REPORT_CURRENCY}={value!r} is not an ISO 4217 currency code, e.g. EUR, USD, GBP")
    return value
