"""The embedded PostgreSQL's lifecycle under crashes, as an operator meets them: real commands, real
signals sent at a chosen moment, and what one then checks (exit codes, the one line printed, the server
stopped, no process left, the Dagster runs' status, folder modes)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg2
import pytest

from sales_pipeline.excel.importer import IMPORT_LOCK_CLASS
from sales_pipeline.warehouse.embedded import SERVER_USER
from sales_pipeline_tests.commands import SALES_PIPELINE, cli_env, embedded_server, fetch, home_query, run
from sales_pipeline_tests.conftest import PROJECT
from sales_pipeline_tests.workbooks import products, sales, write_workbook

AS_ROOT = os.geteuid() == 0


def wait_until(condition: Callable[[], object], timeout_s: float = 240, every_s: float = 0.05) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"still waiting after {timeout_s} s")


def lock_file_lines(home: Path) -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return (home / "pgdata" / "postmaster.pid").read_text().splitlines()
    return []


@contextlib.contextmanager
def connection_to_running_server(home: Path, database: str) -> Iterator[psycopg2.extensions.connection | None]:
    """A connection to the server a command started, through its socket (None while there is none)."""
    lines = lock_file_lines(home)
    try:
        connection = psycopg2.connect(f"postgresql://postgres:@/{database}?host={lines[4]}") if len(lines) > 4 else None
    except psycopg2.OperationalError:
        connection = None  # still starting
    try:
        yield connection
    finally:
        if connection is not None:
            connection.close()


def started_runs(home: Path) -> list[str]:
    with connection_to_running_server(home, "dagster") as connection:
        if connection is None:
            return []
        with connection.cursor() as cursor:
            try:
                cursor.execute("SELECT run_id FROM runs WHERE status = 'STARTED'")
            except psycopg2.errors.UndefinedTable:
                return []
            return [row[0] for row in cursor.fetchall()]


def postgres_processes(home: Path) -> list[int]:
    """PostgreSQL processes working in this home's data folder (the postmaster and its backends)."""
    found = []
    for process in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if process.info["name"] == "postgres" and Path(process.cwd()) == home / "pgdata":
                found.append(process.pid)
    return found


def server_users(home: Path) -> list[int]:
    """The processes pgserver counts as using the server: it stops when the last one leaves."""
    import json

    return json.loads((home / "pgdata" / ".handle_pids.json").read_text() or "[]")


def run_statuses(home: Path) -> dict[str, str]:
    with embedded_server(home) as url:
        return dict(fetch(url("dagster"), "SELECT run_id, status FROM runs"))


