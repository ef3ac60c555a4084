"""The Dagster instance of `sales-pipeline dev`: dagster.yaml against the embedded PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from sales_pipeline import settings
from sales_pipeline.warehouse import embedded
from sales_pipeline_tests.conftest import PROJECT


def test_dagster_yaml_stores_runs_in_postgres_and_queues_imports_one_at_a_time(tmp_path, monkeypatch, warehouse_url):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(PROJECT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(settings.DAGSTER_DATABASE_URL, embedded.dagster_storage_url())

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        assert {"key": "sales_pipeline/queue", "value": "workbook_imports", "limit": 1} in limits
        # The import job carries the tag the limit applies to.
        from sales_pipeline.definitions import defs

        assert defs().resolve_job_def("import_workbook").tags["sales_pipeline/queue"] == "workbook_imports"


@pytest.mark.parametrize("url", ["postgresql://u:p@db:5432/x", "postgres://u:p@db/x"])
def test_a_plain_dagster_url_is_given_the_psycopg2_driver(monkeypatch, url):
    monkeypatch.setenv(settings.DAGSTER_DATABASE_URL, url)
    assert embedded.dagster_storage_url().startswith("postgresql+psycopg2://u:p@db")


def test_workspace_yaml_loads_the_code_location(tmp_path, warehouse_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env |= {"DAGSTER_HOME": str(tmp_path), settings.DAGSTER_DATABASE_URL: embedded.dagster_storage_url()}
    shutil.copyfile(PROJECT / "dagster.yaml", tmp_path / "dagster.yaml")
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [dagster, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful for code location sales_pipeline" in result.stdout + result.stderr
