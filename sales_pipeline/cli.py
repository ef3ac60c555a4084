"""The `sales-pipeline` command: demo, dev, generate, template and headless import."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sales_pipeline import settings
from sales_pipeline.settings import Settings

if TYPE_CHECKING:  # Dagster loads in a second: the commands that need it import it when they run
    import dagster as dg
    from psycopg2.extensions import cursor as Cursor

PROJECT_ROOT = Path.cwd()
PACKAGE_FOLDER = Path(__file__).resolve().parent  # where this project's code runs from
SAMPLE_DIR = Path("data/sample")
DEMO_ROUTING = Path("data/alert_routing.example.yaml")  # the sample retailer's store managers, buyer, head office
# The retailer data/sample was generated from, so that the API and the workbooks agree.
SIMULATED_RETAILER = {"seed": 42, "scale": 2, "days": 730}
DEMO_API_DAYS = 7  # the demo pulls the last week of sales from the back office, as a night would
SUMMARY_TABLES = ("core.products", "core.stores", "core.customers", "core.sales", "core.stock", "ops.import_rejects")
# `sales-pipeline import`'s exit status per outcome, for scripts (README, The CLI); a failed run exits 1, a
# command line click refuses 2.
IMPORT_EXIT_CODES = {"loaded": 0, "duplicate": 0, "rejected": 3, "loaded_with_rejects": 4}
# Keep the terminal to the summary and, on failure, its one line: each run's full log is in the Dagster UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


NEXT_STEP = "\nNext: `sales-pipeline dev` opens the Dagster UI on http://127.0.0.1:3000"
SIMULATOR_OPTION = click.option(
    "--simulator",
    is_flag=True,
    help=f"With {settings.JAVA_API_BASE_URL} unset, serve the bundled Java API simulator (made-up sales of the"
    " sample retailer) and pull from it.",
)
# How long `dev` waits for dg dev's processes to stop before killing them.
DEV_STOP_TIMEOUT_S = 30


def demo_routing() -> None:
    """The demo's managers: the shipped example routing when nobody said who gets the alerts and reports."""
    if not os.environ.get(settings.ALERT_ROUTING) and not os.environ.get(settings.MANAGER_EMAILS):
        os.environ[settings.ALERT_ROUTING] = str(DEMO_ROUTING.resolve())


@cache
def load_settings() -> Settings:
    """This command's settings, read once from the environment: a bad one fails here, before anything starts,
    with its one line (see Commands)."""
    return Settings.from_environment()


@cache
def code_location() -> dg.Definitions:
    """The code location with this command's settings, built once (after `prepare_environment`: the resources
    read the URLs it puts in the environment)."""
    from sales_pipeline.definitions import build_definitions

    return build_definitions(load_settings())


# The command's connection to Dagster's storage: kept open, without a time limit on its statements.
DAGSTER_STORAGE_POOL = {"statement_timeout": 0, "pool_recycle": 3600, "max_overflow": 4}


@cache
def dagster_instance() -> dg.DagsterInstance:
    """The Dagster instance of DAGSTER_HOME (after `prepare_environment`), made once, holding its connection.

    Dagster's PostgreSQL storage opens a connection per statement unless told otherwise, as the webserver
    tells it: a run writes some forty events, and the demo runs thirty-odd jobs (a light run took 4 to 5 s
    that way, 2 to 3 s with the connection kept, on the shared 2-core machine)."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    instance.optimize_for_webserver(**DAGSTER_STORAGE_POOL)
    return instance


def prepare_environment(simulator: bool = False, live: bool = False) -> dict[str, str]:
    """Start (or reuse) the embedded PostgreSQL unless a server is configured, and point Dagster at it.

    Returns what was set, for the message. The URLs go into this process's environment, so that
    Dagster processes started from here connect to the same server without starting their own.
    `simulator`: serve the bundled Java API simulator when JAVA_API_BASE_URL is unset; `live`: its retailer
    trades on after the sample's last day, to now, so that the nightly pulls find yesterday's sales.
    """
    from sales_pipeline import folders
    from sales_pipeline.runs import batch_range_run_events, create_warehouse_pool
    from sales_pipeline.warehouse import db, embedded

    config = load_settings()  # a bad value fails here, before anything starts
    home = config.home
    for folder in (home, config.inbox_dir, config.archive_dir, config.rejected_dir):
        folders.make_private(folder)
    embedded_server = not os.environ.get(settings.DATABASE_URL)
    embedded_runs = embedded_server and not os.environ.get(settings.DAGSTER_DATABASE_URL)
    # Dagster's storage first: once the embedded warehouse's URL is in the environment, it reads
    # as an external warehouse, and Dagster's tables would land in the warehouse's `public` schema.
    os.environ[settings.DAGSTER_DATABASE_URL] = embedded.dagster_storage_url()
    warehouse_url = embedded.warehouse_url()
    os.environ[settings.DATABASE_URL] = warehouse_url
    dagster_home = folders.make_private(home / "dagster")
    instance_settings = PROJECT_ROOT / "dagster.yaml"
    if not instance_settings.exists():
        raise click.ClickException(f"{instance_settings} not found: run sales-pipeline from the project folder")
    shutil.copyfile(instance_settings, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    batch_range_run_events()
    with db.transaction(warehouse_url) as cursor:
        db.migrate(cursor)
        # Under the migration's lock: two commands started together create the pool one after the other.
        create_warehouse_pool(dagster_instance())
    fail_runs_of_dead_commands(embedded_runs)
    return {
        "warehouse": "embedded PostgreSQL in " + str(embedded.pgdata_dir()) if embedded_server else "external server",
        "dagster home": str(dagster_home),
        "inbox": str(config.inbox_dir),
    } | java_api(simulator, live)


def fail_runs_of_dead_commands(storage_on_this_machine: bool) -> None:
    """Mark failed the Dagster runs left STARTED by a process that is gone, and say so in one line."""
    from sales_pipeline.runs import fail_runs_of_dead_processes

    failed = fail_runs_of_dead_processes(dagster_instance(), storage_on_this_machine)
    if failed:
        click.echo(f"Marked failed {len(failed)} Dagster run(s) left unfinished by a process that is gone (killed, or "
                   f"cut from its database): {', '.join(run_id[:8] for run_id in failed)}", err=True)  # fmt: skip


def java_api(simulator: bool, live: bool = False) -> dict[str, str]:
    """Where the Java API is, for the message: none when JAVA_API_BASE_URL is unset, unless `simulator`
    asks for the bundled one (never by omission: its made-up sales must not reach a real warehouse)."""
    if os.environ.get(settings.JAVA_API_BASE_URL):
        return {"java api": "configured server (JAVA_API_BASE_URL)"}
    return {"java api": start_simulator(live)} if simulator else {}


def start_simulator(live: bool = False) -> str:
    """Serve the bundled simulator from this process while it runs, and point the pulls at it."""
    from sales_pipeline.demo.simulator import JavaApiSimulator

    token = os.environ.get(settings.JAVA_API_TOKEN) or secrets.token_urlsafe(16)
    simulator = JavaApiSimulator(token=token, live=live, **SIMULATED_RETAILER)
    base_url = simulator.start()
    atexit.register(simulator.stop)
    os.environ[settings.JAVA_API_BASE_URL] = base_url
    os.environ[settings.JAVA_API_TOKEN] = token
    carried_on = ", trading on to today" if live else ""
    return f"simulator on {base_url} (the retailer of data/sample{carried_on})"


# The database settings as the user gave them, before a command points them at the embedded server:
# a database failure names these (filled when a command starts).
CONFIGURED_DATABASES: dict[str, str | None] = {}


class Commands(click.Group):
    """The commands. One that fails prints one line saying why and exits 1; with --debug, the traceback too."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(failure_line(exception_problems(error))) from None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="When a command fails, show the whole traceback after the reason.")