def start(*args: str, home: Path) -> subprocess.Popen:
    return subprocess.Popen([SALES_PIPELINE, *args], cwd=PROJECT, env=cli_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.slow
def test_a_command_killed_outright_leaves_neither_a_running_server_nor_a_started_run(cli_home, tmp_path):
    workbook = write_workbook(tmp_path / "week.xlsx", {"Products": products(), "Sales": sales(40)})
    command = start("import", str(workbook), home=cli_home)
    (run_id,) = wait_until(lambda: started_runs(cli_home))  # the moment: its import run has started
    os.kill(command.pid, signal.SIGKILL)
    command.communicate()
    assert command.pid in server_users(cli_home)  # what a SIGKILL leaves in pgserver's list

    again = run("refresh", home=cli_home)

    assert again.returncode == 0, again.stderr
    assert "Marked failed 1 Dagster run(s) left unfinished by a process that is gone" in again.stderr
    assert run_id[:8] in again.stderr
    assert server_users(cli_home) == [] and postgres_processes(cli_home) == []  # the server stopped
    assert not (cli_home / "pgdata" / "postmaster.pid").exists()
    statuses = run_statuses(cli_home)
    assert statuses[run_id] == "FAILURE" and "STARTED" not in statuses.values()


@pytest.mark.slow
def test_a_run_whose_worker_was_killed_outside_the_cli_is_marked_failed_by_the_next_command(cli_home):
    # A run worker as `dagster dev` starts one (no tag of the CLI's: its process is the one on its start event).
    script = (
        "from sales_pipeline.cli import code_location, prepare_environment; prepare_environment();"
        " import dagster as dg; job = code_location().resolve_job_def('refresh_forecasts_and_anomalies');"
        " job.execute_in_process(instance=dg.DagsterInstance.get())"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT, env=cli_env(cli_home),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    (run_id,) = wait_until(lambda: started_runs(cli_home))
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()

    again = run("refresh", home=cli_home)

    assert again.returncode == 0, again.stderr
    assert f"Marked failed 1 Dagster run(s) left unfinished by a process that is gone (killed, or cut from its" \
           f" database): {run_id[:8]}" in again.stderr  # fmt: skip
    assert run_statuses(cli_home)[run_id] == "FAILURE"


@pytest.mark.slow
def test_a_lock_file_naming_a_pid_now_another_programs_is_stale_and_said_so(cli_home):
    # A server killed outright while a process used it, and its PID then taken by another program
    # (of the server's own user, so that PostgreSQL's own check would refuse it too).
    holder = subprocess.Popen(
        [sys.executable, "-c", "from sales_pipeline.warehouse import embedded; embedded.warehouse_url();"
         " print('up', flush=True); import time; time.sleep(600)"],
        cwd=PROJECT, env=cli_env(cli_home), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline() == "up\n"
    lines = lock_file_lines(cli_home)
    os.kill(int(lines[0]), signal.SIGKILL)
    holder.kill()
    holder.wait()
    wait_until(lambda: not postgres_processes(cli_home))
    other = subprocess.Popen(["sleep", "300"], user=SERVER_USER if AS_ROOT else None)
    try:
        (cli_home / "pgdata" / "postmaster.pid").write_text("\n".join([str(other.pid), *lines[1:]]) + "\n")

        result = run("refresh", home=cli_home)

        assert result.returncode == 0, result.stderr
        (note,) = [line for line in result.stderr.splitlines() if line.startswith("Note: ")]
        assert note == (
            f"Note: The embedded PostgreSQL in {cli_home / 'pgdata'} had stopped without shutting down (its "
            f"postmaster.pid names PID {other.pid}, which is now another program, sleep): removed its stale lock "
            "files and started it again; it recovers every committed transaction from its write-ahead log, and none"
            " that was under way"
        )
        assert other.poll() is None  # the other program was left alone
        assert postgres_processes(cli_home) == [] and not (cli_home / "pgdata" / "postmaster.pid").exists()
    finally:
        other.kill()
        other.wait()


def staging_sales(connection: psycopg2.extensions.connection) -> bool:
    """Whether an import's transaction (the one holding its advisory lock) is copying its sales into the
    staging table, the step before their merge: it has written rows and committed nothing."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid WHERE l.locktype = 'advisory'"
            " AND l.classid = %s AND a.state = 'active' AND a.query LIKE %s",
            (IMPORT_LOCK_CLASS, 'COPY "stage_sales"%'),
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.slow
def test_postgres_killed_in_the_middle_of_an_import_fails_in_one_line_and_the_next_command_recovers(cli_home, tmp_path):
    rows = 20_000
    lines = sales(rows, start=dt.datetime(2025, 1, 1))  # 97 days of lines, all in the past
    workbook = write_workbook(tmp_path / "big.xlsx", {"Products": products(), "Sales": lines})
    command = start("import", str(workbook), home=cli_home)
    wait_until(lambda: len(lock_file_lines(cli_home)) > 7 and lock_file_lines(cli_home)[7].strip() == "ready")
    with contextlib.closing(wait_until(lambda: _connect(cli_home))) as watcher:
        watcher.autocommit = True
        wait_until(lambda: staging_sales(watcher), every_s=0.01)  # the moment: mid-import, before its merge
        postmaster = int(lock_file_lines(cli_home)[0])
        os.kill(postmaster, signal.SIGKILL)
    _, stderr = command.communicate(timeout=300)

    assert command.returncode == 1, stderr
    folder = cli_home / "pgdata"
    assert "Traceback" not in stderr, stderr  # (Dagster may say first that it could not log the run's last events)
    assert stderr.strip().splitlines()[-1] == (
        f"Error: the embedded PostgreSQL in {folder} stopped during the command (its process is gone: killed? its"
        f" log: {folder / 'log'}): the step under way was rolled back and what was committed before it is kept; run"
        " the command again, which starts the server again"
    )

    again = run("import", str(workbook), home=cli_home)

    assert again.returncode == 0, again.stderr
    # Gone (a zombie its parent has not reaped yet counts as gone), or by now another program's (PIDs wrap around).
    stale = rf"names PID {postmaster}, which is (gone|now another program, [^\n]+)\): removed its stale lock files"
    assert re.search(stale, again.stderr), again.stderr
    assert "Marked failed 1 Dagster run(s) left unfinished" in again.stderr
    # Nothing of the interrupted import was kept; the second loaded it once, and the marts add up to it.
    assert home_query(cli_home, "SELECT status FROM ops.import_ledger") == [("loaded",)]
    assert home_query(cli_home, "SELECT count(*) FROM core.sales") == [(rows,)]
    marts = "SELECT sum(revenue) FROM marts.daily_kpis WHERE scope = 'all'"
    assert home_query(cli_home, f"SELECT ({marts}) = (SELECT sum(revenue) FROM core.sales)") == [(True,)]
    kept = [path for path in cli_home.rglob("big*.xlsx") if path.read_bytes() == workbook.read_bytes()]
    assert len(kept) == 2  # the interrupted copy waits in the inbox, the loaded one is archived
    assert postgres_processes(cli_home) == []


def _connect(home: Path) -> psycopg2.extensions.connection | None:
    lines = lock_file_lines(home)
    with contextlib.suppress(psycopg2.OperationalError, IndexError):
        return psycopg2.connect(f"postgresql://postgres:@/sales_pipeline?host={lines[4]}")
    return None


@pytest.mark.slow
@pytest.mark.skipif(not AS_ROOT, reason="as root the server runs as its own user, which must reach its data")
def test_as_root_the_server_reaches_its_data_and_private_folders_stay_private(tmp_path):
    from sales_pipeline.folders import GROUP_OBJ, OTHER, USER, USER_OBJ, _acl

    private = PROJECT / ".sales_pipeline" / "tests" / f"private-{uuid.uuid4().hex[:8]}"
    private.mkdir(mode=0o700)
    home = private / "pipeline"
    try:
        workbook = write_workbook(tmp_path / "week.xlsx", {"Products": products(), "Sales": sales(10)})
        result = run("import", str(workbook), home=home)

        assert result.returncode == 0, result.stderr
        server_user = pwd.getpwnam(SERVER_USER).pw_uid
        for folder in (private, home):
            entries = {(tag, ident): perm for tag, perm, ident in _acl(folder)}
            assert entries[(USER_OBJ, 0xFFFFFFFF)] == 0o7
            assert entries[(GROUP_OBJ, 0xFFFFFFFF)] == 0 and entries[(OTHER, 0xFFFFFFFF)] == 0  # as they were
            assert entries[(USER, server_user)] == 0o1  # the server's user alone may pass through
        for folder in ("archive", "inbox", "rejected", "dagster"):
            assert stat.S_IMODE((home / folder).stat().st_mode) == 0o700  # ours: private
        archived = next((home / "archive").rglob("week.xlsx"))
        for user in ("nobody", SERVER_USER):  # another local user, and the server's: the workbook stays unread
            refused = subprocess.run(["su", "-s", "/bin/sh", user, "-c", f"cat '{archived}' > /dev/null"],
                                     capture_output=True)  # fmt: skip
            assert refused.returncode != 0
    finally:
        shutil.rmtree(private)
