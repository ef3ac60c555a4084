"""The sales-pipeline command as a user runs it: real processes, a real embedded PostgreSQL each."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import openpyxl
import psycopg2
import pytest

from sales_pipeline_tests.commands import (
    SALES_PIPELINE,
    cli_env,
    embedded_server,
    fetch,
    home_query,
    run,
    warehouse_counts,
)
from sales_pipeline_tests.conftest import PROJECT
from sales_pipeline_tests.receivers import PASSWORD, USER, Mailbox, WebhookReceiver, certificates, smtp_server
from sales_pipeline_tests.workbooks import products, sales, write_workbook

COMMANDS = [
    "demo",
    "dev",
    "serve",
    "generate",
    "template",
    "import",
    "refresh",
    "simulate-api",
    "pull-sales",
    "report",
    "export",
    "alerts",
]
# What a newcomer's first screen must not show: warnings that are not theirs to act on.
NOISE = ("plotly", "BetaWarning", "PreviewWarning", "SupersessionWarning", "will not be used")


def test_every_command_has_help():
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
        assert run(command, "--help").returncode == 0


def test_report_names_a_scope_it_cannot_read():
    result = run("report", "--scope", "shop:S01")
    assert result.returncode == 2
    assert "'shop:S01' is not all, store:<store id> or category:<category>" in result.stderr


def test_serve_without_tokens_stays_on_loopback() -> None:
    result = run("serve", "--host", "0.0.0.0")
    assert result.returncode == 1
    assert (
        "API_TOKENS is not set, so the API answers anyone who reaches it: it listens on loopback only" in result.stderr
    )
    bad = run("serve", API_TOKENS="only-a-token-without-role")
    assert bad.returncode == 1 and "API_TOKENS: pair 1 is not token:role" in bad.stderr
    assert "only-a-token-without-role" not in bad.stderr + bad.stdout


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
    assert workbook.sheetnames == ["Products", "Stores", "Customers", "Sales", "Stock", "Calendar", "Promotions"]


def test_template_writes_the_import_template(tmp_path):
    result = run("template", "--out", str(tmp_path / "template.xlsx"))
    assert result.returncode == 0, result.stderr
    assert "Products" in openpyxl.load_workbook(tmp_path / "template.xlsx").sheetnames


@pytest.mark.slow
def test_demo_imports_the_samples_and_a_second_demo_loads_nothing_new(cli_home, tmp_path):
    """Also: the alerts reach the example routing's managers through a real mail server (STARTTLS, login)
    and the webhook, once; `alerts list --json` and `alerts ack` work on what the demo found."""
    certs = certificates(tmp_path)
    mailbox = Mailbox()
    with smtp_server("starttls", certs, mailbox) as port, WebhookReceiver() as hook:
        mail = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD,
                "SSL_CERT_FILE": str(certs.ca_file), "ALERT_WEBHOOK_URL": hook.url, "ALERT_DIGEST_TIME": "00:00",
                "ALERT_EMAIL_FROM": "alerts@shop.example"}  # fmt: skip
        first = run("demo", home=cli_home, timeout=900, **mail)  # forecasts fitted on a shared 2-core machine
        assert first.returncode == 0, first.stderr
        received_first = len(mailbox.received)
        second = run("demo", home=cli_home, timeout=900, **mail)
        assert second.returncode == 0, second.stderr
    assert "shop_S01_handwritten_week47.xlsx: loaded_with_rejects" in first.stdout
    assert "feedback workbook:" in first.stdout
    assert "Pulling products, stock and 7 days of sales from http://127.0.0.1:" in first.stdout
    assert "Refreshing the daily KPIs for 2024-11-22 .. 2026-11-23 (" in first.stdout
    assert "Top products, last 7 days:\n   1. " in first.stdout
    assert (cli_home / "dashboard" / "dashboard.json").exists()
    assert "Revenue forecast, next 7 days" in first.stdout and "Active anomalies" in first.stdout
    assert "sales_forecast: " in first.stdout and " 0 reused" in first.stdout
    assert "Reports of 2026-11-22 (en; also in ops.generated_reports):" in first.stdout
    for slug in ("chain", "store-S01", "store-S02"):
        assert (cli_home / "reports" / "2026-11-22" / f"report-2026-11-22-{slug}-en.pdf").exists()
    assert (cli_home / "reports" / "analytics_export.xlsx").exists()
    steps = r"Time per step:\n  start the warehouse .* s\n  import the sample workbooks .*\n  in all +[\d.]+ s"
    assert re.search(steps, first.stdout, re.DOTALL)
    counts = warehouse_counts(cli_home)
    assert counts["core.products"] == 80
    assert counts["core.sales"] > 40_000
    assert counts["ops.import_rejects"] == 3
    for noise in NOISE:
        assert noise not in first.stdout + first.stderr

    # The alerts: the planted S02 drop and the churned regulars to Lyon, the P0077 stock-out (Chocolate) to
    # Paris and the chocolate buyer; each manager's critical alerts in one email; the webhook once per group.
    assert "to the mail server 127.0.0.1 and the webhook" in first.stdout

    def mentioning(address: str, text: str) -> list:
        return [m for m in mailbox.to(f"{address}@example.com") if text in m.get_body(("plain",)).get_content()]

    lyon_critical = [m for m in mailbox.to("manager.lyon@example.com") if "critical" in m["Subject"].lower()]
    assert len(lyon_critical) == 1 and "S02 (Lyon Part-Dieu)" in lyon_critical[0].get_body(("plain",)).get_content()
    # The planted stock-out (P0077, Chocolate, at S01): one email to Paris's manager and one to the buyer.
    assert len(mentioning("manager.paris", "P0077")) == len(mentioning("buyer.chocolate", "P0077")) == 1
    assert mentioning("manager.lyon", "P0077") == mentioning("head.office", "P0077") == []
    assert mentioning("manager.paris", "S02 (Lyon Part-Dieu)") == []
    assert len(hook.bodies) == 1 and "S02" in json.dumps(hook.bodies) and "P0077" in json.dumps(hook.bodies)

    # The reports of the day: each store manager their store's, head office the chain's, the buyer none.
    def reports_to(address: str) -> list[str]:
        return [a.get_filename() for m in mailbox.to(address) for a in m.iter_attachments()
                if a.get_content_type() == "application/pdf"]  # fmt: skip

    assert reports_to("manager.paris@example.com") == ["report-2026-11-22-store-S01-en.pdf"]
    assert reports_to("manager.lyon@example.com") == ["report-2026-11-22-store-S02-en.pdf"]
    assert reports_to("head.office@example.com") == ["report-2026-11-22-chain-en.pdf"]
    assert reports_to("buyer.chocolate@example.com") == []
    assert "  store:S01      manager.paris@example.com (sent)" in first.stdout
    assert "  all            head.office@example.com (sent)" in first.stdout
    assert len(mailbox.received) == received_first  # the second demo sends nothing
    assert "Alert messages written: none; sent 0 (alerts and reports)" in second.stdout
    document = json.loads((cli_home / "dashboard" / "dashboard.json").read_text())
    assert {a["severity"] for a in document["alerts"]} >= {"critical"}

    listed = run("alerts", "list", "--json", home=cli_home)
    assert listed.returncode == 0, listed.stderr
    alerts = json.loads(listed.stdout)
    assert set(alerts[0]) == {"id", "kind", "severity", "status", "message", "since"}
    drop = next(a for a in alerts if a["kind"] == "sales_drop" and "S02" in a["message"])
    acked = run("alerts", "ack", str(drop["id"]), "--by", "Marie", home=cli_home)
    assert acked.returncode == 0 and "acknowledged by Marie" in acked.stdout
    still_open = json.loads(run("alerts", "list", "--status", "open", "--json", home=cli_home).stdout)
    assert drop["id"] not in {a["id"] for a in still_open}
    assert run("alerts", "ack", "999999", home=cli_home).returncode == 1
    snoozed = run("alerts", "snooze", str(still_open[0]["id"]), "--until", "2099-01-01", home=cli_home)
    assert snoozed.returncode == 0, snoozed.stderr

    again = warehouse_counts(cli_home)
    # The samples' bytes are in the ledger: none is dropped again, no import run starts, no table changes.
    assert "28 of the 28 sample workbooks are already imported" in second.stdout
    assert "Importing" not in second.stdout and "Imports: none (nothing new)" in second.stdout
    # Nothing new: no pull of the simulator's same days, and no run rebuilds what is newer than its inputs.
    assert "Pulling products" not in second.stdout and "pulled already" in second.stdout
    assert "Refreshing" not in second.stdout and "Forecasting" not in second.stdout
    for job in ("refresh_core_tables", "refresh_marts", "refresh_forecasts_and_anomalies", "daily_report 2026-11-22",
                "analytics_export"):  # fmt: skip
        assert f"Up to date, not run again: {job} " in second.stdout
    assert again == counts


@pytest.mark.slow
def test_two_imports_at_once_share_the_embedded_server(cli_home, tmp_path):
    first = write_workbook(tmp_path / "one.xlsx", {"Products": products(), "Sales": sales(40)})
    rows = sales(60)
    for row in rows[1:]:
        row[0] = "B" + row[0]  # other orders
    second = write_workbook(tmp_path / "two.xlsx", {"Products": products(), "Sales": rows})
    processes = [
        subprocess.Popen([SALES_PIPELINE, "import", str(path)], cwd=PROJECT, env=cli_env(cli_home),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path in (first, second)
    ]  # fmt: skip
    outputs = [process.communicate(timeout=300) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    assert warehouse_counts(cli_home)["core.sales"] == 100
    assert first.exists() and second.exists()  # the user's own files are left where they were


@pytest.mark.slow
def test_two_imports_of_two_files_named_alike_replace_nothing_and_load_both(cli_home, tmp_path):
    """Two `import` commands started together on two different report.xlsx, while a third report.xlsx
    waits in the inbox: every one of the three keeps its bytes somewhere under the home folder."""
    waiting = write_workbook(cli_home / "inbox" / "report.xlsx", {"Products": products(), "Sales": sales(4)})
    waiting_bytes = waiting.read_bytes()
    mine = []
    for folder, prefix in (("north", "N"), ("south", "S")):
        rows = sales(30)
        for row in rows[1:]:
            row[0] = prefix + row[0]  # other orders in each file
        mine.append(write_workbook(tmp_path / folder / "report.xlsx", {"Products": products(), "Sales": rows}))
    processes = [
        subprocess.Popen([SALES_PIPELINE, "import", str(path)], cwd=PROJECT, env=cli_env(cli_home),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path in mine
    ]  # fmt: skip
    outputs = [process.communicate(timeout=300) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    assert all("report" in out and ": loaded:" in out for out, _ in outputs)
    assert waiting.read_bytes() == waiting_bytes  # the waiting file is still there, as it was
    kept = {hashlib.sha256(p.read_bytes()).hexdigest() for p in cli_home.rglob("*.xlsx") if p.is_file()}
    dropped = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (waiting, *mine)]
    assert set(dropped) <= kept  # the bytes of every dropped file are under the home folder
    ledger = home_query(cli_home, "SELECT content_hash, status FROM ops.import_ledger ORDER BY content_hash")
    assert ledger == sorted((digest, "loaded") for digest in dropped[1:])  # each file's own bytes, once
    assert warehouse_counts(cli_home)["core.sales"] == 60


def test_a_copy_into_the_inbox_never_replaces_a_waiting_file(tmp_path):
    from sales_pipeline.cli import copy_into_inbox

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "report.xlsx").write_bytes(b"waiting")
    (tmp_path / "report.xlsx").write_bytes(b"mine")

    copies = [copy_into_inbox(tmp_path / "report.xlsx", inbox) for _ in range(2)]

    assert [p.name for p in copies] == ["report (2).xlsx", "report (3).xlsx"]
    assert (inbox / "report.xlsx").read_bytes() == b"waiting"
    assert all(p.read_bytes() == b"mine" for p in copies) and (tmp_path / "report.xlsx").read_bytes() == b"mine"
    assert sorted(p.name for p in inbox.iterdir()) == ["report (2).xlsx", "report (3).xlsx", "report.xlsx"]
    assert copy_into_inbox(inbox / "report.xlsx", inbox) == inbox / "report.xlsx"  # already there: imported in place


@pytest.mark.slow
def test_import_keeps_dagster_runs_in_the_dagster_database_and_starts_no_simulator(cli_home, tmp_path):
    workbook = write_workbook(tmp_path / "one.xlsx", {"Products": products(), "Sales": sales(10)})
    result = run("import", str(workbook), home=cli_home)

    assert result.returncode == 0, result.stderr
    assert "simulator" not in result.stdout  # an import pulls nothing from the Java API
    public_tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    with embedded_server(cli_home) as url:
        dagster_tables = {name for (name,) in fetch(url("dagster"), public_tables)}
        warehouse_tables = {name for (name,) in fetch(url("sales_pipeline"), public_tables)}
        runs = fetch(url("dagster"), "SELECT count(*) FROM runs")[0][0]
    assert {"runs", "event_logs"} <= dagster_tables
    assert runs >= 1  # the import's run (and the refreshes after it)
    assert warehouse_tables == set()  # the warehouse's schemas are its own: raw, core, marts, ml, ops


def test_import_skips_an_excel_lock_file_in_one_line(cli_home, tmp_path):
    lock = tmp_path / "~$week 47.xlsx"  # what Excel leaves next to a workbook it has open
    lock.write_bytes(b"\x0bJeanne Martin" + b"\x00" * 150)

    result = run("import", str(lock), home=cli_home)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "~$week 47.xlsx skipped: Excel's lock file of an open workbook, not a workbook\n"
    assert not (cli_home / "pgdata").exists() and not (cli_home / "rejected").exists()


@pytest.mark.slow
def test_import_exit_status_tells_a_script_what_happened(cli_home, tmp_path):
    good = write_workbook(tmp_path / "good.xlsx", {"Products": products(), "Sales": sales(10)})
    rows = sales(10)
    for row in rows[1:]:
        row[0] = "B" + row[0]
    rows[3][6] = "abc"  # a Quantity that is not a number
    partly = write_workbook(tmp_path / "partly.xlsx", {"Products": products(), "Sales": rows})
    notes = tmp_path / "notes.xlsx"
    notes.write_text("not a workbook")

    codes = {path.name: run("import", str(path), home=cli_home) for path in (good, partly, notes)}

    assert {name: result.returncode for name, result in codes.items()} == {
        "good.xlsx": 0, "partly.xlsx": 4, "notes.xlsx": 3
    }, {name: result.stderr[-2000:] for name, result in codes.items()}  # fmt: skip
    assert (
        "notes.xlsx: rejected (the file is not a .xlsx workbook (it is not a zip archive))"
        in codes["notes.xlsx"].stdout
    )

    # A run that crashes (here a fault planted in the warehouse) exits 1, and its file is recorded and put away.
    home_query(cli_home, "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS"
                         " $$ BEGIN RAISE EXCEPTION 'a planted fault'; END $$;"
                         " CREATE TRIGGER refuse BEFORE INSERT ON core.products FOR EACH STATEMENT"
                         " EXECUTE FUNCTION public.refuse()")  # fmt: skip
    crash = write_workbook(tmp_path / "crash.xlsx", {"Products": products(9)})
    failed = run("import", str(crash), home=cli_home)

    assert failed.returncode == 1, failed.stderr
    assert "a planted fault" in failed.stderr
    ledger = home_query(cli_home, "SELECT file_name, status, reason FROM ops.import_ledger ORDER BY import_id")
    assert [(name, status) for name, status, _ in ledger] == [
        ("good.xlsx", "loaded"), ("partly.xlsx", "loaded_with_rejects"), ("notes.xlsx", "rejected"),
        ("crash.xlsx", "failed"),
    ]  # fmt: skip
    assert ledger[-1][2].startswith("the import failed (RaiseException: a planted fault)")
    assert [p.name for p in (cli_home / "rejected").rglob("crash.xlsx")] == ["crash.xlsx"]
    assert not (cli_home / "inbox" / "crash.xlsx").exists()


def test_pull_sales_without_a_java_api_names_the_setting_and_starts_nothing(cli_home):
    result = run("pull-sales", "--from", "2026-11-01", "--to", "2026-11-02", home=cli_home)

    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line
    assert "JAVA_API_BASE_URL is not set" in result.stderr and "--simulator" in result.stderr
    assert not (cli_home / "pgdata").exists()  # no server started, no simulated data anywhere


@pytest.mark.slow
def test_pull_sales_backfills_thirty_days_from_the_simulator_in_one_run(cli_home):
    result = run("pull-sales", "--from", "2026-10-24", "--to", "2026-11-22", "--simulator", home=cli_home)

    assert result.returncode == 0, result.stderr
    assert "Java API: simulator on http://127.0.0.1:" in result.stdout
    assert "Refreshing the daily KPIs for 2026-10-2" in result.stdout
    pulled = next(line for line in result.stdout.splitlines() if line.startswith("Pulled "))
    lines = int(pulled.split()[1].replace(",", ""))
    assert lines > 1_000 and f"{lines:,} new" in pulled
    assert warehouse_counts(cli_home)["core.sales"] == lines


@pytest.mark.slow
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no user
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def processes_of(home: Path) -> list[str]:
    """Live processes whose command line or environment names this home: all a command started inherit it."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            text = (folder / "cmdline").read_bytes() + (folder / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or a zombie
        if str(home).encode() in text and folder.name != str(os.getpid()):
            found.append(f"{folder.name}: {(folder / 'cmdline').read_bytes()[:120]!r}")
    return found