def main(debug: bool) -> None:
    """Turn a retailer's sales data into decisions (a Dagster project)."""
    # SIGTERM (a service manager, `timeout`, `kill`) exits like Ctrl-C does, through Python's exit
    # handlers, so the embedded PostgreSQL stops when its last user goes instead of being orphaned.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    CONFIGURED_DATABASES.update({name: os.environ.get(name) for name in (settings.DATABASE_URL,
                                                                          settings.DAGSTER_DATABASE_URL)})  # fmt: skip
    # The project's notes (a server recovered after a crash, ...) as one line each on stderr; of the
    # libraries' logs, errors only (a failure is then said once, in the command's last line).
    notes = logging.StreamHandler(sys.stderr)
    notes.setFormatter(logging.Formatter("Note: %(message)s"))
    project = logging.getLogger("sales_pipeline")
    project.addHandler(notes)
    project.setLevel(logging.WARNING)
    project.propagate = False
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# --- one line for a failure -------------------------------------------------------------------------

# psycopg2's errors for a server that cannot be reached or went away (SQLAlchemy wraps them under the same names).
CONNECTION_ERRORS = {"OperationalError", "InterfaceError"}
CONNECTION_LOST = ("server closed the connection", "terminating connection", "connection already closed")


@dataclass(frozen=True)
class Problem:
    """One exception of a failure's chain, as a line of text."""

    kind: str  # its class name
    message: str  # the first line of its message
    ours: bool  # raised by this project's code: its message says what is wrong and what to do


def exception_problems(error: BaseException) -> list[Problem]:
    """An exception and what caused it, outermost first."""
    problems: list[Problem] = []
    current: BaseException | None = error
    while current is not None and len(problems) < 20:
        problems.append(Problem(type(current).__name__, _first_line(str(current)), _raised_by_us(current)))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return problems


