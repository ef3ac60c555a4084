"""Delivery: decide what is due (the sensor), then write the messages and send the outbox (the run).

`decide` only reads: the messages the policy would write now and the outbox rows due now, and a key
naming that batch (the run key). `deliver` is the run's work: under a lock, plan again and write the
messages in one transaction, then claim due rows (FOR UPDATE SKIP LOCKED), send each and mark it sent
right after the server accepted it; a refusal is recorded with backoff (see outbox.py).

Secrets (SMTP_PASSWORD, ALERT_WEBHOOK_URL, JAVA_API_TOKEN, API_TOKENS) never reach a message, a log
or the outbox: errors are built without them, and `redact` removes any that still slipped into a
text from elsewhere (an exception's message quoted in a run-failure email).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from psycopg2.extensions import cursor as Cursor

from sales_pipeline.alerts import outbox, policy
from sales_pipeline.alerts.charts import AlertCharts
from sales_pipeline.alerts.mail import DeliveryError, EmlWriter, SmtpSender, SmtpSettings
from sales_pipeline.alerts.render import (
    MAX_TOLD,
    Rendered,
    alerts_message,
    late_asset_message,
    run_failure_message,
    view,
)
from sales_pipeline.alerts.routing import Routing
from sales_pipeline.alerts.store import ALERT_COLUMNS, wake_snoozed
from sales_pipeline.alerts.webhook import WebhookSender, webhook_format
from sales_pipeline.i18n import Formatter
from sales_pipeline.warehouse.db import Transaction, read_frame, refresh_in_turn

ERROR_LINES = 12  # of a failed run's error, in the engineers' email
CHARTED_KINDS = ("sales_drop", "stock_risk")


@dataclass(frozen=True)
class AlertingConfig:
    """Everything delivery needs, read from the settings once (AlertingResource builds it)."""

    smtp: SmtpSettings
    outbox_dir: Path
    routing: Routing = field(default_factory=lambda: Routing(()))
    policy: policy.Policy = field(default_factory=policy.Policy)
    webhook_url: str | None = None
    webhook_format: str | None = None
    engineers: tuple[str, ...] = ()
    webserver_url: str = "http://127.0.0.1:3000"
    locale: str = "en"
    currency: str = "EUR"
    secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:  # dataclasses would print the password and the webhook's URL
        return f"AlertingConfig(smtp_host={self.smtp.host!r}, routes={len(self.routing.routes)})"

    @property
    def formatter(self) -> Formatter:
        return Formatter(self.locale, self.currency)

    @property
    def domain(self) -> str:
        """The sender's domain: the right-hand side of every Message-ID."""
        return self.smtp.sender.rpartition("@")[2] or "localhost"


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class Batch:
    planned: list[policy.Planned]
    due: list[tuple[int, int]]  # (notification id, attempts)

    @property
    def key(self) -> str:
        """Names this batch: the same work always gets the same key (and so one run)."""
        parts = sorted(f"{p.kind}|{p.channel}|{p.recipient}|{p.group_key}" for p in self.planned)
        parts += [f"{notification_id}#{attempts}" for notification_id, attempts in self.due]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def summary(self) -> str:
        kinds = Counter(p.kind for p in self.planned)
        planned = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        return f"{len(self.due)} messages due" + (f"; to write: {planned}" if planned else "")


def decide(cursor: Cursor, config: AlertingConfig, now: dt.datetime) -> Batch:
    """What a delivery run would write and send now. Reads only."""
    state = policy.read_state(cursor, now)
    return Batch(policy.plan(state, config.routing, config.policy, now), outbox.due(cursor, now))


def plan_and_write(cursor: Cursor, config: AlertingConfig, now: dt.datetime) -> list[policy.Planned]:
    """Plan under a lock (two runs take turns) and write the messages, in the caller's transaction."""
    refresh_in_turn(cursor, "ops.notifications:plan")
    wake_snoozed(cursor, now)
    config.routing.check_known(cursor)
    planned = policy.plan(policy.read_state(cursor, now), config.routing, config.policy, now)
    write_plan(cursor, planned, config, now)
    return planned


