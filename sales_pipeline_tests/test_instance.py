"""The Dagster instance of `sales-pipeline dev`: dagster.yaml against the embedded PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
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
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits  # what the daemon applies
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


def test_a_run_of_a_dead_process_gives_back_its_pool_slots_when_marked_failed(tmp_path, monkeypatch, warehouse_url):
    from sales_pipeline.runs import HOST_TAG, PID_TAG, fail_runs_of_dead_processes

    shutil.copyfile(PROJECT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv(settings.DAGSTER_DATABASE_URL, embedded.dagster_storage_url())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    pool = f"test-{uuid.uuid4().hex[:8]}"
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(gone.pid)}  # a CLI command's run, its process gone
        run = instance.add_run(
            dg.DagsterRun(job_name="refresh_core_tables", run_id=uuid.uuid4().hex, status=dg.DagsterRunStatus.STARTED,
                          tags=tags)
        )  # fmt: skip
        storage.set_concurrency_slots(pool, 3)
        try:
            assert storage.claim_concurrency_slot(pool, run.run_id, "core__sales").is_claimed
            assert storage.get_concurrency_info(pool).active_slot_count == 1

            assert run.run_id in fail_runs_of_dead_processes(instance, storage_on_this_machine=True)

            assert storage.get_concurrency_info(pool).active_slot_count == 0
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        finally:
            storage.delete_concurrency_limit(pool)
            instance.delete_run(run.run_id)
