"""Shared fixtures: one real embedded PostgreSQL for the session, empty tables for each test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
XLSX_CORPUS = SHARED / "xlsx-corpus"
DATASETS = SHARED / "datasets"


@pytest.fixture(scope="session", autouse=True)
def pipeline_home() -> Iterator[Path]:
    """The tests' own pipeline home, with their own embedded server, kept between runs (initdb once).

    Not under pytest's tmp_path: pytest keeps its base folder private (0700) to its user, and the
    embedded server runs as its own system user when the tests run as root.
    """
    from sales_pipeline import settings
    from sales_pipeline.runs import DAGSTER_EVENT_SETTINGS, batch_range_run_events

    home = PROJECT / ".sales_pipeline" / "tests"
    home.mkdir(parents=True, exist_ok=True)
    names = (settings.HOME, settings.DATABASE_URL, settings.INBOX, *DAGSTER_EVENT_SETTINGS)
    saved = {name: os.environ.get(name) for name in names}
    os.environ[settings.HOME] = str(home)
    batch_range_run_events()  # Dagster records range runs as the commands make it
    # Tests empty tables: they never touch a configured server, only their own embedded one.
    os.environ.pop(settings.INBOX, None)
    os.environ.pop(settings.DATABASE_URL, None)
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def warehouse_url(pipeline_home: Path) -> Iterator[str]:
    """A database of this test session's own on the embedded server, migrated, dropped at the end.

    Its own database, so that two test sessions at once do not empty each other's tables.
    """
    from sales_pipeline.warehouse import embedded

    name = f"tests_{os.getpid()}"
    url = embedded.own_database(name, recreate=True)
    yield url
    embedded.drop_own_database(name)


def empty_tables(url: str) -> str:
    """Empty every table of the warehouse at `url` (a test's or a test module's clean start)."""
    from sales_pipeline.warehouse.db import transaction

    with transaction(url) as cursor:
        cursor.execute(
            "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables"
            " WHERE schemaname IN ('raw', 'core', 'marts', 'ml', 'ops') AND tablename <> 'schema_migrations'"
        )
        cursor.execute(f"TRUNCATE {cursor.fetchone()[0]} RESTART IDENTITY CASCADE")
    return url


@pytest.fixture
def empty_warehouse(warehouse_url: str) -> str:
    """The warehouse with every table emptied, so each test starts from nothing."""
    return empty_tables(warehouse_url)


@pytest.fixture
def cli_home() -> Iterator[Path]:
    """A fresh pipeline home for the commands (not under pytest's private tmp folder: see above)."""
    home = PROJECT / ".sales_pipeline" / "tests" / f"cli-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("inbox", "archive", "rejected")}
    for path in paths.values():
        path.mkdir()
    return paths


@pytest.fixture
def warehouse(empty_warehouse: str):
    """The emptied warehouse as the assets see it: `warehouse.transaction` opens a transaction on it."""
    from sales_pipeline.resources import WarehouseResource

    return WarehouseResource(database_url=empty_warehouse)


@pytest.fixture
def import_settings(folders: dict[str, Path]):
    from sales_pipeline.excel.importer import ImportSettings

    return ImportSettings(
        folders["archive"],
        folders["rejected"],
        timezone="UTC",
        dayfirst=True,
        inbox_dir=folders["inbox"],
    )


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    from sales_pipeline.warehouse.db import transaction

    with transaction(url) as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def table_counts(url: str) -> dict[str, int]:
    tables = ["core.products", "core.stores", "core.customers", "core.sales", "core.stock", "raw.excel_rows",
              "ops.import_ledger", "ops.import_rejects"]  # fmt: skip
    return {table: query(url, f"SELECT count(*) FROM {table}")[0][0] for table in tables}