def _raised_by_us(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    module = frame.tb_frame.f_globals.get("__name__", "") if frame else type(error).__module__
    return module.startswith("sales_pipeline")


def run_problems(result) -> list[Problem]:
    """A failed Dagster run's error and what caused it, outermost first (from its failure event)."""
    failure = next((event for event in result.all_events if event.is_failure), None)
    info = getattr(failure.event_specific_data, "error", None) if failure else None
    problems = []
    while info is not None:
        text = info.message.strip()  # "module.Class: message"
        qualified, _, message = text.partition(": ")
        if not qualified.endswith(info.cls_name):
            message = text
        raised_in = info.stack[-1] if info.stack else ""  # '  File ".../sales_pipeline/x.py", line 3, in f\n'
        ours = f'"{PACKAGE_FOLDER}{os.sep}' in raised_in or qualified.startswith("sales_pipeline.")
        problems.append(Problem(info.cls_name, _first_line(message), ours))
        info = info.cause or info.context
    return problems or [Problem("RunFailure", "the run failed", True)]


def failure_line(problems: list[Problem]) -> str:
    """The one line a user reads: a setting's own message; a database named with where it is; otherwise
    the innermost message of this project's, else the innermost cause."""
    for problem in problems:
        if problem.kind == "SettingError":
            return problem.message
    for problem in problems:
        if problem.kind in CONNECTION_ERRORS:
            return database_failure(problem.message)
    chosen = next((p for p in reversed(problems) if p.ours), problems[-1])
    if chosen.ours or not chosen.message:
        return chosen.message or chosen.kind
    return f"{chosen.kind}: {chosen.message}"


def database_failure(detail: str) -> str:
    """A database that cannot be reached, or that went away: which one, and what became of the command's work."""
    from sales_pipeline.warehouse import embedded

    detail = re.sub(r"^\(\S+\) ", "", detail)  # SQLAlchemy's "(psycopg2.OperationalError) " prefix
    kept = "the step under way was rolled back and what was committed before it is kept; run the command again"
    given = " or ".join(
        f"{name} ({settings.without_password(url)})" for name, url in CONFIGURED_DATABASES.items() if url
    )
    if given:
        if any(words in detail for words in CONNECTION_LOST):
            return f"{given} stopped answering during the command ({detail}): {kept} to finish"
        return f"cannot use {given}: {detail}"
    folder = embedded.pgdata_dir()
    if embedded.died(folder):
        return (
            f"the embedded PostgreSQL in {folder} stopped during the command (its process is gone: killed? its log: "
            f"{folder / 'log'}): {kept}, which starts the server again"
        )
    return f"cannot use the embedded PostgreSQL in {folder} (its log: {folder / 'log'}): {detail}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


@main.command()
def demo() -> None:
    """Import the bundled sample workbooks through the Dagster assets, print what was built, send the alerts
    and the daily reports; then the time each step took."""
    steps = StepTimes()
    demo_routing()
    with steps("start the warehouse and Dagster's storage"):
        where = prepare_environment()
        # The simulator's days never change: pulled once, they are not pulled again (nor is it started: making
        # its retailer takes seconds). Before the code location loads: its resources read the URL it sets.
        pull = bool(os.environ.get(settings.JAVA_API_BASE_URL)) or not demo_days_pulled()
        if pull:
            where |= java_api(simulator=True)
    samples = sorted(SAMPLE_DIR.glob("*.xlsx"))
    if not samples:
        raise click.ClickException(f"no sample workbooks in {SAMPLE_DIR.resolve()}")
    with steps("import the sample workbooks"):
        results = import_samples(samples)
    with steps("pull the back office (simulator)"):
        if pull:
            pull_back_office()
        else:
            click.echo(f"The simulator's last {DEMO_API_DAYS} days of sales were pulled already (it serves the same"
                       " every time): not pulled again")  # fmt: skip
    with steps("core tables, marts, forecasts, anomalies"):
        refresh_downstream(only_out_of_date=True)
    print_summary(results, where)
    from sales_pipeline.warehouse import db

    with db.transaction(os.environ[settings.DATABASE_URL]) as cursor:
        print_forecast_and_anomalies(cursor)
    with steps("daily reports and export"):
        day = build_reports_and_export(only_out_of_date=True)
    with steps("alerts and reports sent"):
        deliver_notifications()
    if day is not None:
        print_report_emails(day)
    failed = [outcome for outcome in results if outcome["status"] == "failed"]
    if failed:
        raise click.ClickException(f"the import of {failed[0]['workbook']} failed: {failed[0]['reason']}")
    steps.echo()
    click.echo(NEXT_STEP)


def import_samples(samples: list[Path]) -> list[dict]:
    """Drop into the inbox the samples whose bytes the warehouse has not loaded yet and import them. A second
    demo drops none: it launches no import run, and nothing downstream changes."""
    from sales_pipeline.excel.importer import earlier_imports
    from sales_pipeline.excel.read import content_hash
    from sales_pipeline.warehouse import db

    digests = {sample: content_hash(sample) for sample in samples}
    with db.transaction(os.environ[settings.DATABASE_URL]) as cursor:
        imported = earlier_imports(cursor, list(digests.values()))
    new = [sample for sample, digest in digests.items() if digest not in imported]
    if len(new) < len(samples):
        click.echo(f"{len(samples) - len(new)} of the {len(samples)} sample workbooks are already imported (same"
                   " content in ops.import_ledger): not dropped again")  # fmt: skip
    if not new:
        return []
    inbox = load_settings().inbox_dir
    for sample in new:
        shutil.copy2(sample, inbox / sample.name)  # copy2 keeps the mtime: the files are settled
    click.echo(f"Dropped {len(new)} sample workbooks into {inbox}")
    return run_inbox_once()


class StepTimes:
    """The wall time of each step of a command, printed at its end (`with steps("name"): ...`)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.times: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.times.append((name, time.perf_counter() - started))

    def echo(self) -> None:
        click.echo("\nTime per step:")
        for name, seconds in self.times:
            click.echo(f"  {name:<44}{seconds:6.1f} s")
        click.echo(f"  {'in all':<44}{time.perf_counter() - self.started:6.1f} s")


def evaluate_sensor(name: str, cursor: str | None = None):  # -> SensorExecutionData
    """One tick of a sensor, as the daemon evaluates it (from `cursor`; None: as a daemon that never ran it)."""
    import dagster as dg

    defs = code_location()
    instance = dagster_instance()
    # With an instance ref, as the daemon builds the context: partitions added in this tick resolve.
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), cursor=cursor, definitions=defs, resources=defs.resources
    )
    return defs.resolve_sensor_def(name).evaluate_tick(context)


def run_inbox_once() -> list[dict]:
    """Evaluate the inbox sensor once and run the imports it requests, in this process."""
    instance = dagster_instance()
    tick = evaluate_sensor("workbook_inbox_sensor")
    for request in tick.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return execute_imports(tick.run_requests)


def import_one(path: Path, mapping: Path | None) -> list[dict]:
    """Request the import of one file the way the sensor would, and run it in this process."""
    import dagster as dg

    from sales_pipeline.defs.ingest.workbooks import (
        IMPORT_OP,
        WorkbookImportConfig,
        partition_key_for,
        workbook_partitions,
    )
    from sales_pipeline.excel.importer import earlier_imports
    from sales_pipeline.excel.read import content_hash
    from sales_pipeline.warehouse import db

    instance = dagster_instance()
    digest = content_hash(path)
    with db.transaction(os.environ[settings.DATABASE_URL]) as cursor:
        partition = partition_key_for(path, digest, earlier_imports(cursor, [digest]))
    instance.add_dynamic_partitions(workbook_partitions.name, [partition])
    config = WorkbookImportConfig(path=str(path), mapping=str(mapping.resolve()) if mapping else "", reimport=False)
    request = dg.RunRequest(
        partition_key=partition,
        run_config=dg.RunConfig({IMPORT_OP: config}),
        tags={"workbook": path.name, "content_hash": digest},
    )
    return execute_imports([request])


def run_job(
    name: str,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
    partition_key: str | None = None,
    must_succeed: bool = True,
):
    """Run a job of the code location in this process, as a run of its own tagged with this process (so
    the next command can tell if it died: see runs.py). A failed run stops the command with its reason,
    unless `must_succeed` is False."""
    from sales_pipeline.runs import process_tags

    result = (
        code_location()
        .resolve_job_def(name)
        .execute_in_process(
            instance=dagster_instance(),
            run_config={**(run_config or {}), **QUIET},
            tags={**(tags or {}), **process_tags()},
            partition_key=partition_key,
            raise_on_error=False,
        )
    )
    if must_succeed and not result.success:
        raise click.ClickException(failure_line(run_problems(result)))
    return result


def execute_imports(requests: list) -> list[dict]:
    outcomes = []
    with click.progressbar(
        requests, label="Importing", item_show_func=lambda r: r.tags["workbook"] if r else ""
    ) as bar:
        for request in bar:
            result = run_job("import_workbook", must_succeed=False, partition_key=request.partition_key,
                             run_config=request.run_config, tags=request.tags)  # fmt: skip
            outcomes.append(_outcome(request.tags["workbook"], result))
    return outcomes


def refresh_core_tables(only_out_of_date: bool = False) -> None:
    """What declarative automation does after imports when the daemon runs: publish the core tables and check them.

    A failed check is reported and the refresh goes on, as under the daemon; any other failure stops it."""
    if only_out_of_date and up_to_date("refresh_core_tables"):
        return
    result = run_job("refresh_core_tables", must_succeed=False)
    failed_checks = [evaluation for evaluation in result.get_asset_check_evaluations() if not evaluation.passed]
    for evaluation in failed_checks:
        failures = evaluation.metadata.get("failures")
        click.echo(f"Check failed: {evaluation.asset_key.to_user_string()} {evaluation.check_name}"
                   f" ({failures.value if failures else '?'} rows)")  # fmt: skip
    if not result.success and not failed_checks:
        raise click.ClickException(failure_line(run_problems(result)))


def demo_days_pulled() -> bool:
    """Whether the days of sales the demo pulls (the sample's last DEMO_API_DAYS) are pulled already."""
    from sales_pipeline.defs.ingest.java_api import API_SALES
    from sales_pipeline.demo.retailer import DEFAULT_END

    days = {(DEFAULT_END - dt.timedelta(days=n)).isoformat() for n in range(DEMO_API_DAYS)}
    return days <= dagster_instance().get_materialized_partitions(API_SALES)


def pull_back_office() -> None:
    """What the nightly pull does: products and stock, then the last days of sales, from the Java API."""
    from sales_pipeline.defs.analytics.sensors import range_tags
    from sales_pipeline.demo.retailer import DEFAULT_END

    click.echo(
        f"Pulling products, stock and {DEMO_API_DAYS} days of sales from {os.environ[settings.JAVA_API_BASE_URL]}"
    )
    first = DEFAULT_END - dt.timedelta(days=DEMO_API_DAYS - 1)
    run_job("pull_sales", tags=range_tags(first, DEFAULT_END))


def refresh_marts(only_out_of_date: bool = False) -> None:
    """What the sales-changed sensor and automation do under the daemon: the daily KPIs for every import and pull
    they have not absorbed yet (one range), then the marts that follow them."""
    from sales_pipeline.defs.analytics.sensors import NOTHING_WAITING, RANGE_END_TAG, RANGE_START_TAG

    # From no cursor: every import and pull the KPIs have not absorbed, as a daemon starting now would see them.
    tick = evaluate_sensor("sales_changed_sensor")
    for request in tick.run_requests:
        count = len(json.loads(tick.cursor))  # the changes it requested the run for
        changes = "1 import or pull" if count == 1 else f"{count} imports and pulls"
        click.echo(f"Refreshing the daily KPIs for {request.tags[RANGE_START_TAG]} .. {request.tags[RANGE_END_TAG]}"
                   f" ({changes})")  # fmt: skip
        run_job("refresh_daily_kpis", tags=request.tags)
        tick = evaluate_sensor("sales_changed_sensor", tick.cursor)  # what no range of days could cover
    if tick.skip_message and tick.skip_message != NOTHING_WAITING:
        click.echo(f"Not in the marts: {tick.skip_message}")
    if only_out_of_date and up_to_date("refresh_marts"):
        return
    click.echo("Refreshing sales trends, stock health, top products and the dashboard")
    run_job("refresh_marts")


def refresh_downstream(only_out_of_date: bool = False) -> None:
    """Bring everything after the sources up to date, in the order the daemon's sensors and automation would.

    `only_out_of_date`: leave out the runs whose assets are all newer than their parents (`up_to_date`)."""
    refresh_core_tables(only_out_of_date)
    refresh_marts(only_out_of_date)
    refresh_forecasts_and_anomalies(only_out_of_date)


def up_to_date(job: str, partition_key: str | None = None) -> bool:
    """Whether each asset of `job` (of its `partition_key`) was materialized after every parent's latest
    materialization, so that a run would only write again what is there; if so, says so. What the demo's second
    run leaves out: Dagster's own record, not a guess (a setting changed since is not seen: `refresh` runs all)."""
    import dagster as dg

    instance = dagster_instance()

    def latest(key: dg.AssetKey, partition: str | None = None) -> float:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
        ).records
        return records[0].timestamp if records else 0.0

    definitions = code_location()
    graph = definitions.resolve_asset_graph()
    for key in definitions.resolve_job_def(job).asset_layer.selected_asset_keys:
        built = latest(key, partition_key)
        # A parent's latest materialization of any day counts: cautious, it may rebuild what was current.
        if not built or any(latest(parent) > built for parent in graph.get(key).parent_keys):
            return False
    click.echo(f"Up to date, not run again: {job}{f' {partition_key}' if partition_key else ''} (built after"
               " everything it reads)")  # fmt: skip
    return True


def refresh_forecasts_and_anomalies(only_out_of_date: bool = False) -> None:
    """What automation does after the marts: forecasts (refitting only changed series), then the anomalies."""
    if only_out_of_date and up_to_date("refresh_forecasts_and_anomalies"):
        return
    click.echo("Forecasting the next 7 days and looking for anomalies (unchanged series are reused)")
    result = run_job("refresh_forecasts_and_anomalies")
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if "fitted" in metadata:
            click.echo(f"  {event.asset_key.path[-1]}: {metadata['series'].value} series, "
                       f"{metadata['fitted'].value} fitted, {metadata['reused'].value} reused")  # fmt: skip


def print_forecast_and_anomalies(cursor: Cursor) -> None:
    cursor.execute(
        "SELECT f.day, f.yhat, f.yhat_lower_80, f.yhat_upper_80, s.model FROM ml.forecasts f"
        " JOIN ml.forecast_series s USING (target, scope, scope_id, origin)"
        " WHERE f.target = 'sales' AND f.scope = 'all' ORDER BY f.day"
    )
    forecast = cursor.fetchall()
    cursor.execute(
        "SELECT severity, message FROM ml.anomalies WHERE active"
        " ORDER BY array_position(ARRAY['critical', 'warning', 'info'], severity), kind, entity_id"
    )
    anomalies = cursor.fetchall()
    if forecast:
        click.echo(f"\nRevenue forecast, next 7 days ({forecast[0][4]}; 80% interval):")
        for day, yhat, lower, upper, _ in forecast:
            click.echo(f"  {day:%a %d %b}  {yhat:>12,.2f}   [{lower:,.2f} .. {upper:,.2f}]")
    click.echo(f"\nActive anomalies ({len(anomalies)}; all in ml.anomalies):")
    for severity, message in anomalies[:12]:
        click.echo(f"  {severity:<8} {message}")


def build_reports_and_export(only_out_of_date: bool = False) -> dt.date | None:
    """What the report sensor and automation do: the latest day's reports (chain and stores), their emails
    queued in the outbox, and the export. Returns the day reported on (None: no sales yet).

    `only_out_of_date`: leave out the report and the export if they are newer than what they read (`up_to_date`)."""
    from sales_pipeline.analytics.marts import last_complete_day
    from sales_pipeline.warehouse import db

    url = os.environ[settings.DATABASE_URL]
    with db.transaction(url) as cursor:
        day = last_complete_day(cursor)
    if day is None:
        click.echo("\nNo sales in the marts: no report to build.")
        return None
    if not (only_out_of_date and up_to_date("daily_report", day.isoformat())):
        run_job("daily_report", partition_key=day.isoformat())
    if not (only_out_of_date and up_to_date("analytics_export")):
        run_job("analytics_export")
    with db.transaction(url) as cursor:
        cursor.execute(
            "SELECT scope, pages, bytes, path FROM ops.generated_reports WHERE day = %s AND locale = %s"
            " ORDER BY scope <> 'all', scope",
            (day, load_settings().report_locale),
        )
        reports = cursor.fetchall()
    click.echo(f"\nReports of {day} ({load_settings().report_locale}; also in ops.generated_reports):")
    for scope, pages, size, path in reports:
        click.echo(f"  {scope:<14} {pages} pages, {size / 1024:,.0f} kB  {path}")
    click.echo(f"  {'export':<14} {load_settings().reports_dir / 'analytics_export.xlsx'}")
    return day


def print_report_emails(day: dt.date) -> None:
    """Who each report of `day` was emailed to, and whether the delivery got it out."""
    from sales_pipeline.reporting.mailing import report_emails
    from sales_pipeline.warehouse import db

    with db.transaction(os.environ[settings.DATABASE_URL]) as cursor:
        emails = report_emails(cursor, day, load_settings().report_locale)
    if not emails:
        click.echo(f"\nThe reports go to nobody: set {settings.ALERT_ROUTING} or {settings.MANAGER_EMAILS}.")
        return
    click.echo("\nThe reports' emails (ops.notifications):")
    for scope, recipient, state in emails:
        click.echo(f"  {scope:<14} {recipient} ({state})")


def deliver_notifications() -> None:
    """What the delivery sensor does under the daemon: one run that writes the messages due and sends them."""
    result = run_job("deliver_notifications")
    metadata = {
        k: v.value for k, v in result.asset_materializations_for_node("alerts__notifications")[0].metadata.items()
    }
    written = ", ".join(f"{count} {kind}" for kind, count in sorted(metadata["written"].items())) or "none"
    host = load_settings().alerts.smtp_host
    where = f"the mail server {host}" if host else f".eml files in {load_settings().outbox_dir}"
    click.echo(f"\nAlert messages written: {written}; sent {metadata['sent']} (alerts and reports) to {where}"
               + (" and the webhook" if os.environ.get(settings.ALERT_WEBHOOK_URL) else ""))  # fmt: skip
    if metadata["retrying"] or metadata["failed"]:
        click.echo(f"  not sent: {metadata['retrying']} waiting to be tried again, {metadata['failed']} refused;"
                   " see ops.notifications.last_error")  # fmt: skip
    click.echo("  `sales-pipeline alerts list` shows the open alerts; `alerts ack ID` stops an alert's reminders")


def _outcome(workbook: str, result) -> dict:
    if not result.success:
        return {"workbook": workbook, "status": "failed", "reason": failure_line(run_problems(result))}
    # A loaded workbook materializes the asset; a re-drop of imported bytes is an observation.
    node = "ingest__workbook_import"
    (event,) = result.asset_materializations_for_node(node) or result.asset_observations_for_node(node)
    metadata = {key: value.value for key, value in event.metadata.items()}
    return {"workbook": workbook, **metadata}


def print_summary(results: list[dict], where: dict[str, str]) -> None:
    from sales_pipeline.warehouse import db

    click.echo("\nImports:" + ("" if results else " none (nothing new)"))
    for outcome in results:
        line = f"  {outcome['workbook']}: {outcome['status']}"
        if outcome["status"].startswith("loaded"):
            loaded = ", ".join(f"{table} {rows:,}" for table, rows in outcome["rows_loaded_per_table"].items())
            line += f": {loaded} rows loaded; {outcome['rows_rejected']:,} rows rejected"
            if outcome.get("rows_skipped"):
                line += f"; {outcome['rows_skipped']:,} rows of totals or template examples skipped"
        if outcome.get("reason"):
            line += f" ({outcome['reason']})"
        click.echo(line)
        for sheet, why in (outcome.get("ignored_sheets") or {}).items():
            click.echo(f"    sheet {sheet!r} not read: {why}")
        if outcome.get("feedback_workbook"):
            click.echo(f"    feedback workbook: {outcome['feedback_workbook']}")
    click.echo("\nWarehouse rows:")
    with db.transaction(os.environ[settings.DATABASE_URL]) as cursor:
        for table in SUMMARY_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            click.echo(f"  {table:<22} {cursor.fetchone()[0]:>9,}")
    click.echo("\nWhere things are:")
    for label, value in where.items():
        click.echo(f"  {label:<14} {value}")
    click.echo(f"  {'archive':<14} {load_settings().archive_dir}  (originals and feedback workbooks)")
    click.echo(f"  {'ledger':<14} table ops.import_ledger (rejected cells: ops.import_rejects)")
    dashboard = load_settings().dashboard_dir / "dashboard.json"
    if dashboard.exists():
        click.echo(f"  {'dashboard':<14} {dashboard}  (also marts.dashboard; KPIs in marts.daily_kpis)")
        print_dashboard(json.loads(dashboard.read_text()))


def print_dashboard(document: dict) -> None:
    revenue = document["headline"]["revenue"]
    change = f" ({revenue['change']:+.1%} on the week before)" if revenue["change"] is not None else ""
    click.echo(f"\nLast 7 days to {document['as_of']}: revenue {revenue['value']:,.2f}{change}")
    click.echo("Top products, last 7 days:")
    for product in document["top_products"]:
        name = product["name"] or product["product_id"]
        click.echo(f"  {product['rank']:>2}. {name:<32} {product['revenue']:>12,.2f}")
    health = ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in document["stock_health"].items())
    click.echo(f"Stock: {health}")


