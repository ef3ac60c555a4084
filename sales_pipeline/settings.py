"""Where the pipeline keeps its files, and the settings read from the environment.

Every setting has an embedded default so that a fresh checkout runs with nothing configured.
The names here are the ones listed in `.env.example` and the README.
"""

from __future__ import annotations

import os
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
REPORT_SEND_TIME = "REPORT_SEND_TIME"


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


def reports_dir() -> Path:
    """The daily PDF reports (one folder per day) and the analytics export workbook."""
    return home() / "reports"


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


def report_send_time() -> time:
    """When the daily reports of the day before are built and sent, in PIPELINE_TIMEZONE (HH:MM)."""
    value = (os.environ.get(REPORT_SEND_TIME) or "07:00").strip()
    try:
        return datetime.strptime(value, "%H:%M").time()
    except ValueError as error:
        raise ValueError(f"{REPORT_SEND_TIME}={value!r} is not a time of day: use HH:MM, e.g. 07:00") from error