def write_plan(cursor: Cursor, planned: list[policy.Planned], config: AlertingConfig, now: dt.datetime) -> None:
    """Render each planned message (charts drawn once per alert) and queue it."""
    # Only what the messages tell in full is read and put into words; the rest is counted.
    ids = sorted({i for p in planned for i in (*p.alert_ids[:MAX_TOLD], *p.inhibited_ids, *p.earlier_ids[:MAX_TOLD])})
    if not ids:
        return
    alerts = read_frame(cursor, f"SELECT {ALERT_COLUMNS} FROM ops.alerts WHERE alert_id = ANY(%s)", (ids,))
    rows = {int(row["alert_id"]): row for row in alerts.to_dict("records")}
    fmt = config.formatter
    views = {i: view(row, fmt, config.webserver_url, config.policy.timezone) for i, row in rows.items()}
    charts: dict[int, bytes | None] = {}
    draw = AlertCharts(cursor, fmt)
    day = now.astimezone(ZoneInfo(config.policy.timezone)).date()
    for p in planned:
        lead = next((i for i in p.alert_ids[:MAX_TOLD] if rows[i]["kind"] in CHARTED_KINDS), None)
        chart = None
        if p.channel == "email" and p.kind in ("first", "reminder") and lead is not None:
            if lead not in charts:
                charts[lead] = draw.png(rows[lead])
            chart = charts[lead]
        # The charted alert is told first, so the chart sits under it.
        told = [lead, *(i for i in p.alert_ids[:MAX_TOLD] if i != lead)] if chart else list(p.alert_ids[:MAX_TOLD])
        cid = f"chart-{lead}@{config.domain}" if chart else None
        rendered = alerts_message(
            p.kind,
            [views[i] for i in told],
            fmt,
            day,
            inhibited=[views[i] for i in p.inhibited_ids],
            earlier=[views[i] for i in p.earlier_ids[:MAX_TOLD]],
            untold=len(p.alert_ids) - len(told),
            repeat_hours=config.policy.repeat_hours,
            chart_cid=cid,
        )
        attachments = (
            (outbox.Attachment(f"alert-{lead}.png", "image/png", data=chart, content_id=cid),) if chart else ()
        )
        message = outbox.Message(
            kind=p.kind,
            channel=p.channel,
            recipient=p.recipient,
            group_key=p.group_key,
            subject=rendered.subject,
            body_text=rendered.body_text,
            body_html=rendered.body_html if p.channel == "email" else None,
            content=rendered.content,
            attachments=attachments,
            alert_ids=(*p.alert_ids, *p.earlier_ids),
            inhibited_alert_ids=p.inhibited_ids,
        )
        outbox.enqueue(cursor, message, config.domain, now)


@dataclass(frozen=True)
class RunFailure:
    """A run that failed and will not be retried, as the engineers are told about it."""

    run_id: str
    job: str
    step: str
    error: str


def enqueue_run_failure(cursor: Cursor, failure: RunFailure, config: AlertingConfig) -> list[int]:
    """Queue the engineers' email (ENGINEER_EMAILS) and the webhook's card about `failure`, once per run."""
    lines = redact(failure.error, config.secrets).strip().splitlines()[:ERROR_LINES]
    link = f"{config.webserver_url}/runs/{failure.run_id}"
    rendered = run_failure_message(failure.job, failure.step, lines, link, config.formatter)
    return _enqueue_for_engineers(cursor, "run_failure", f"run:{failure.run_id}", rendered, config)


@dataclass(frozen=True)
class LateAsset:
    """An asset its freshness policy says is late, as the engineers are told about it."""

    asset: str  # its key, as the UI writes it (marts/daily_kpis)
    since: dt.datetime  # when it became late
    updated: dt.datetime | None  # its last materialization; None: never built
    day: dt.date  # the day (PIPELINE_TIMEZONE) it was late on: one message per asset and day


def enqueue_late_asset(cursor: Cursor, late: LateAsset, config: AlertingConfig) -> list[int]:
    """Queue the engineers' email and the webhook's card about `late`, once per asset and day."""
    zone = ZoneInfo(config.policy.timezone)
    fmt = config.formatter
    since = fmt.datetime(late.since.astimezone(zone))
    updated = fmt.datetime(late.updated.astimezone(zone)) if late.updated else None
    link = f"{config.webserver_url}/assets/{late.asset}"
    rendered = late_asset_message(late.asset, since, updated, link, fmt)
    return _enqueue_for_engineers(cursor, "late_asset", f"late:{late.asset}:{late.day}", rendered, config)


