"""Connections to the warehouse and the versioned migrations that shape it.

psycopg2 is the project's one driver (why: the README's Warehouse section). Logic functions take a
cursor and run in their caller's transaction; callers open it with `transaction(url)` (the CLI, tests,
benchmarks) or `WarehouseResource.transaction()` (assets, sensors). The functions whose guarantees are
about what happens around a commit take a `Transaction`, the way to open one, instead: the importer moves
the file after its commit, the forecasts fit between a read and a write, the outbox sends between the
claim of a message and the record of its outcome.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib import resources

import pandas as pd
import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

MIGRATIONS_PACKAGE = "sales_pipeline.warehouse.migrations"
# Any constant works: it only has to be the same for every process migrating this warehouse.
MIGRATION_LOCK_ID = 74_210_001

Transaction = Callable[[], AbstractContextManager[Cursor]]  # e.g. WarehouseResource.transaction


@contextmanager
def transaction(url: str) -> Iterator[Cursor]:
    """A cursor inside one transaction: committed when the block ends, rolled back if it raises."""
    connection = psycopg2.connect(libpq_url(url))
    try:
        with connection.cursor() as cursor:
            yield cursor
        connection.commit()
    except BaseException:
        if not connection.closed:  # a cut connection has nothing left to roll back
            connection.rollback()
        raise
    finally:
        connection.close()


def read_frame(cursor: Cursor, statement: str | sql.Composable, params: object = None) -> pd.DataFrame:
    """The rows of a query as a DataFrame, columns named as the query names them, numbers (numeric too) as
    floats, as `pandas.read_sql` gives them."""
    cursor.execute(statement, params)
    columns = [column.name for column in cursor.description]
    return pd.DataFrame.from_records(cursor.fetchall(), columns=columns, coerce_float=True)


def refresh_in_turn(cursor: Cursor, what: str) -> None:
    """Make refreshes of the same table (or rows) take turns, until this transaction ends.

    Refreshes delete their rows and insert them again; two at once (two imports each refreshing the
    marts) would both insert and collide on the key. The second waits for the first to commit, then
    replaces what it wrote.
    """
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (what,))


def libpq_url(url: str) -> str:
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate(cursor: Cursor) -> list[str]:
    """Apply the migrations this warehouse has not seen yet; return their names.

    Run it in a transaction of its own: under its advisory lock, two processes migrating at once wait
    for each other, and a migration that fails leaves the warehouse at the version it had.
    """
    applied_now = []
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
    cursor.execute(
        "CREATE SCHEMA IF NOT EXISTS ops;"
        "CREATE TABLE IF NOT EXISTS ops.schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    cursor.execute("SELECT version FROM ops.schema_migrations")
    done = {row[0] for row in cursor.fetchall()}
    for migration in migrations():
        if migration.version in done:
            continue
        cursor.execute(migration.sql)
        cursor.execute(
            "INSERT INTO ops.schema_migrations (version, name) VALUES (%s, %s)",
            (migration.version, migration.name),
        )
        applied_now.append(f"{migration.version:04d}_{migration.name}")
    return applied_now
