"""Dagster runs whose process died: marked failed, so that none stays "started" for ever.

A run started by a command of the CLI (in its own process) or by `dagster dev` (in a run worker) is
marked failed by Dagster when it fails. A process killed outright (SIGKILL, the machine stopped) or cut
from its database can tell no one: its run stays STARTED in the UI. The daemon's run monitoring
(dagster.yaml) cannot see such a death with the default run launcher, so every command of the CLI
sweeps them when it starts: a run whose process is gone is marked failed, with a message saying so,
and the concurrency pool slots its steps held are given back.

Which process ran a run: the CLI tags its runs with its host and PID; otherwise the PID on the run's
start event, trusted only when the run storage is the embedded server (a Unix socket: same machine).
"""

from __future__ import annotations

import os
import socket

import dagster as dg
import psutil
from dagster._core.events import DagsterEventType

from sales_pipeline.defs.conventions import WAREHOUSE_POOL

HOST_TAG = "sales_pipeline/host"
PID_TAG = "sales_pipeline/pid"
# Started less than this before its run started: the run's process, not a later one given the same PID.
START_SLACK_S = 1.0

# Dagster's bookkeeping of a run over a range of days (a backfill of four years of daily KPIs is one run),
# read by Dagster from the environment of every process that creates or executes runs. Without them it
# writes one "planned" event per day when the run is created and one materialization per day as it ends,
# each in its own round trip (1,460 days: about 100 s of the 103). With them: one planned event for the
# range, the days' materializations in batches. Every day still shows as materialized once the run has
# succeeded; a range run that fails does not mark its days failed: its one transaction wrote nothing, so
# they keep their last state, and the run itself shows the failure.
DAGSTER_EVENT_SETTINGS = {"DAGSTER_EVENT_BATCH_SIZE": "1000", "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}


def batch_range_run_events() -> None:
    """Put `DAGSTER_EVENT_SETTINGS` in this process's environment (for the Dagster processes it starts too)."""
    for name, value in DAGSTER_EVENT_SETTINGS.items():
        os.environ.setdefault(name, value)


def create_warehouse_pool(instance: dg.DagsterInstance) -> None:
    """Give the `warehouse` pool its row in Dagster's storage before any run. Left to the first steps of
    two runs started together, both insert it and one run fails (UniqueViolation on concurrency_limits).
    The caller makes concurrent calls take turns. Containers do it by hand (deploy/README.md)."""
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits and WAREHOUSE_POOL not in storage.get_concurrency_keys():
        storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)


def process_tags() -> dict[str, str]:
    """Tags naming this process, for the runs it executes."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def fail_runs_of_dead_processes(instance: dg.DagsterInstance, storage_on_this_machine: bool) -> list[str]:
    """Mark failed the STARTED runs whose process is gone; their run ids."""
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        pid = _process_of(instance, run, storage_on_this_machine)
        if pid is None or _runs_since(pid, record.start_time):
            continue
        instance.report_run_failed(
            run, f"The process running this run (PID {pid}) ended without finishing it (killed, or cut from its "
                 "database); marked failed by the next sales-pipeline command."
        )  # fmt: skip
        if instance.event_log_storage.supports_global_concurrency_limits:
            # The pool slots its steps held (the `warehouse` pool): without a daemon, no one else frees them.
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
    return failed


def _process_of(instance: dg.DagsterInstance, run: dg.DagsterRun, storage_on_this_machine: bool) -> int | None:
    """The PID that ran `run` on this machine, or None if it ran elsewhere (or cannot be told)."""
    if HOST_TAG in run.tags:
        return int(run.tags[PID_TAG]) if run.tags[HOST_TAG] == socket.gethostname() else None
    if not storage_on_this_machine:
        return None
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START, limit=1).records
    return records[0].event_log_entry.dagster_event.pid if records else None


def _runs_since(pid: int, started: float | None) -> bool:
    """Whether process `pid` still runs and was already running at `started` (not a reused PID)."""
    try:
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        return alive and (started is None or process.create_time() <= started + START_SLACK_S)
    except psutil.NoSuchProcess:
        return False
