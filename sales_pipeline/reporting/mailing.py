"""The reports' emails: who gets which report, and their messages queued in the outbox.

A report goes out through the one outbox (`sales_pipeline.alerts.outbox`), queued in the transaction
that records the report, and sent with the alerts by the delivery run (`alerts/notifications`, which
the notification_delivery_sensor requests as soon as a message is due). Who gets it follows the alert
routing (ALERT_ROUTING, or MANAGER_EMAILS): a route for stores gets those stores' reports, a route for
the chain (`chain: true`) or for everything gets the chain's; a route for categories only gets none
(no category report is built each day). One message per report and recipient, keyed by the report's
day, scope and language: queuing it again (the same day's run executed twice) queues nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from xml.sax.saxutils import escape

from psycopg2.extensions import cursor as Cursor

from sales_pipeline.alerts.outbox import Attachment, Message, enqueue
from sales_pipeline.alerts.routing import Routing
from sales_pipeline.i18n import Formatter
from sales_pipeline.records import GeneratedReport
from sales_pipeline.reporting.data import KPIS, Scope


def group_key(day: dt.date, scope: str, locale: str) -> str:
    """What a report's emails are about: the outbox sends one per recipient and key, ever."""
    return f"report:{day.isoformat()}:{scope}:{locale}"


def report_recipients(routing: Routing, scope: Scope) -> tuple[str, ...]:
    """The addresses the daily report of `scope` goes to, in a stable order."""
    found: set[str] = set()
    for route in routing.routes:
        if route.stores is not None:
            if scope.kind == "store" and scope.id in route.stores:
                found.update(route.to)
        elif scope.kind == "all" and (route.chain or route.categories is None):
            found.update(route.to)
    return tuple(sorted(found))


def enqueue_report_emails(
    cursor: Cursor, report: GeneratedReport, scope_label: str, recipients: tuple[str, ...], fmt: Formatter, domain: str
) -> tuple[str, ...]:
    """Queue the report's email to each recipient, the PDF attached; record them in sent_to. Returns who is new."""
    from sales_pipeline.reporting.pdf import kpi_text  # here: reportlab is slow to load (see defs/reporting)

    day = fmt.date(report.day)
    subject = fmt.text("report_subject", title=fmt.text("report_title"), scope=scope_label, day=day)
    figures = [(fmt.text("kpi_" + kpi), kpi_text(kpi, report.headline["day"][kpi]["value"], fmt)) for kpi in KPIS]
    body_text = "\n".join([fmt.text("report_email_intro", scope=scope_label, day=day), ""] +
                          [f"{label}: {value}" for label, value in figures])  # fmt: skip
    rows = "".join(f"<tr><td>{escape(label)}</td><td align='right'><b>{escape(value)}</b></td></tr>"
                   for label, value in figures)  # fmt: skip
    body_html = f"<p>{escape(fmt.text('report_email_intro', scope=scope_label, day=day))}</p><table>{rows}</table>"
    attachment = Attachment(Path(report.path).name, "application/pdf", path=report.path)
    queued = []
    for recipient in recipients:
        message = Message(
            kind="report", channel="email", recipient=recipient,
            group_key=group_key(report.day, report.scope, report.locale),
            subject=subject, body_text=body_text, body_html=body_html, attachments=(attachment,),
        )  # fmt: skip
        if enqueue(cursor, message, domain) is not None:
            queued.append(recipient)
    cursor.execute(
        "UPDATE ops.generated_reports SET sent_to = ARRAY(SELECT DISTINCT unnest(sent_to || %s::text[]) ORDER BY 1)"
        " WHERE (day, scope, locale) = (%s, %s, %s)",
        (list(recipients), report.day, report.scope, report.locale),
    )
    return tuple(queued)


def report_emails(cursor: Cursor, day: dt.date, locale: str) -> list[tuple[str, str, str]]:
    """The emails of the reports of `day` in `locale`: (scope, recipient, state in the outbox), the chain's first."""
    cursor.execute("SELECT scope FROM ops.generated_reports WHERE day = %s AND locale = %s", (day, locale))
    scopes = {group_key(day, scope, locale): scope for (scope,) in cursor.fetchall()}
    cursor.execute(
        "SELECT group_key, recipient, state FROM ops.notifications"
        " WHERE kind = 'report' AND channel = 'email' AND group_key = ANY(%s)",
        (list(scopes),),
    )
    emails = [(scopes[key], recipient, state) for key, recipient, state in cursor.fetchall()]
    return sorted(emails, key=lambda email: (email[0] != "all", email[0], email[1]))
