"""Delivery with Dagster: the sensors decide, a run sends.

- `notification_delivery_sensor` (every 15 s) reads what is due (`decide`: new critical alerts, reminders,
  resolved notes, the daily digest, outbox rows waiting) and requests one run of `deliver_notifications`
  with a run key naming that batch: a tick evaluated twice, timed out or resumed requests the same key,
  and Dagster launches one run. The cursor remembers when each batch was requested; a batch still due
  after `REQUEST_AGAIN_AFTER` (its run failed to start or died) is requested again under a new key.
- `engineers_run_failure_sensor` requests a run that queues and sends the engineers' email and the
  webhook's card about a failed run, unless Dagster will retry it (the `dagster/will_retry` tag). A
  blocking asset check that fails fails its run, so it is told the same way, naming the check.
- `late_assets_sensor` (every minute) reads Dagster's freshness state of the assets the daily reports read
  (`FRESH_DAILY`) and requests a run that queues and sends the engineers' email and card about each asset
  late today, once per asset and day: its cursor keeps the (asset, day) pairs requested, the run key names them,
  and the outbox queues a (kind, recipient, asset and day) once, whoever asks again.
- The run materializes `alerts/notifications`: it writes the messages due and sends the outbox (see
  sales_pipeline/alerts/delivery.py), with a RetryPolicy for the step itself. Its check warns when a
  message has waited more than an hour.
"""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState  # Dagster 1.13 exports no public name for it
from pydantic import Field

from sales_pipeline.alerts.delivery import (
    LateAsset,
    RunFailure,
    decide,
    deliver,
    enqueue_late_asset,
    enqueue_run_failure,
    redact,
)
from sales_pipeline.alerts.outbox import outbox_summary, waiting_since
from sales_pipeline.alerts.store import open_counts
from sales_pipeline.defs.conventions import FRESH_DAILY, NETWORK_RETRY, WAREHOUSE_POOL
from sales_pipeline.resources import AlertingResource, WarehouseResource

NOTIFICATIONS_KEY = dg.AssetKey(["alerts", "notifications"])
ANOMALY_KEYS = [dg.AssetKey(["anomalies", name]) for name in ("sales_drops", "stock_risks", "customer_churn")]
REQUEST_AGAIN_AFTER = dt.timedelta(minutes=10)
PENDING_TOO_LONG = dt.timedelta(hours=1)
NOBODY_TO_TELL = "Neither ENGINEER_EMAILS nor ALERT_WEBHOOK_URL is set: nobody to tell"  # of failed runs, late assets
RUN_FAILURE_TAG = "sales_pipeline/run_failure_of"  # on the runs telling of a failed run: never told themselves
WILL_RETRY_TAG = "dagster/will_retry"


class DeliveryConfig(dg.Config):
    failed_run_id: str = Field(default="", description="A failed run to tell the engineers about; blank: none.")
    late_assets: list[str] = Field(default=[], description="Late assets (keys) to tell the engineers about.")
    late_on: str = Field(default="", description="The day (PIPELINE_TIMEZONE) they were late on, as the sensor saw it.")


