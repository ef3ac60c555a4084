"""Where the pipeline keeps its files, and the settings read from the environment.

Every setting has an embedded default so that a fresh checkout runs with nothing configured.
The names here are the ones listed in `.env.example` and the README.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
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
URL_EXAMPLE = "postgresql://user:password@host:5432/database"


class SettingError(ValueError):
    """A setting with a value the pipeline cannot use; the message is one line naming it."""

    def __init__(self, name: str, value: str, accepted: str) -> None:
        super().__init__(f"{name}={value!r} is not {accepted}")


def check_all() -> None:
    """Read every setting once, so that a bad value fails before anything starts (SettingError)."""
    for read in (home, inbox_dir, mappings_dir, dayfirst, pipeline_timezone, history_start, java_api_deadline_s,
                 forecast_holiday_country, forecast_workers):  # fmt: skip
        read()
    for name in (DATABASE_URL, DAGSTER_DATABASE_URL):
        database_url(name)


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
        raise SettingError(HISTORY_START, value, "a date: use YYYY-MM-DD") from error
    return value


def pipeline_timezone() -> str:
    """Day boundaries of the marts and the daily partitions; the time zone of stores that have none."""
    value = os.environ.get(PIPELINE_TIMEZONE) or "UTC"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise SettingError(
            PIPELINE_TIMEZONE, value, "a time zone: use an IANA name such as UTC or Europe/Paris"
        ) from error
    return value


def database_url(name: str = DATABASE_URL) -> str | None:
    """A PostgreSQL URL setting (`DATABASE_URL` or `DAGSTER_DATABASE_URL`), or None when unset. Its password
    never appears in a message."""
    value = os.environ.get(name)
    if not value:
        return None
    import sqlalchemy as sa

    try:
        url = sa.make_url(value)
    except sa.exc.ArgumentError:
        raise SettingError(name, "(hidden: it may hold a password)", f"a URL: use {URL_EXAMPLE}") from None
    if url.get_backend_name() not in ("postgres", "postgresql"):
        raise SettingError(name, without_password(value), f"a PostgreSQL URL: use {URL_EXAMPLE}")
    return value


def without_password(url: str) -> str:
    """A database URL as it may be shown: the password, in the address or its query, replaced by ***."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return "(not a URL)"
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def dayfirst() -> bool:
    """Whether text dates like 03/04/2026 mean 3 April (day first) rather than 4 March."""
    value = os.environ.get(DAYFIRST, "true").strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no"}:
        raise SettingError(DAYFIRST, value, "a boolean: use true or false")
    return value in {"true", "1", "yes"}


def forecast_holiday_country() -> str | None:
    """ISO country code whose public holidays the forecasts know (the `holidays` package); none by default."""
    value = (os.environ.get(FORECAST_HOLIDAY_COUNTRY) or "").strip().upper()
    if not value:
        return None
    import holidays

    if value not in holidays.list_supported_countries():
        raise SettingError(
            FORECAST_HOLIDAY_COUNTRY,
            value,
            "a country the holidays package knows: use an ISO 3166 code such as US, GB, DE or FR",
        )
    return value


def forecast_workers() -> int:
    """Processes fitting forecasts in parallel; one per CPU by default."""
    value = os.environ.get(FORECAST_WORKERS) or str(os.cpu_count() or 1)
    if not value.strip().isdigit() or int(value) < 1:
        raise SettingError(FORECAST_WORKERS, value, "a whole number of processes (1 or more)")
    return int(value)


def java_api_deadline_s() -> float:
    """The longest one pull from the Java API may take, every page, retry and wait included (seconds)."""
    value = os.environ.get(JAVA_API_DEADLINE_S) or "600"
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise SettingError(JAVA_API_DEADLINE_S, value, "a number of seconds (more than 0), e.g. 600")
    return seconds