@main.command()
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the UI and the read API listen on.")
@click.option("--api-port", default=8000, show_default=True, help="Port of the read API and the dashboard page.")
@SIMULATOR_OPTION
def dev(port: int, host: str, api_port: int, simulator: bool) -> None:
    """Start the embedded services, the Dagster UI with its daemon (sensors and schedules run) and the read API."""
    check_api_settings(host)
    # On the embedded warehouse the demo retailer is served by default, and goes on trading: the nightly pulls find
    # its days. A configured warehouse gets made-up sales only when asked (--simulator).
    simulator = simulator or not os.environ.get(settings.DATABASE_URL)
    where = prepare_environment(simulator, live=True)
    for label, value in where.items():
        click.echo(f"{label:<14} {value}")
    if "java api" not in where:
        click.echo(f"{'java api':<14} not configured: the API schedules' runs fail until {settings.JAVA_API_BASE_URL}"
                   " is set (`sales-pipeline dev --simulator` serves the bundled simulator)")  # fmt: skip
    click.echo(f"Drop workbooks into {load_settings().inbox_dir}; the UI is on http://{host}:{port}")
    click.echo(f"The dashboard page and read API are on http://{host}:{api_port}/ (OpenAPI: /docs)")
    # The read API launches runs through this UI's GraphQL endpoint, unless another is configured.
    os.environ.setdefault(settings.DAGSTER_WEBSERVER_URL, f"http://{host}:{port}")
    api = subprocess.Popen(api_command(host, api_port), env=_absolute_folders(), start_new_session=True)
    # `dg dev` (Dagster's current CLI; `dagster dev` is superseded) with the project's workspace.yaml.
    command = [str(Path(sys.executable).with_name("dg")), "dev",
               "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)]  # fmt: skip
    # A background job inherits SIGINT ignored, and dg dev stops on SIGTERM and stops its webserver
    # and daemon through SIGINT's handler: with a handler here, the child starts with the default one.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Its own session, so that stopping it reaches its webserver, daemon, code server and runs. It runs in
    # DAGSTER_HOME, next to the dagster.yaml copied there (in the project folder it warns that the project's
    # is not used), with the folders the code location reads made absolute.
    process = subprocess.Popen(command, cwd=os.environ["DAGSTER_HOME"], env=_absolute_folders(),
                               start_new_session=True)  # fmt: skip
    try:
        code = process.wait()
    finally:  # Ctrl-C, SIGTERM or dg dev's own exit: before the embedded PostgreSQL stops (atexit)
        stop_process_group(process)
        stop_process_group(api)
    sys.exit(code)


def check_api_settings(host: str) -> None:
    """The settings read now (the read API's with the rest), so that a bad one, or no token off loopback, stops
    the command at once."""
    from sales_pipeline.api.security import check_listen_address

    load_settings()
    try:
        check_listen_address(host, settings.api_tokens())
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def api_command(host: str, port: int, workers: int = 1) -> list[str]:
    """uvicorn serving the read API over the warehouse this environment names."""
    return [sys.executable, "-m", "uvicorn", "--factory", "sales_pipeline.api.app:app_from_environment",
            "--host", host, "--port", str(port), "--workers", str(workers), "--no-server-header"]  # fmt: skip


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; other than loopback only with API_TOKENS set.")  # fmt: skip
@click.option("--port", default=8000, show_default=True, help="Port of the read API and the dashboard page.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="uvicorn worker processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the read API and the dashboard page over the warehouse (http://HOST:PORT/; OpenAPI at /docs)."""
    check_api_settings(host)
    prepare_environment()
    click.echo(f"The dashboard page and read API on http://{host}:{port}/ (OpenAPI: /docs); Ctrl-C stops them")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(api_command(host, port, workers), env=_absolute_folders(), start_new_session=True)
    try:
        code = process.wait()
    finally:  # before the embedded PostgreSQL stops (atexit)
        stop_process_group(process)
    sys.exit(code)


def _absolute_folders() -> dict[str, str]:
    """This environment, with the pipeline's folders as absolute paths, for a process running elsewhere."""
    config = load_settings()
    return {
        **os.environ,
        settings.HOME: str(config.home),
        settings.INBOX: str(config.inbox_dir),
        settings.MAPPINGS: str(config.mappings_dir),
        **({settings.ALERT_ROUTING: str(config.alerts.routing)} if config.alerts.routing else {}),
    }


def stop_process_group(process: subprocess.Popen, timeout_s: float = DEV_STOP_TIMEOUT_S) -> None:
    """Stop a process started in a session of its own, and every process it started: SIGTERM to its
    group, then SIGKILL to what still runs after `timeout_s` (or at a second Ctrl-C)."""
    group = process.pid  # a session's first process leads its group
    deadline = time.monotonic() + timeout_s
    _signal_group(group, signal.SIGTERM)
    try:
        while time.monotonic() < deadline and (process.poll() is None or _group_runs(group)):
            time.sleep(0.2)
    finally:
        _signal_group(group, signal.SIGKILL)
        process.wait()


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nobody left in the group
        os.killpg(group, signum)


def _group_runs(group: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: a container's first process
    may never reap the orphans it inherits."""
    proc = Path("/proc")
    if not proc.is_dir():  # macOS: zombies are reaped there
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _, process_group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if state != "Z" and int(process_group) == group:
            return True
    return False


@main.command()
@click.option("--scale", default=3, show_default=True, type=click.IntRange(1), help="Number of stores.")
@click.option("--seed", default=42, show_default=True, help="Same seed, same bytes.")
@click.option("--days", default=730, show_default=True, type=click.IntRange(7), help="Days of sales history.")
@click.option("--out", "out_dir", default="generated", show_default=True, type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["single", "monthly"]), default="monthly", show_default=True,
              help="One workbook, or master data + one sales workbook per month + stock.")  # fmt: skip
def generate(scale: int, seed: int, days: int, out_dir: Path, split: str) -> None:
    """Write a synthetic retailer's workbooks (deterministic by seed)."""
    from sales_pipeline.demo.retailer import generate_retailer, write_workbooks

    click.echo(f"Generating {scale} stores, {days} days (seed {seed})...")
    retailer = generate_retailer(scale=scale, seed=seed, days=days)
    paths = write_workbooks(retailer, out_dir, split=split)
    click.echo(f"{len(retailer.sales):,} order lines, {len(retailer.products)} products, "
               f"{len(retailer.customers):,} customers in {len(paths)} workbooks under {out_dir}")  # fmt: skip
    (out_dir / "planted_anomalies.json").write_text(json.dumps(retailer.planted.to_dict(), indent=2) + "\n")


@main.command()
@click.option("--out", "out_path", default="sales_import_template.xlsx", show_default=True,
              type=click.Path(path_type=Path, dir_okay=False))  # fmt: skip
def template(out_path: Path) -> None:
    """Write the import template workbook (Products, Stores, Customers, Sales, Stock, Calendar, Promotions)."""
    from sales_pipeline.excel.template import write_template

    click.echo(f"Wrote {write_template(out_path)}")


@main.command(
    "simulate-api",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.pass_context
def simulate_api(context: click.Context) -> None:
    """Serve the back office's API with the synthetic retailer, with fault injection (--help for the flags)."""
    from sales_pipeline.demo import simulator

    sys.exit(simulator.main(context.args))


@main.command("pull-sales")
@click.option("--from", "first_day", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First UTC day.")
@click.option("--to", "last_day", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last UTC day (included).")
@SIMULATOR_OPTION
def pull_sales(first_day: dt.datetime, last_day: dt.datetime, simulator: bool) -> None:
    """Backfill: pull these days of sales from the Java API in one run, as the UI's backfill of api_sales does."""
    if not simulator and not os.environ.get(settings.JAVA_API_BASE_URL):
        raise click.ClickException(
            f"{settings.JAVA_API_BASE_URL} is not set: set it to the back office's API, or pass --simulator"
            " to pull the bundled simulator's made-up sales"
        )
    where = prepare_environment(simulator)  # before the definitions load: they read the settings it sets
    from sales_pipeline.defs.analytics.sensors import range_tags

    click.echo(f"Java API: {where['java api']}")
    result = run_job("pull_sales", tags=range_tags(first_day.date(), last_day.date()))
    metadata = result.asset_materializations_for_node("ingest__api_sales")[0].metadata
    click.echo(f"Pulled {metadata['rows_pulled'].value:,} sales lines in {metadata['pages'].value} pages "
               f"({metadata['retries'].value} retries): {metadata['inserted'].value:,} new, "
               f"{metadata['updated'].value:,} changed, {metadata['removed'].value:,} removed")  # fmt: skip
    refresh_downstream()


@main.command(name="import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML mapping for a workbook of another layout (e.g. data/mappings/superstore.yaml).")  # fmt: skip
def import_command(path: Path, mapping: Path | None) -> None:
    """Import one workbook now, through the same Dagster asset the inbox sensor runs.

    The file is copied into the inbox first (under a name of its own if another file waits there under
    this one), so your copy is left where it is. Excel's lock files (~$name.xlsx) are skipped.

    Exit status: 0 loaded (or already loaded), 1 the import run failed, 2 a wrong command line,
    3 rejected (nothing loaded), 4 loaded with rows rejected (see the feedback workbook).
    """
    from sales_pipeline.excel.read import skipped_name

    if skipped_name(path.name):
        click.echo(f"{path.name} skipped: {skipped_name(path.name)}")
        return
    where = prepare_environment()
    inbox_copy = copy_into_inbox(path, load_settings().inbox_dir)
    results = import_one(inbox_copy, mapping)
    refresh_downstream()
    print_summary(results, where)
    failed = [outcome for outcome in results if outcome["status"] in ("failed", "rejected")]
    if failed:  # nothing of the file loaded: the command failed, whatever it printed
        error = click.ClickException(f"{path.name} was not imported ({failed[0]['status']}): {failed[0]['reason']}")
        error.exit_code = IMPORT_EXIT_CODES.get(failed[0]["status"], 1)  # rejected 3, failed 1
        raise error
    click.echo(NEXT_STEP)
    sys.exit(max(IMPORT_EXIT_CODES[outcome["status"]] for outcome in results))


def copy_into_inbox(path: Path, inbox: Path) -> Path:
    """A copy of `path` in the inbox that replaces nothing: written under a hidden name the sensor skips,
    then given the file's name, or `name (2).xlsx`... if that one is taken. A file already in the inbox
    (not through a link) is imported where it is."""
    from sales_pipeline.excel.importer import claim_name, move_exclusively

    if not path.is_symlink() and path.resolve().parent == inbox.resolve():
        return path
    partial = inbox / f".{uuid.uuid4().hex}.part"
    try:
        shutil.copyfile(path, partial)
        return claim_name(inbox, path.name, lambda destination: move_exclusively(partial, destination))
    finally:
        partial.unlink(missing_ok=True)


@main.command()
def refresh() -> None:
    """Bring every asset after the sources up to date for the current warehouse, as the daemon would.

    Core tables, the daily KPIs of every import and pull not yet in them, the marts, forecasts (only
    changed series are refitted) and anomalies; prints what it ran.
    """
    prepare_environment()
    refresh_downstream()
    click.echo("Up to date.")


@main.command()
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="The day reported on (default: the latest"
              " day with sales).")  # fmt: skip
@click.option("--scope", default="all", show_default=True, help="all, store:<store id> or category:<category>.")
@click.option("--locale", type=click.Choice(["en", "fr"]), help=f"Language (default: {settings.REPORT_LOCALE}, en).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the reports (default: $SALES_PIPELINE_HOME/reports).")  # fmt: skip
def report(day: dt.datetime | None, scope: str, locale: str | None, out_dir: Path | None) -> None:
    """Build the daily PDF report of a day for the chain, a store or a category, and print where it is."""
    from sales_pipeline.analytics.marts import last_complete_day
    from sales_pipeline.i18n import Formatter
    from sales_pipeline.reporting.build import build_report
    from sales_pipeline.reporting.data import Scope
    from sales_pipeline.warehouse import db

    try:
        parsed = Scope.parse(scope)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--scope") from error
    fmt = Formatter(locale or load_settings().report_locale, load_settings().report_currency)
    prepare_environment()
    with db.transaction(os.environ[settings.DATABASE_URL]) as cursor:
        when = day.date() if day else last_complete_day(cursor)
        if when is None:
            raise click.ClickException("no sales in the marts yet: import or pull sales first (`sales-pipeline demo`)")
        try:
            built, _ = build_report(cursor, when, parsed, fmt, load_settings().pipeline_timezone,
                                    out_dir or load_settings().reports_dir)  # fmt: skip
        except ValueError as error:
            raise click.ClickException(str(error)) from error
    click.echo(
        f"{built.path}\n{built.pages} pages, {built.bytes / 1024:,.0f} kB ({built.scope}, {built.day}, {built.locale})"
    )


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the workbook (default: $SALES_PIPELINE_HOME/reports).")  # fmt: skip
@click.option("--days", default=90, show_default=True, type=click.IntRange(1), help="Days of daily KPIs and trends.")
def export(out_dir: Path | None, days: int) -> None:
    """Write the analytics workbook (marts, forecasts, open alerts) and print where it is."""
    from sales_pipeline.analytics.marts import last_complete_day
    from sales_pipeline.defs.reporting.assets import EXPORT_FILE
    from sales_pipeline.reporting.export import build_export
    from sales_pipeline.warehouse import db

    prepare_environment()
    path = (out_dir or load_settings().reports_dir) / EXPORT_FILE
    with db.transaction(os.environ[settings.DATABASE_URL]) as cursor:
        last_day = last_complete_day(cursor)
        if last_day is None:
            raise click.ClickException("no sales in the marts yet: import or pull sales first (`sales-pipeline demo`)")
        rows = build_export(cursor, path, last_day, days)
    click.echo(str(path.resolve()))
    click.echo(", ".join(f"{sheet} {count:,}" for sheet, count in rows.items()) + " rows")


@main.group()
def alerts() -> None:
    """The alerts people act on: list them, acknowledge one (no more reminders), snooze one."""


@alerts.command("list")
@click.option("--status", type=click.Choice(["open", "acknowledged", "snoozed", "resolved"]),
              help="Only alerts in this status (default: every alert not resolved).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {id, kind, severity, status, message, since}.")
def alerts_list(status: str | None, as_json: bool) -> None:
    """The alerts, most severe and newest first."""
    from sales_pipeline.alerts.render import alert_record
    from sales_pipeline.alerts.store import read_alerts
    from sales_pipeline.i18n import Formatter
    from sales_pipeline.warehouse import db

    prepare_environment()
    config = load_settings()
    fmt = Formatter(config.report_locale, config.report_currency)
    with db.transaction(os.environ[settings.DATABASE_URL]) as cursor:
        rows = read_alerts(cursor, status).to_dict("records")
    records = [alert_record(r, fmt, config.dagster_webserver_url, config.pipeline_timezone) for r in rows]
    if as_json:
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("No alerts" + (f" {status}" if status else " open") + ".")
    for record in records:
        click.echo(f"{record['id']:>5}  {record['severity']:<8} {record['status']:<12} {record['since'][:16]}  "
                   f"{record['message']}")  # fmt: skip


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", default=lambda: os.environ.get("USER") or "someone", show_default="$USER",
              help="Who is on it (recorded with the alert).")  # fmt: skip
def alerts_ack(alert_id: int, by: str) -> None:
    """Acknowledge an alert: someone is on it, so it is not reminded again (its resolved note still goes)."""
    from sales_pipeline.alerts.store import acknowledge

    prepare_environment()
    change_alert(lambda cursor: acknowledge(cursor, alert_id, by))
    click.echo(f"Alert {alert_id} acknowledged by {by}: no more reminders.")


@alerts.command("snooze")
@click.argument("alert_id", type=int)
@click.option("--until", "until", required=True, type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]),
              help=f"A day (its start) or a time, in {settings.PIPELINE_TIMEZONE}.")  # fmt: skip
def alerts_snooze(alert_id: int, until: dt.datetime) -> None:
    """No reminders of an alert until a day; then it is open again."""
    from zoneinfo import ZoneInfo

    from sales_pipeline.alerts.store import snooze

    prepare_environment()
    moment = until.replace(tzinfo=ZoneInfo(load_settings().pipeline_timezone))
    change_alert(lambda cursor: snooze(cursor, alert_id, moment))
    click.echo(f"Alert {alert_id} snoozed until {moment.isoformat()}.")


def change_alert(change: Callable[[Cursor], None]) -> None:
    """One change to an alert in its own transaction; an unknown alert or a wrong state is a one-line error."""
    from sales_pipeline.alerts.store import AlertError
    from sales_pipeline.warehouse import db

    try:
        with db.transaction(os.environ[settings.DATABASE_URL]) as cursor:
            change(cursor)
    except AlertError as error:
        raise click.ClickException(str(error)) from None