@dg.asset(
    key=NOTIFICATIONS_KEY,
    group_name="alerts",
    kinds={"python", "email"},
    deps=ANOMALY_KEYS,
    description=(
        "The outbox (ops.notifications): writes the messages the alert policy says are due (critical alerts at "
        "once, grouped per recipient; reminders; resolved notes; the daily digest of warnings) and sends every "
        "message due by email (or .eml files) and to the webhook, marking each sent once the server accepted it. "
        "Runs telling the engineers of a failed run or a late asset queue that news and only send."
    ),
    metadata={"dagster/table_name": "ops.notifications"},
    retry_policy=NETWORK_RETRY,
    pool=WAREHOUSE_POOL,
)
def notifications(
    context: dg.AssetExecutionContext,
    config: DeliveryConfig,
    warehouse: WarehouseResource,
    alerting: AlertingResource,
) -> dg.MaterializeResult:
    settings = alerting.config()
    if config.failed_run_id:
        failure = run_failure(context.instance, config.failed_run_id, settings.secrets)
        with warehouse.transaction() as cursor:
            enqueue_run_failure(cursor, failure, settings)
    if config.late_assets:
        with warehouse.transaction() as cursor:
            for late in late_assets(context.instance, config.late_assets, config.late_on):
                enqueue_late_asset(cursor, late, settings)
    # A run telling the engineers only sends: planning alerts (a bad routing file) must not stop the news.
    report = deliver(warehouse.transaction, settings, plan=not (config.failed_run_id or config.late_assets))
    for error in report.errors:
        context.log.warning(error)
    with warehouse.transaction() as cursor:
        outbox = outbox_summary(cursor, dt.datetime.now(dt.UTC))
        open_alerts = open_counts(cursor)
    return dg.MaterializeResult(
        metadata={
            **report.as_metadata(),
            "errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in report.errors[:20]) or "none"),
            "open_alerts": dg.MetadataValue.json(open_alerts),
            "outbox": dg.MetadataValue.json(outbox),
            "oldest_pending_minutes": outbox["oldest_pending_minutes"] or 0.0,
        }
    )


@dg.asset_check(
    asset=NOTIFICATIONS_KEY,
    name="no_message_pending_over_an_hour",
    description="Warns when a message has waited more than an hour (the mail server or the webhook is down).",
)
def no_message_pending_over_an_hour(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.transaction() as cursor:
        outbox = outbox_summary(cursor, dt.datetime.now(dt.UTC))
        late = waiting_since(cursor, PENDING_TOO_LONG, limit=5)
    lines = [f"- {n} {kind} ({channel}), {tries} attempts: {error}" for n, kind, channel, tries, error in late]
    return dg.AssetCheckResult(
        passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "oldest_pending_minutes": outbox["oldest_pending_minutes"] or 0.0,
            "late": dg.MetadataValue.md("\n".join(lines) or "none"),
        },
    )


deliver_notifications_job = dg.define_asset_job(
    "deliver_notifications",
    selection=dg.AssetSelection.assets(NOTIFICATIONS_KEY),
    description="Write the alert messages due and send the outbox (the delivery sensor requests it).",
)


@dg.sensor(
    job=deliver_notifications_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a delivery run when messages are due: new critical alerts, reminders, resolved notes, "
    "the daily digest, or outbox rows waiting (one run key per batch).",
)
def notification_delivery_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, alerting: AlertingResource
) -> dg.SensorResult:
    now = dt.datetime.now(dt.UTC)
    with warehouse.transaction() as cursor:
        batch = decide(cursor, alerting.config(), now)
    if not batch.planned and not batch.due:
        return dg.SensorResult(skip_reason="Nothing to send", cursor=context.cursor)
    requested: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
    generation, at = requested.get(batch.key, [0, None])
    if at and now - dt.datetime.fromisoformat(at) < REQUEST_AGAIN_AFTER:
        return dg.SensorResult(skip_reason=f"Requested already: {batch.summary()}", cursor=context.cursor)
    if at:
        generation += 1  # the same batch is still due: its run never ran or died
    # Only this batch is kept: a batch that is no longer due is done.
    cursor = json.dumps({batch.key: [generation, now.isoformat()]})
    request = dg.RunRequest(run_key=f"deliver-{batch.key}-{generation}", tags={"sales_pipeline/batch": batch.key})
    context.log.info(batch.summary())
    return dg.SensorResult(run_requests=[request], cursor=cursor)


