"""Delivery the Dagster way: the sensors decide, a run sends; run failures reach the engineers once.

Real PostgreSQL, a real SMTP server with STARTTLS (the client trusts the test CA through SSL_CERT_FILE,
as any deployment's would through its system store) and a real webhook receiver.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from sales_pipeline.defs.alerts.delivery import (
    deliver_notifications_job,
    engineers_run_failure_sensor,
    late_assets_sensor,
    no_message_pending_over_an_hour,
    notification_delivery_sensor,
    notifications,
)
from sales_pipeline.resources import AlertingResource, WarehouseResource
from sales_pipeline_tests import test_alerts
from sales_pipeline_tests.conftest import query
from sales_pipeline_tests.receivers import PASSWORD, USER, Mailbox, WebhookReceiver, certificates, smtp_server
from sales_pipeline_tests.test_alerts import LYON, detect, stock_risk

shop = test_alerts.shop  # the fixture: two stores, a coffee product, a customer
ENGINEER = "oncall@shop.example"
API_TOKEN = "java-api-token-0123456789"


@pytest.fixture
def certs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    found = certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(found.ca_file))
    monkeypatch.setenv("JAVA_API_TOKEN", API_TOKEN)
    return found


def resources(url: str, tmp_path: Path, port: int, webhook: str | None = None) -> dict:
    alerting = AlertingResource(
        smtp_host="127.0.0.1", smtp_port=port, smtp_user=USER, smtp_password=PASSWORD, smtp_timeout_s=5,
        email_from="alerts@shop.example", manager_emails=[LYON], engineer_emails=[ENGINEER], webhook_url=webhook,
        outbox_dir=str(tmp_path / "outbox"), timezone="UTC",
    )  # fmt: skip
    return {"warehouse": WarehouseResource(database_url=url), "alerting": alerting}


def defs_for(url: str, tmp_path: Path, port: int, webhook: str | None = None, jobs: tuple = ()) -> dg.Definitions:
    return dg.Definitions(
        assets=[notifications],
        asset_checks=[no_message_pending_over_an_hour],
        jobs=[deliver_notifications_job, *jobs],
        sensors=[notification_delivery_sensor, engineers_run_failure_sensor],
        resources=resources(url, tmp_path, port, webhook),
    )


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources)
    return defs.resolve_sensor_def("notification_delivery_sensor").evaluate_tick(context)


def test_a_tick_evaluated_twice_requests_one_run_and_two_runs_send_one_email(shop, certs, tmp_path):
    detect(shop, stock_risk())
    mailbox = Mailbox()
    with smtp_server("starttls", certs, mailbox) as port, WebhookReceiver() as hook, dg.instance_for_test() as instance:
        defs = defs_for(shop, tmp_path, port, hook.url)
        first, again = tick(defs, instance), tick(defs, instance)
        [request] = first.run_requests
        assert [r.run_key for r in again.run_requests] == [request.run_key]  # Dagster launches one run
        assert tick(defs, instance, first.cursor).run_requests == []  # the next tick: requested already
        job = defs.resolve_job_def("deliver_notifications")
        for _ in range(2):
            result = job.execute_in_process(instance=instance, run_config={}, tags=request.tags)
            assert result.success
        metadata = result.asset_materializations_for_node("alerts__notifications")[0].metadata
        assert tick(defs, instance, first.cursor).run_requests == []  # nothing due any more
    assert [r.rcpt_tos for r in mailbox.received] == [[LYON]] and len(hook.bodies) == 1
    assert metadata["sent"].value == 0 and metadata["outbox"].value["sent"] == 2
    assert metadata["open_alerts"].value == {"critical": 1, "warning": 0, "info": 0}


@dg.asset
def nightly_pull() -> None:
    raise RuntimeError(f"the back office refused the token {API_TOKEN}\nsecond line of the error")


@dg.asset
def counted() -> int:
    return 1


@dg.asset_check(asset=counted, blocking=True)
def counts_reconcile() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="off by one")


failing_job = dg.define_asset_job("nightly_pull_job", selection=[nightly_pull])
checked_job = dg.define_asset_job("counted_job", selection=dg.AssetSelection.assets(counted))


def failure_request(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, tags: dict | None = None):
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    context = dg.build_run_status_sensor_context(
        sensor_name="engineers_run_failure_sensor",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=run,
        resources=defs.resources,
        repository_def=defs.get_repository_def(),
    )
    return engineers_run_failure_sensor(context)


def test_a_failed_run_emails_the_engineers_once_naming_the_step_without_secrets(shop, certs, tmp_path):
    mailbox = Mailbox()
    with smtp_server("starttls", certs, mailbox) as port, WebhookReceiver() as hook, dg.instance_for_test() as instance:
        defs = defs_for(shop, tmp_path, port, hook.url, jobs=(failing_job, checked_job))
        defs = dg.Definitions.merge(
            defs, dg.Definitions(assets=[nightly_pull, counted], asset_checks=[counts_reconcile])
        )
        request = failure_request(defs, instance, "nightly_pull_job")
        assert isinstance(request, dg.RunRequest) and request.run_key.startswith("run-failure-")
        deliver = defs.resolve_job_def("deliver_notifications")
        for _ in range(2):  # the request's run, twice: still one email
            assert deliver.execute_in_process(
                instance=instance, run_config=request.run_config, tags=request.tags
            ).success
        check_request = failure_request(defs, instance, "counted_job")
        deliver.execute_in_process(instance=instance, run_config=check_request.run_config, tags=check_request.tags)
        # The delivery runs' logs, metadata and run config hold no secret (the failed run's own log is its code's).
        delivery_runs = instance.get_runs(dg.RunsFilter(job_name="deliver_notifications"))
        logs = "".join(f"{run.run_config}{entry}" for run in delivery_runs for entry in instance.all_logs(run.run_id))
    first, second = (r.message for r in mailbox.received)
    assert first["To"] == ENGINEER and first["Subject"] == "Run failed: nightly_pull_job, step nightly_pull"
    body = first.get_body(("plain",)).get_content()
    assert "RuntimeError: the back office refused the token ***" in body and "second line of the error" in body
    assert "http://127.0.0.1:3000/runs/" in body
    assert "counted_job, step counted" in second["Subject"]
    assert "blocking asset check failed" in second.get_body(("plain",)).get_content()
    assert len(hook.bodies) == 2
    raw = b"".join(r.raw for r in mailbox.received).decode() + str(hook.bodies)
    assert API_TOKEN not in raw and PASSWORD not in raw
    assert len(delivery_runs) == 3
    assert API_TOKEN not in logs and PASSWORD not in logs and hook.url not in logs and "xoxb-webhook" not in logs
    assert query(shop, "SELECT count(*) FROM ops.notifications WHERE kind = 'run_failure'") == [(4,)]


def test_a_run_that_will_be_retried_tells_nobody(shop, certs, tmp_path):
    overrides = {"run_retries": {"enabled": True, "max_retries": 1}}
    with dg.instance_for_test(overrides=overrides) as instance:
        defs = dg.Definitions.merge(
            defs_for(shop, tmp_path, 25, jobs=(failing_job,)), dg.Definitions(assets=[nightly_pull])
        )
        skipped = failure_request(defs, instance, "nightly_pull_job")
        assert isinstance(skipped, dg.SkipReason) and "will be retried" in skipped.skip_message
        last_try = failure_request(defs, instance, "nightly_pull_job", tags={"dagster/max_retries": "0"})
        assert isinstance(last_try, dg.RunRequest)


def test_a_message_waiting_over_an_hour_warns_in_the_check(shop, certs, tmp_path):
    import datetime as dt

    from sales_pipeline.alerts import outbox
    from sales_pipeline.warehouse.db import transaction

    message = outbox.Message("report", "email", LYON, "daily:S02", "Report", "Your report.")
    with transaction(shop) as cursor:
        outbox.enqueue(cursor, message, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    with smtp_server("starttls", certs, Mailbox()) as port:
        pass  # nobody listens there any more: the message waits
    with dg.instance_for_test() as instance:
        result = (
            defs_for(shop, tmp_path, port)
            .resolve_job_def("deliver_notifications")
            .execute_in_process(instance=instance)
        )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "no_message_pending_over_an_hour" and not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "unreachable: ConnectionRefusedError" in evaluation.metadata["late"].value
    metadata = result.asset_materializations_for_node("alerts__notifications")[0].metadata
    assert metadata["retrying"].value == 1 and metadata["oldest_pending_minutes"].value >= 120


def test_a_late_asset_emails_the_engineers_once_a_day(shop, certs, tmp_path):
    mailbox = Mailbox()
    kpis = dg.AssetKey(["marts", "daily_kpis"])
    with smtp_server("starttls", certs, mailbox) as port, dg.instance_for_test() as instance:
        defs = dg.Definitions(assets=[notifications], jobs=[deliver_notifications_job], sensors=[late_assets_sensor],
                              resources=resources(shop, tmp_path, port))  # fmt: skip
        deliver, sensor = defs.resolve_job_def("deliver_notifications"), defs.resolve_sensor_def("late_assets_sensor")
        # What Dagster's freshness daemon records when the KPIs were not rebuilt by the report hour.
        instance.report_runless_asset_event(
            FreshnessStateChange(
                key=kpis,
                new_state=FreshnessState.FAIL,
                previous_state=FreshnessState.PASS,
                state_change_timestamp=time.time(),
            )
        )
        cursor, ticks = None, []
        for _ in range(2):  # two ticks while it stays late: the second requests nothing
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
            )
            tick = sensor.evaluate_tick(context)
            cursor = tick.cursor
            ticks.append(tick)
            for request in tick.run_requests:
                for _ in range(2):  # the request's run, twice (a retried run): still one email
                    assert deliver.execute_in_process(instance=instance, run_config=request.run_config).success

    assert [len(tick.run_requests) for tick in ticks] == [1, 0]
    assert ticks[1].skip_message == "Late and told today: marts/daily_kpis"
    (email,) = (received.message for received in mailbox.received)
    assert email["To"] == ENGINEER and email["Subject"] == "Late: marts/daily_kpis"
    body = email.get_body(("plain",)).get_content()
    assert "marts/daily_kpis was not rebuilt in time" in body and "Last rebuilt: never" in body
    assert "http://127.0.0.1:3000/assets/marts/daily_kpis" in body
    assert query(shop, "SELECT kind, recipient, state FROM ops.notifications") == [("late_asset", ENGINEER, "sent")]