def wait_for_ui(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        address = f"http://127.0.0.1:{port}/server_info"
        with contextlib.suppress(OSError), urllib.request.urlopen(address, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(1)
    raise AssertionError(f"the UI did not answer on port {port} within {timeout_s} s")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the processes left through /proc")
def test_dev_started_in_the_background_stops_everything_on_sigterm(cli_home):
    port, api_port, log = free_port(), free_port(), cli_home / "dev.log"
    # As a shell starts a background job (`sales-pipeline dev &`): SIGINT ignored, inherited by what it starts.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with log.open("w") as output:
            process = subprocess.Popen([SALES_PIPELINE, "dev", "--port", str(port), "--api-port", str(api_port)],
                                       cwd=PROJECT, env=cli_env(cli_home), stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        wait_for_ui(port, process, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=10) as health:
            assert health.status == 200  # the read API beside the UI
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
        stopped_after = time.monotonic() - stopping
        left = processes_of(cli_home)
    finally:
        for pid in [int(line.split(":")[0]) for line in processes_of(cli_home)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # what this test started, should it fail

    assert stopped_after < 60
    assert left == []  # no webserver, daemon, code server or PostgreSQL of this home
    assert port_is_free(port) and port_is_free(api_port)
    assert not (cli_home / "pgdata" / "postmaster.pid").exists()  # the embedded server stopped
    output = log.read_text()
    # The embedded warehouse: the demo retailer's back office, trading on to today, is served by default.
    assert "(the retailer of data/sample, trading on to today)" in output
    assert f"The dashboard page and read API are on http://127.0.0.1:{api_port}/ (OpenAPI: /docs)" in output
    for noise in NOISE:
        assert noise not in output


# Every command that reads the settings, as a user would start it (pull-sales with the simulator, so that the
# setting under test is what fails).
PIPELINE_COMMANDS = {
    "demo": ["demo"],
    "dev": ["dev", "--port", "0"],
    "import": ["import", "data/sample/master_data.xlsx"],
    "refresh": ["refresh"],
    "pull-sales": ["pull-sales", "--from", "2026-11-01", "--to", "2026-11-02", "--simulator"],
    "alerts list": ["alerts", "list"],
    "serve": ["serve", "--port", "0"],
    "report": ["report"],
    "export": ["export"],
}
ONE_LINE_ERROR = re.compile(r"^Error: [^\n]+$")


@pytest.mark.slow
@pytest.mark.parametrize("command", PIPELINE_COMMANDS.values(), ids=PIPELINE_COMMANDS.keys())
def test_a_bad_setting_stops_every_command_in_one_line_before_anything_starts(cli_home, command):
    result = run(*command, home=cli_home, PIPELINE_TIMEZONE="Mars/Olympus")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: PIPELINE_TIMEZONE='Mars/Olympus' is not a time zone: use an IANA name such as UTC or Europe/Paris"
    )
    assert list(cli_home.iterdir()) == []  # no folder made, no server started


BAD_SETTINGS = {
    "SALES_PIPELINE_DAYFIRST": ("maybe", "is not a boolean: use true or false"),
    "SALES_PIPELINE_HISTORY_START": ("2020-13-01", "is not a date: use YYYY-MM-DD"),
    "JAVA_API_DEADLINE_S": ("soon", "is not a number of seconds (more than 0), e.g. 600"),
    "FORECAST_HOLIDAY_COUNTRY": ("XX", "is not a country the holidays package knows: use an ISO 3166 code"),
    "FORECAST_WORKERS": ("0", "is not a whole number of processes (1 or more)"),
    "SALES_PIPELINE_DAGSTER_DATABASE_URL": ("mysql://dagster:s3cret@db/dagster", "is not a PostgreSQL URL"),
}


@pytest.mark.parametrize(("setting", "bad"), BAD_SETTINGS.items(), ids=BAD_SETTINGS.keys())
def test_each_setting_with_a_bad_value_is_named_with_its_value(cli_home, setting, bad):
    value, accepted = bad
    result = run("refresh", home=cli_home, **{setting: value})

    assert result.returncode == 1
    assert ONE_LINE_ERROR.match(result.stderr.strip()), result.stderr
    assert result.stderr.startswith(f"Error: {setting}='{value.replace('s3cret', '***')}' {accepted}")
    assert "s3cret" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", PIPELINE_COMMANDS.values(), ids=PIPELINE_COMMANDS.keys())
def test_a_database_that_does_not_answer_is_named_in_one_line_without_its_password(cli_home, command):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        url = f"postgresql://sales:s3cret@127.0.0.1:{closed.getsockname()[1]}/sales_pipeline"

    result = run(*command, home=cli_home, SALES_PIPELINE_DATABASE_URL=url)

    assert result.returncode == 1
    assert ONE_LINE_ERROR.match(result.stderr.strip()), result.stderr
    assert result.stderr.startswith(
        f"Error: cannot use SALES_PIPELINE_DATABASE_URL ({url.replace('s3cret', '***')}): connection to server at"
    )
    assert "Connection refused" in result.stderr and "s3cret" not in result.stdout + result.stderr


def test_debug_shows_the_traceback_after_the_reason(cli_home):
    result = run("--debug", "refresh", home=cli_home, PIPELINE_TIMEZONE="Mars/Olympus")

    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.strip().endswith("PIPELINE_TIMEZONE='Mars/Olympus' is not a time zone: use an IANA name"
                                          " such as UTC or Europe/Paris")  # fmt: skip


def test_commands_without_settings_fail_in_one_line_too(tmp_path):
    (tmp_path / "a file").write_text("not a folder")
    out = tmp_path / "a file" / "retailer"
    generate = run("generate", "--scale", "1", "--days", "28", "--out", str(out))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        simulate = run("simulate-api", "--port", str(taken.getsockname()[1]))

    assert generate.returncode == 1
    assert generate.stderr.strip() == f"Error: NotADirectoryError: [Errno 20] Not a directory: '{out}'"
    assert simulate.returncode != 0
    assert simulate.stderr.strip() == "simulate-api: [Errno 98] Address already in use"


@pytest.mark.slow
def test_import_of_a_file_that_loads_nothing_exits_3_naming_it(cli_home, tmp_path):
    notes = tmp_path / "notes.xlsx"
    notes.write_text("this is not a workbook")

    result = run("import", str(notes), home=cli_home)

    assert result.returncode == 3  # rejected; 1 is a failed run (README, The CLI)
    assert result.stderr.strip() == (
        "Error: notes.xlsx was not imported (rejected): the file is not a .xlsx workbook (it is not a zip archive)"
    )
    assert "notes.xlsx: rejected" in result.stdout  # the summary still says where it was put


@pytest.mark.slow
def test_an_import_killed_after_its_commit_is_refreshed_into_the_marts_by_the_next_command(cli_home, tmp_path):
    from sales_pipeline_tests.test_embedded_server import connection_to_running_server, wait_until

    workbook = write_workbook(tmp_path / "week.xlsx", {"Products": products(), "Sales": sales(40)})
    command = subprocess.Popen([SALES_PIPELINE, "import", str(workbook)], cwd=PROJECT, env=cli_env(cli_home),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def committed() -> bool:
        with connection_to_running_server(cli_home, "sales_pipeline") as connection:
            if connection is None:
                return False
            with connection.cursor() as cursor:
                try:
                    cursor.execute("SELECT count(*) FROM ops.import_ledger WHERE status = 'loaded'")
                except psycopg2.errors.UndefinedTable:
                    return False
                return cursor.fetchone()[0] == 1

    wait_until(committed, every_s=0.01)  # the moment: the import committed, the marts not refreshed yet
    os.kill(command.pid, signal.SIGKILL)
    command.wait()
    kpis = "SELECT count(*), sum(revenue) FROM marts.daily_kpis WHERE scope = 'all'"
    assert home_query(cli_home, kpis)[0][0] == 0  # what the kill left: sales without marts

    again = run("import", str(workbook), home=cli_home)

    assert again.returncode == 0, again.stderr
    assert ": duplicate (same content as import" in again.stdout
    assert "Refreshing the daily KPIs for 2026-11-01 .. 2026-11-03 (1 import or pull)" in again.stdout
    assert home_query(cli_home, kpis) == home_query(
        cli_home, "SELECT count(DISTINCT sale_date), sum(revenue) FROM core.sales"
    )
