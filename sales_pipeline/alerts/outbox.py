"""ops.notifications, the outbox: the one way anything leaves the pipeline (alerts, reports, run failures).

Write a message with `enqueue(cursor, Message(...))` in the transaction of the fact that causes it (a
report written, a run failed); the delivery run (`sales_pipeline.alerts.delivery.deliver`, requested by
the `notification_delivery_sensor`) sends it. For example, a report's PDF to a store manager::

    from sales_pipeline.alerts.outbox import Attachment, Message, enqueue

    with warehouse.transaction() as cursor:
        ...  # write the report's rows
        enqueue(cursor, Message(
            kind="report", channel="email", recipient="manager.lyon@example.com",
            group_key="daily:S02:2026-11-23",      # the same key is never sent twice
            subject="Daily report, Lyon Part-Dieu", body_text="...", body_html="<p>...</p>",
            attachments=(Attachment("S02-2026-11-23.pdf", "application/pdf", path="/srv/reports/S02.pdf"),),
        ), domain="example.com")

Who gets what is routing's business (`sales_pipeline.alerts.routing.Routing.recipients`).

The life of a row: pending -> sending (claimed by one run with FOR UPDATE SKIP LOCKED, under a lease)
-> sent (only after the server accepted it), or back to pending with exponential backoff when the
server is down or busy (SMTP down, a webhook's 5xx or 429), or failed (refused for good, or
`MAX_ATTEMPTS` tried). A run that dies while sending leaves its rows to the next run once their lease
is over. The one window that cannot be closed is between the server's accept and the commit that marks
the row sent: a crash there sends the message again on a later run, with the same Message-ID, so mail
clients and people can tell it is the same message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from psycopg2.extensions import cursor as Cursor

KINDS = ("first", "reminder", "resolved", "digest", "report", "run_failure", "late_asset")
CHANNELS = ("email", "webhook")
WEBHOOK_RECIPIENT = "webhook"  # the webhook's URL is a secret: never stored
MAX_ATTEMPTS = 10
BACKOFF_BASE = dt.timedelta(minutes=1)  # 1, 2, 4, ... minutes between attempts
BACKOFF_CAP = dt.timedelta(hours=1)
LEASE = dt.timedelta(minutes=10)  # how long a claimed row is a run's own; longer than a batch takes


@dataclass(frozen=True)
class Attachment:
    """A file sent with an email: `data`, or a `path` read when it is sent. With `content_id`, an inline
    image the HTML shows as ``<img src="cid:...">``."""

    filename: str
    content_type: str
    data: bytes | None = None
    path: str | None = None
    content_id: str | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.path is None):
            raise ValueError(f"attachment {self.filename!r}: give either data or a path")


@dataclass(frozen=True)
class Message:
    """One message to one recipient on one channel. `group_key` names what it is about: a message with
    the same (kind, channel, recipient, group_key) is queued once, whoever enqueues it again."""

    kind: str
    channel: str
    recipient: str
    group_key: str
    subject: str
    body_text: str
    body_html: str | None = None
    content: dict = field(default_factory=dict)  # structured, for chat cards (see webhook.py)
    attachments: tuple[Attachment, ...] = ()
    alert_ids: tuple[int, ...] = ()
    inhibited_alert_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"notification kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.channel not in CHANNELS:
            raise ValueError(f"channel {self.channel!r} is not one of {', '.join(CHANNELS)}")


@dataclass(frozen=True)
class Outgoing:
    """A claimed row, as the senders need it."""

    notification_id: int
    kind: str
    channel: str
    recipient: str
    subject: str
    body_text: str
    body_html: str | None
    content: dict
    message_id: str
    attempts: int
    attachments: tuple[Attachment, ...] = ()


def message_id(message: Message, domain: str) -> str:
    """The Message-ID, the same on every attempt (and for whoever enqueues the same message again)."""
    key = "\x1f".join((message.kind, message.channel, message.recipient, message.group_key))
    return f"<{message.kind}.{hashlib.sha256(key.encode()).hexdigest()[:24]}@{domain}>"


def enqueue(cursor: Cursor, message: Message, domain: str = "localhost", now: dt.datetime | None = None) -> int | None:
    """Queue `message` in the caller's transaction; its id, or None when it was queued before.

    `domain` is the right-hand side of its Message-ID (the sender's domain); `now` the time it is queued
    (default: the database's clock).
    """
    cursor.execute(
        """
        INSERT INTO ops.notifications (kind, channel, recipient, group_key, subject, body_text, body_html, content,
                                       message_id, created_at, next_attempt_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), coalesce(%s, now()))
        ON CONFLICT DO NOTHING
        RETURNING notification_id
        """,
        (
            message.kind,
            message.channel,
            message.recipient,
            message.group_key,
            message.subject,
            message.body_text,
            message.body_html,
            json.dumps(message.content),
            message_id(message, domain),
            now,
            now,
        ),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    notification_id = row[0]
    for position, attachment in enumerate(message.attachments):
        cursor.execute(
            "INSERT INTO ops.notification_attachments (notification_id, position, filename, content_type, content_id,"
            " data, path) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                notification_id,
                position,
                attachment.filename,
                attachment.content_type,
                attachment.content_id,
                attachment.data,
                attachment.path,
            ),
        )
    links = [(notification_id, a, False) for a in message.alert_ids]
    links += [(notification_id, a, True) for a in message.inhibited_alert_ids]
    if links:
        cursor.execute(
            "INSERT INTO ops.notification_alerts (notification_id, alert_id, inhibited)"
            " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::boolean[])",
            tuple(map(list, zip(*links, strict=True))),
        )
    return notification_id


# A row never tried is due at once, whatever clock queued it; a retried one after its backoff; one a run
# claimed and never finished (the run died) once its lease is over.
_DUE = (
    "(state = 'pending' AND (attempts = 0 OR next_attempt_at <= %(now)s))"
    " OR (state = 'sending' AND lease_until <= %(now)s)"
)


def due(cursor: Cursor, now: dt.datetime) -> list[tuple[int, int]]:
    """(notification id, attempts) of every row due now: what a delivery run would send."""
    cursor.execute(f"SELECT notification_id, attempts FROM ops.notifications WHERE {_DUE} ORDER BY 1", {"now": now})
    return cursor.fetchall()


def claim(cursor: Cursor, now: dt.datetime, limit: int = 50) -> list[Outgoing]:
    """Take up to `limit` due rows for this run (rows another run holds are skipped, not waited for).

    Commit right after: the rows are then `sending` under a lease, and no other run takes them.
    """
    cursor.execute(
        f"""
        UPDATE ops.notifications SET state = 'sending', attempts = attempts + 1, lease_until = %(lease_until)s
        WHERE notification_id IN (
            SELECT notification_id FROM ops.notifications WHERE {_DUE}
            ORDER BY next_attempt_at, notification_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
        RETURNING notification_id, kind, channel, recipient, subject, body_text, body_html, content, message_id,
                  attempts
        """,
        {"now": now, "lease_until": now + LEASE, "limit": limit},
    )
    rows = sorted(cursor.fetchall())
    if not rows:
        return []
    cursor.execute(
        "SELECT notification_id, filename, content_type, data, path, content_id FROM ops.notification_attachments"
        " WHERE notification_id = ANY(%s) ORDER BY notification_id, position",
        ([row[0] for row in rows],),
    )
    files: dict[int, list[Attachment]] = {}
    for notification_id, filename, content_type, data, path, content_id in cursor.fetchall():
        files.setdefault(notification_id, []).append(
            Attachment(filename, content_type, bytes(data) if data is not None else None, path, content_id)
        )
    return [Outgoing(*row, attachments=tuple(files.get(row[0], ()))) for row in rows]


def mark_sent(cursor: Cursor, notification_id: int, provider_message_id: str, now: dt.datetime) -> None:
    cursor.execute(
        "UPDATE ops.notifications SET state = 'sent', sent_at = %s, provider_message_id = %s, lease_until = NULL,"
        " last_error = NULL WHERE notification_id = %s",
        (now, provider_message_id, notification_id),
    )


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the `attempts`-th failed attempt: 1, 2, 4 ... minutes, at most an hour."""
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_CAP)


def mark_not_sent(
    cursor: Cursor,
    outgoing: Outgoing,
    error: str,
    now: dt.datetime,
    permanent: bool = False,
    retry_after: dt.timedelta | None = None,
) -> str:
    """Record a failed attempt: pending again after the backoff (or the server's Retry-After, if longer), or
    failed for good when the server refused it or the attempts are used up. Returns the new state.

    `error` must carry no secret (see delivery.redact).
    """
    state = "failed" if permanent or outgoing.attempts >= MAX_ATTEMPTS else "pending"
    wait = max(backoff(outgoing.attempts), retry_after or dt.timedelta(0))
    cursor.execute(
        "UPDATE ops.notifications SET state = %s, last_error = %s, next_attempt_at = %s, lease_until = NULL"
        " WHERE notification_id = %s",
        (state, error[:2000], now + wait, outgoing.notification_id),
    )
    return state


def outbox_summary(cursor: Cursor, now: dt.datetime) -> dict[str, object]:
    """Counts per state, and the age in minutes of the oldest message not sent yet (None when none)."""
    cursor.execute(
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'sending'),"
        " count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = 'failed'),"
        " min(created_at) FILTER (WHERE state IN ('pending', 'sending'))"
        " FROM ops.notifications"
    )
    pending, sending, sent, failed, oldest = cursor.fetchone()
    age = round((now - oldest).total_seconds() / 60, 1) if oldest else None
    return {"pending": pending, "sending": sending, "sent": sent, "failed": failed, "oldest_pending_minutes": age}


def waiting_since(cursor: Cursor, older_than: dt.timedelta, limit: int = 5) -> list[tuple]:
    """The messages not sent yet that were written more than `older_than` ago, oldest first:
    (notification_id, kind, channel, attempts, the start of the last error)."""
    cursor.execute(
        "SELECT notification_id, kind, channel, attempts, left(last_error, 200) FROM ops.notifications"
        " WHERE state IN ('pending', 'sending') AND created_at < now() - %s ORDER BY created_at LIMIT %s",
        (older_than, limit),
    )
    return cursor.fetchall()
