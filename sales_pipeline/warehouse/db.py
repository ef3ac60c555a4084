"""Connections to the warehouse and the versioned migrations that shape it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pandas as pd
import psycopg2
import psycopg2.extensions
import sqlalchemy as sa

MIGRATIONS_PACKAGE = "sales_pipeline.warehouse.migrations"
# Any constant works: it only has to be the same for every process migrating this warehouse.
MIGRATION_LOCK_ID = 74_210_001


@cache
def engine(url: str) -> sa.Engine:
    """One pooled engine per URL and process, for reads with pandas and SQLAlchemy."""
    return sa.create_engine(_sqlalchemy_url(url), pool_pre_ping=True)


def _sqlalchemy_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url)


@contextmanager
def transaction(url: str) -> Iterator[psycopg2.extensions.cursor]:
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


def read_frame(cursor: psycopg2.extensions.cursor, statement: str, params: object = None) -> pd.DataFrame:
    """The rows of a query as a DataFrame, columns named as the query names them."""
    cursor.execute(statement, params)
    return pd.DataFrame(cursor.fetchall(), columns=[column.name for column in cursor.description])


def refresh_in_turn(cursor: psycopg2.extensions.cursor, what: str) -> None:
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


def migrate(url: str) -> list[str]:
    """Apply the migrations this warehouse has not seen yet; return their names.

    One transaction under an advisory lock: two processes migrating at once wait for each other,
    and a migration that fails leaves the warehouse at the version it had.
    """
    applied_now = []
    with transaction(url) as cursor:
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
