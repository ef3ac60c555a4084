"""The settings: read once into one object, each bad value stopped with one line naming it."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from sales_pipeline.settings import Settings
from sales_pipeline_tests.conftest import PROJECT


def test_unset_means_the_embedded_defaults(tmp_path):
    settings = Settings.from_environment({"SALES_PIPELINE_HOME": str(tmp_path), "FORECAST_WORKERS": "2"})

    assert settings.inbox_dir == tmp_path / "inbox" and settings.dashboard_dir == tmp_path / "dashboard"
    assert (settings.pipeline_timezone, settings.history_start, settings.dayfirst) == ("UTC", date(2020, 1, 1), True)
    assert (settings.java_api_deadline_s, settings.forecast_holiday_country, settings.forecast_workers) == (
        600.0, None, 2,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PIPELINE_TIMEZONE", "Mars/Olympus", "is not a time zone: use an IANA name such as UTC or Europe/Paris"),
        ("SALES_PIPELINE_HISTORY_START", "2014-13-01", "is not a date: use YYYY-MM-DD"),
        ("SALES_PIPELINE_DAYFIRST", "maybe", "is not a boolean: use true or false"),
        ("FORECAST_WORKERS", "two", "is not a whole number of processes (1 or more)"),
        ("FORECAST_SHARDS", "0", "is not a whole number of shards from 1 to 64"),
        ("FORECAST_SHARDS", "three", "is not a whole number of shards from 1 to 64"),
        ("FORECAST_SHARDS", "²", "is not a whole number of shards from 1 to 64"),
        ("FORECAST_HOLIDAY_COUNTRY", "XX", "is not a country the holidays package knows"),
    ],
)
def test_a_bad_value_names_the_setting_its_value_and_what_is_accepted(name, value, message):
    with pytest.raises(ValueError) as raised:
        Settings.from_environment({name: value})

    assert str(raised.value).startswith(f"{name}={value!r} {message}")
    assert "\n" not in str(raised.value)


def test_a_command_with_a_bad_setting_stops_with_its_one_line(tmp_path):
    cli = str(Path(sys.executable).with_name("sales-pipeline"))
    env = {"PATH": "/usr/bin:/bin", "SALES_PIPELINE_HOME": str(tmp_path), "PIPELINE_TIMEZONE": "Mars/Olympus"}
    result = subprocess.run([cli, "refresh"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 1
    assert result.stderr == (
        "Error: PIPELINE_TIMEZONE='Mars/Olympus' is not a time zone: use an IANA name such as UTC or Europe/Paris\n"
    )
    assert not (tmp_path / "pgdata").exists()  # nothing started
