"""The pipeline's settings, read from the environment once into one frozen `Settings` object.

The code location reads them when it loads (`sales_pipeline.definitions.defs`), the CLI when a command
starts; a bad value fails there, with one line naming the setting, its value and what is accepted.
Every setting has an embedded default so that a fresh checkout runs with nothing configured; the names
here are the ones listed in `.env.example` and the README. Secrets and server addresses (the database
URLs, the Java API's URL and token) are not in this object: the resources read them as `EnvVar`s, so
their values never show in the UI or in run config (see resources.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
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


class SettingError(ValueError):
    """A setting with a value the pipeline cannot use; the message is one line naming it."""

    def __init__(self, name: str, value: str, accepted: str) -> None:
        super().__init__(f"{name}={value!r} is not {accepted}")


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

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        home = pipeline_home(environ)
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


def pipeline_home(environ: Mapping[str, str] = os.environ) -> Path:
    """SALES_PIPELINE_HOME, also where the embedded PostgreSQL keeps its data (warehouse/embedded.py)."""
    return Path(environ.get(HOME) or ".sales_pipeline").expanduser().resolve()


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


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise SettingError(name, value, "a number of seconds (more than 0), e.g. 600")
    return seconds


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


def _processes(name: str, value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise SettingError(name, value, "a whole number of processes (1 or more)")
    return int(value)
