"""What the benchmarks share: a database of their own, COPY and autocommit statements, one process per
measured run (its peak RSS its own, its figures the JSON object on its last line of stdout), medians.

The scripts run as `python benchmarks/bench_<name>.py`, so this folder is first on sys.path and they
`import common`.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import statistics
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

import psycopg2

from sales_pipeline.warehouse import db


def own_database(name: str, recreate: bool = False) -> str:
    """Create (if needed, or afresh) and migrate the benchmark's own database on the warehouse's server; its URL.

    Starts the embedded server when no database URL is set; this process keeps it up.
    """
    from sales_pipeline.warehouse import embedded

    return embedded.own_database(name, recreate=recreate)


def autocommit(url: str, *statements: str, tolerate: tuple[type[Exception], ...] = ()) -> None:
    """Run statements that cannot run inside a transaction (VACUUM, CHECKPOINT), skipping `tolerate` errors."""
    connection = psycopg2.connect(db.libpq_url(url))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                with contextlib.suppress(*tolerate):
                    cursor.execute(statement)
    finally:
        connection.close()


def pandas_engine(url: str) -> Any:
    """A SQLAlchemy engine for the baselines' `pandas.read_sql` / `to_sql`, the plain way a pandas user reads
    and writes a database (the package itself reads through psycopg2; SQLAlchemy comes with Dagster)."""
    import re

    import sqlalchemy

    return sqlalchemy.create_engine(re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url))


def copy_frame(cursor: Any, table: str, frame: Any, force_not_null: tuple[str, ...] = ()) -> None:
    """COPY a DataFrame into `table`, its columns by name.

    Unquoted empty fields are NULL in COPY csv, except in the `force_not_null` columns, where they are ''.
    """
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    options = f", FORCE_NOT_NULL ({', '.join(force_not_null)})" if force_not_null else ""
    cursor.copy_expert(f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv{options})", buffer)


def engine_version() -> str:
    """The hash of the forecasting engine's code measured, as in the forecasts' cache keys (others edit it)."""
    from sales_pipeline.forecasting.models import engine_code_hash

    return engine_code_hash()


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB.

    Linux: VmHWM, its own memory's high-water mark. Not ru_maxrss: a process started by another inherits
    its parent's resident size at the fork (a worker started by a benchmark holding the simulator's
    200,000 lines showed the parent's 318 MB whatever it did).
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def current_rss_mb() -> float:
    """This process's resident memory now, in MB (Linux: /proc; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return peak_rss_mb()


def print_outcome(outcome: dict) -> None:
    """A worker's last line: its figures and its peak RSS, as one JSON object."""
    print(json.dumps({**outcome, "peak_rss_mb": peak_rss_mb()}))


def run_worker(script: str, arguments: list[str], what: str, show_stderr: bool = False) -> dict:
    """Run `script` with `arguments` in a process of its own; return the JSON object on its last line.

    `show_stderr` lets its progress go straight through; otherwise the end of it is shown if it fails.
    """
    completed = subprocess.run(
        [sys.executable, script, *arguments],
        stdout=subprocess.PIPE,
        stderr=None if show_stderr else subprocess.PIPE,
        text=True,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{what} failed:\n{(completed.stderr or '')[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def median_of(outcomes: Iterable[dict], key: str) -> float:
    """The median of one figure over runs."""
    return statistics.median(outcome[key] for outcome in outcomes)