@dg.run_failure_sensor(
    name="engineers_run_failure_sensor",
    request_job=deliver_notifications_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Emails ENGINEER_EMAILS (and the webhook) about a run that failed and will not be retried, "
    "with the failed step, the error's first lines and the run's link. A failing blocking check fails its run.",
)
def engineers_run_failure_sensor(context: dg.RunFailureSensorContext, alerting: AlertingResource):
    run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return dg.SkipReason(f"Run {run.run_id} of {run.job_name} will be retried")
    if RUN_FAILURE_TAG in run.tags:
        return dg.SkipReason(f"Run {run.run_id} was itself telling of a failed run")
    settings = alerting.config()
    if not settings.engineers and not settings.webhook_url:
        return dg.SkipReason(NOBODY_TO_TELL)
    return dg.RunRequest(
        run_key=f"run-failure-{run.run_id}",
        run_config={"ops": {"alerts__notifications": {"config": {"failed_run_id": run.run_id}}}},
        tags={RUN_FAILURE_TAG: run.run_id},
    )


@dg.sensor(
    job=deliver_notifications_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Emails ENGINEER_EMAILS (and the webhook) about each asset the daily reports read that its freshness "
    "policy says is late (not rebuilt by REPORT_SEND_TIME), once per asset and day.",
)
def late_assets_sensor(context: dg.SensorEvaluationContext, alerting: AlertingResource) -> dg.SensorResult:
    settings = alerting.config()
    if not settings.engineers and not settings.webhook_url:
        return dg.SensorResult(skip_reason=NOBODY_TO_TELL)
    records = context.instance.get_freshness_state_records(sorted(FRESH_DAILY))
    late = sorted(
        key.to_user_string() for key, record in records.items() if record.freshness_state == FreshnessState.FAIL
    )
    day = dt.datetime.now(ZoneInfo(settings.policy.timezone)).date().isoformat()
    told: list[str] = json.loads(context.cursor).get(day, []) if context.cursor else []
    new = [asset for asset in late if asset not in told]
    if not new:
        return dg.SensorResult(skip_reason=f"Late and told today: {', '.join(late) or 'none'}", cursor=context.cursor)
    request = dg.RunRequest(
        run_key=f"late-assets-{day}-{','.join(new)}",
        # The day travels with the request: a run starting after midnight still tells of the day it was late on.
        run_config={"ops": {"alerts__notifications": {"config": {"late_assets": new, "late_on": day}}}},
    )
    context.log.info(f"Late: {', '.join(new)}")
    return dg.SensorResult(run_requests=[request], cursor=json.dumps({day: told + new}))  # only today's kept


def late_assets(instance: dg.DagsterInstance, assets: list[str], day: str) -> list[LateAsset]:
    """What the engineers are told about each asset: since when it is late, when it was last built."""
    keys = [dg.AssetKey.from_user_string(asset) for asset in assets]
    records = instance.get_freshness_state_records(keys)
    told = []
    for key in keys:
        event = instance.get_latest_materialization_event(key)
        updated = dt.datetime.fromtimestamp(event.timestamp, dt.UTC) if event else None
        since = records[key].updated_at if key in records else dt.datetime.now(dt.UTC)
        told.append(LateAsset(key.to_user_string(), since, updated, dt.date.fromisoformat(day)))
    return told


def run_failure(instance: dg.DagsterInstance, run_id: str, secrets: tuple[str, ...]) -> RunFailure:
    """What the engineers are told about a failed run: its job, the failed step(s) and the error."""
    run = instance.get_run_by_id(run_id)
    job = run.job_name if run else "?"
    records = instance.get_records_for_run(run_id=run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    failures = [record.event_log_entry.dagster_event for record in records]
    if failures:
        steps = ", ".join(dict.fromkeys(event.step_key for event in failures))
        error = failures[0].event_specific_data.error
        lines = []
        while error is not None:  # the user's exception and what caused it, without the stack traces
            lines += error.message.strip().splitlines()
            error = error.cause
        text = "\n".join(lines)
    else:
        records = instance.get_records_for_run(run_id=run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        steps = "-"
        text = records[-1].event_log_entry.dagster_event.message if records else "the run failed"
    return RunFailure(run_id=run_id, job=job, step=steps, error=redact(text or "", secrets))


alert_assets = [notifications]
alert_checks = [no_message_pending_over_an_hour]
alert_sensors = [notification_delivery_sensor, engineers_run_failure_sensor, late_assets_sensor]
