"""End to end, as it runs on a machine: a real `dagster-webserver` and `dagster-daemon` on the embedded
PostgreSQL (Dagster's storage and the warehouse), the living back-office simulator on loopback as the Java
API, aiosmtpd on loopback as the mail server. The history is pulled first (`sales-pipeline pull-sales`, as a
backfill would); then the daily job is launched through the GraphQL API, as a person would from the UI.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from dagster_graphql import DagsterGraphQLClient

from sales_pipeline.cli import SIMULATED_RETAILER, stop_process_group
from sales_pipeline.demo.simulator import JavaApiSimulator
from sales_pipeline.runs import DAGSTER_EVENT_SETTINGS
from sales_pipeline.warehouse import embedded
from sales_pipeline_tests.commands import SALES_PIPELINE, cli_env
from sales_pipeline_tests.conftest import PROJECT, query
from sales_pipeline_tests.receivers import Mailbox, free_port, smtp_server

pytestmark = pytest.mark.slow

MANAGER, ENGINEER = "manager@example.com", "oncall@example.com"
HISTORY_DAYS = 60  # enough for the forecasts' backtests and the planted situations; small to be quick
RUN_TIMEOUT_S = 900
ENDED = {"SUCCESS", "FAILURE", "CANCELED"}
DAILY_CYCLE = {
    *(f"ingest/api_{name}" for name in ("products", "stock", "store_calendar", "promotions")),
    *(f"core/{name}" for name in ("products", "stores", "customers", "sales", "stock", "store_calendar", "promotions")),
    *(f"marts/{name}" for name in ("daily_kpis", "sales_trends", "stock_health", "top_products", "dashboard")),
    "forecasting/sales_forecast",
    "forecasting/demand_forecast",
    *(f"anomalies/{name}" for name in ("sales_drops", "stock_risks", "customer_churn")),
    "alerts/notifications",
    "reports/daily_report",
    "reports/analytics_export",
}
SENSORS = ("workbook_inbox_sensor", "automation_sensor", "sales_changed_sensor", "daily_report_sensor",
           "notification_delivery_sensor", "engineers_run_failure_sensor", "late_assets_sensor")  # fmt: skip
RUN_QUERY = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run { status assetMaterializations { assetKey { path } } }
  }
}"""
AUTOMATION_QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        schedules { name scheduleState { status } }
        sensors { name sensorState { status } }
      }
    }
  }
}"""


@pytest.fixture
def dagster_storage() -> Iterator[str]:
    """A database of Dagster's own on the embedded server, for this test's webserver and daemon."""
    name = f"smoke_dagster_{os.getpid()}"
    url = embedded.own_database(name, recreate=True)
    yield url.replace("postgresql://", "postgresql+psycopg2://", 1)  # dagster-postgres speaks psycopg2
    embedded.drop_own_database(name)


@contextlib.contextmanager
def dagster_processes(env: dict[str, str], home: Path, port: int) -> Iterator[Callable[[], list[psutil.Process]]]:
    """`dagster-webserver` and `dagster-daemon` on the workspace, each in a session of its own; yields a function
    listing them and everything they started (so far), then stops them as `sales-pipeline dev` does."""
    bin_dir = Path(sys.executable).parent
    workspace = str(PROJECT / "workspace.yaml")
    commands = [
        [str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
        [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
    ]
    started = []
    try:
        for command in commands:
            log = (home / f"{Path(command[0]).name}.log").open("w")
            started.append(subprocess.Popen(command, cwd=env["DAGSTER_HOME"], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
        seen: dict[int, psutil.Process] = {}

        def everything() -> list[psutil.Process]:
            for process in started:
                with contextlib.suppress(psutil.NoSuchProcess):
                    top = psutil.Process(process.pid)
                    for p in [top, *top.children(recursive=True)]:
                        seen.setdefault(p.pid, p)
            return list(seen.values())

        yield everything
    finally:
        for process in started:
            stop_process_group(process)


def wait_for_webserver(port: int, home: Path, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(1)
    pytest.fail(f"the webserver did not answer in {timeout_s} s:\n{(home / 'dagster-webserver.log').read_text()}")


def wait_for_run(client: DagsterGraphQLClient, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = client._execute(RUN_QUERY, {"runId": run_id})["runOrError"]
        if run["status"] in ENDED:
            return run
        time.sleep(2)
    pytest.fail(f"run {run_id} did not end in {RUN_TIMEOUT_S} s")


def wait_for_mail(mailbox: Mailbox, address: str, timeout_s: float = 120) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not mailbox.to(address):
        time.sleep(1)
    return mailbox.to(address)


def test_the_daily_job_launched_through_graphql_runs_the_whole_cycle(empty_warehouse, dagster_storage, cli_home):
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = yesterday - dt.timedelta(days=HISTORY_DAYS - 1)
    token = secrets.token_urlsafe(16)
    simulator = JavaApiSimulator(token=token, live=True, **SIMULATED_RETAILER)
    mailbox = Mailbox()
    dagster_home = cli_home / "dagster"
    dagster_home.mkdir()
    shutil.copyfile(PROJECT / "dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    with smtp_server("plain", None, mailbox, login=False) as smtp_port:
        env = cli_env(
            cli_home,
            SALES_PIPELINE_DATABASE_URL=empty_warehouse,
            SALES_PIPELINE_DAGSTER_DATABASE_URL=dagster_storage,
            SALES_PIPELINE_HISTORY_START=first.isoformat(),
            DAGSTER_HOME=str(dagster_home),
            JAVA_API_BASE_URL=simulator.start(),
            JAVA_API_TOKEN=token,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp_port),
            SMTP_STARTTLS="false",
            MANAGER_EMAILS=MANAGER,
            ENGINEER_EMAILS=ENGINEER,
            **DAGSTER_EVENT_SETTINGS,
        )
        try:
            # The history, as a backfill of the pull brings it (and the commands refresh what follows).
            pulled = subprocess.run([SALES_PIPELINE, "pull-sales", "--from", first.isoformat(), "--to",
                                     yesterday.isoformat()], cwd=PROJECT, env=env, capture_output=True, text=True,
                                    timeout=RUN_TIMEOUT_S)  # fmt: skip
            assert pulled.returncode == 0, pulled.stderr
            with dagster_processes(env, cli_home, port) as processes:
                wait_for_webserver(port, cli_home)
                client = DagsterGraphQLClient("127.0.0.1", port_number=port)
                run_id = client.submit_job_execution("daily_cycle", tags={"dagster/partition": yesterday.isoformat()})
                run = wait_for_run(client, run_id)
                automation = client._execute(AUTOMATION_QUERY)["repositoriesOrError"]["nodes"][0]
                alerts = wait_for_mail(mailbox, MANAGER)
                started = processes()
                assert len(started) >= 4  # the webserver, the daemon, their code servers (and the run's worker)
        finally:
            simulator.stop()
    left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    assert run["status"] == "SUCCESS", (cli_home / "dagster-daemon.log").read_text()[-3000:]
    assert {"/".join(m["assetKey"]["path"]) for m in run["assetMaterializations"]} == DAILY_CYCLE
    schedules = {s["name"]: s["scheduleState"]["status"] for s in automation["schedules"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in automation["sensors"]}
    assert schedules == {"pull_sales_schedule": "RUNNING", "refresh_daily_kpis_schedule": "RUNNING"}
    assert sensors == dict.fromkeys(SENSORS, "RUNNING")
    assert alerts, "no email reached the managers"
    told = query(empty_warehouse, "SELECT subject FROM ops.notifications WHERE kind = 'first' AND channel = 'email' "
                 "AND recipient = %s AND state = 'sent'", (MANAGER,))  # fmt: skip
    assert told and {subject for (subject,) in told} <= {message["Subject"] for message in mailbox.to(MANAGER)}
    reports = list((cli_home / "reports" / yesterday.isoformat()).glob("*.pdf"))
    assert reports and all(path.read_bytes().startswith(b"%PDF") for path in reports)
    assert query(empty_warehouse, "SELECT count(*) FROM ops.generated_reports WHERE day = %s", (yesterday,))[0][0]
    assert left == []  # no webserver, daemon, code server or run worker left behind
