"""The sales-pipeline command run as a user runs it, and its embedded server read after it exited."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2

from sales_pipeline_tests.conftest import PROJECT

# The console script pip installs next to this Python, as a user runs it.
SALES_PIPELINE = str(Path(sys.executable).with_name("sales-pipeline"))


def cli_env(home: Path | None = None, **settings: str) -> dict[str, str]:
    """The environment of a user who configured nothing (no server, no Java API, no mail server) but
    `settings`, with its own home."""
    configured = ("SALES_PIPELINE_", "DAGSTER_", "JAVA_API_", "SMTP_", "ALERT_", "MANAGER_EMAILS", "ENGINEER_EMAILS",
                  "API_")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(configured)}
    if home:
        env["SALES_PIPELINE_HOME"] = str(home)
    return env | settings


def run(*args: str, home: Path | None = None, timeout: float = 300, **settings: str) -> subprocess.CompletedProcess:
    """`sales-pipeline *args` with this home and these settings (SALES_PIPELINE_DATABASE_URL="...")."""
    command = [SALES_PIPELINE, *args]
    return subprocess.run(
        command, cwd=PROJECT, env=cli_env(home, **settings), capture_output=True, text=True, timeout=timeout
    )


@contextlib.contextmanager
def embedded_server(home: Path) -> Iterator[Callable[[str], str]]:
    """The embedded server the commands left, started again to read it: yields the URL of a database."""
    from sales_pipeline.warehouse.embedded import start_server

    server = start_server(home / "pgdata")
    try:
        yield server.get_uri
    finally:
        server.cleanup()


def fetch(url: str, statement: str) -> list[tuple]:
    with contextlib.closing(psycopg2.connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        rows = cursor.fetchall() if cursor.description else []
        connection.commit()
        return rows


def home_query(home: Path, statement: str) -> list[tuple]:
    """Run one statement on a home's warehouse, after the commands exited."""
    with embedded_server(home) as url:
        return fetch(url("sales_pipeline"), statement)


def warehouse_counts(home: Path) -> dict[str, int]:
    """Row counts read straight from the embedded server's socket, after the commands exited."""
    tables = ("core.products", "core.sales", "ops.import_ledger", "ops.import_rejects")
    with embedded_server(home) as url:
        return {table: fetch(url("sales_pipeline"), f"SELECT count(*) FROM {table}")[0][0] for table in tables}