def _enqueue_for_engineers(
    cursor: Cursor, kind: str, group_key: str, rendered: Rendered, config: AlertingConfig
) -> list[int]:
    """Queue `rendered` to each of ENGINEER_EMAILS and the webhook; the ids of the rows new in the outbox."""
    recipients = [("email", address) for address in config.engineers]
    if config.webhook_url:
        recipients.append(("webhook", outbox.WEBHOOK_RECIPIENT))
    queued = []
    for channel, recipient in recipients:
        message = outbox.Message(
            kind=kind,
            channel=channel,
            recipient=recipient,
            group_key=group_key,
            subject=rendered.subject,
            body_text=rendered.body_text,
            body_html=rendered.body_html if channel == "email" else None,
            content=rendered.content,
        )
        notification_id = outbox.enqueue(cursor, message, config.domain)
        if notification_id is not None:
            queued.append(notification_id)
    return queued


@dataclass
class DeliveryReport:
    planned: Counter = field(default_factory=Counter)  # messages written, per kind
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # redacted, one per refusal

    def as_metadata(self) -> dict:
        return {"written": dict(self.planned), "sent": self.sent, "retrying": self.retrying, "failed": self.failed}


def deliver(
    transaction: Transaction,
    config: AlertingConfig,
    now: dt.datetime | None = None,
    plan: bool = True,
    ssl_context: ssl.SSLContext | None = None,
    batch_size: int = 50,
) -> DeliveryReport:
    """Write what the policy says is due (unless `plan` is False), then send every due outbox row.

    `transaction` opens each transaction (e.g. `WarehouseResource.transaction`): the plan is one, each claim
    of a batch one, and each row's outcome one, after its send, so that no transaction waits on a server.
    """
    now = now or dt.datetime.now(dt.UTC)
    report = DeliveryReport()
    if plan:
        with transaction() as cursor:
            report.planned.update(p.kind for p in plan_and_write(cursor, config, now))
    with ExitStack() as stack:
        senders = _senders(config, ssl_context, stack)
        while True:
            with transaction() as cursor:
                batch = outbox.claim(cursor, now, batch_size)
            if not batch:
                break
            for outgoing in batch:
                _send_one(transaction, outgoing, senders, config, now, report)
    return report


def _senders(config: AlertingConfig, context: ssl.SSLContext | None, stack: ExitStack) -> dict:
    email = SmtpSender(config.smtp, context) if config.smtp.host else EmlWriter(config.outbox_dir, config.smtp.sender)
    senders = {"email": stack.enter_context(email)}
    if config.webhook_url:
        sender = WebhookSender(config.webhook_url, webhook_format(config.webhook_url, config.webhook_format))
        senders["webhook"] = stack.enter_context(sender)
    return senders


def _send_one(
    transaction: Transaction,
    outgoing: outbox.Outgoing,
    senders: dict,
    config: AlertingConfig,
    now: dt.datetime,
    report: DeliveryReport,
) -> None:
    sender = senders.get(outgoing.channel)
    try:
        if sender is None:
            raise DeliveryError("ALERT_WEBHOOK_URL is not set any more: nowhere to send it", permanent=True)
        provider_id = sender.send(outgoing)
    except DeliveryError as error:
        message = redact(str(error), config.secrets)
        retry_after = dt.timedelta(seconds=error.retry_after) if error.retry_after else None
        with transaction() as cursor:
            state = outbox.mark_not_sent(cursor, outgoing, message, now, error.permanent, retry_after)
        report.errors.append(f"notification {outgoing.notification_id} ({outgoing.channel}): {message}")
        if state == "failed":
            report.failed += 1
        else:
            report.retrying += 1
        return
    with transaction() as cursor:
        outbox.mark_sent(cursor, outgoing.notification_id, redact(provider_id, config.secrets), now)
    report.sent += 1
