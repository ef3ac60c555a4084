"""Alerts that reach people: real PostgreSQL, a real SMTP server (aiosmtpd on loopback, TLS on a trustme
certificate, a login) and a real HTTP receiver for the webhook."""

from __future__ import annotations

import datetime as dt
import json
import select
from email import message_from_bytes, policy
from functools import partial
from pathlib import Path

import psycopg2
import pytest

from sales_pipeline.alerts import outbox
from sales_pipeline.alerts.delivery import AlertingConfig, decide, deliver
from sales_pipeline.alerts.mail import SmtpSettings
from sales_pipeline.alerts.policy import Policy
from sales_pipeline.alerts.routing import Route, Routing, RoutingError, load_routing
from sales_pipeline.alerts.store import ALERTS_CHANNEL, AlertError, acknowledge, follow_anomalies, snooze
from sales_pipeline.anomalies.store import record_anomalies
from sales_pipeline.records import Alert
from sales_pipeline.warehouse.db import libpq_url, transaction
from sales_pipeline_tests.conftest import query
from sales_pipeline_tests.receivers import PASSWORD, USER, Mailbox, WebhookReceiver, certificates, smtp_server

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # after the 07:00 digest time
SENDER = "alerts@shop.example"
LYON, PARIS, BUYER, HEAD = "lyon@shop.example", "paris@shop.example", "coffee@shop.example", "ceo@shop.example"
ROUTING = Routing(
    (
        Route(to=(LYON,), name="Lyon", stores=frozenset({"S02"}), line=2),
        Route(to=(PARIS,), name="Paris", stores=frozenset({"S01"}), line=5),
        Route(to=(BUYER,), name="Coffee", categories=frozenset({"Coffee"}), kinds=frozenset({"stock_risk"}), line=8),
        Route(to=(HEAD,), name="Head office", chain=True, line=11),
    )
)
HOSTILE_CUSTOMER = "x\r\nBcc: thief@evil.example"
HTML_PRODUCT = "Espresso <script>alert(1)</script> & beans"


def stock_numbers(days: float = 2.5, on_hand: int = 30, projected: int = 24, on_order: int = 0) -> dict:
    return {"as_of": "2026-11-22", "counted_on": "2026-11-20", "on_hand": on_hand, "sold_since_count": 6,
            "projected_on_hand": projected, "on_order": on_order, "daily_demand": 9.6, "forecast_days": 7,
            "days_until_stockout": days, "stockout_day": "2026-11-24", "lead_time_days": 9,
            "lead_time_known": True}  # fmt: skip


def drop_numbers(days: int = 3, shortfall: float = 1234.56) -> dict:
    return {"first_day": "2026-11-20", "last_day": "2026-11-22", "days": days, "closed_days": 0,
            "actual": 2000.0, "expected": 2000.0 + shortfall, "lower_bound": 2900.0, "confidence": 0.99,
            "shortfall": shortfall, "shortfall_pct": round(100 * shortfall / (2000.0 + shortfall), 1),
            "latest_day": "2026-11-22", "latest_actual": 600.0, "latest_expected": 1000.0,
            "latest_lower_95": 800.0}  # fmt: skip


def stock_risk(product: str = "P0077", store: str = "S02", severity: str = "critical", **numbers) -> Alert:
    return Alert("stock_risk", severity, "product_store", f"{product}@{store}", dt.date(2026, 11, 22), "runs out",
                 stock_numbers(**numbers), f"stock_risk:{product}@{store}:2026-11-20")  # fmt: skip


def drop(entity_type: str, entity_id: str, severity: str = "critical", days: int = 3) -> Alert:
    scope = {"total": "all"}.get(entity_type, entity_type)
    return Alert("sales_drop", severity, entity_type, entity_id, dt.date(2026, 11, 22), "drop",
                 drop_numbers(days), f"sales_drop:{scope}:{entity_id}:2026-11-20")  # fmt: skip


def churn(customer: str = "C1", severity: str = "critical") -> Alert:
    numbers = {"purchases": 12, "mean_gap_days": 14.2, "days_silent": 90, "p_silence": 0.0035,
               "last_purchase": "2026-08-24"}  # fmt: skip
    return Alert("customer_churn", severity, "customer", customer, dt.date(2026, 11, 22), "silent", numbers,
                 f"customer_churn:{customer}:2026-08-24")  # fmt: skip


def detect(url: str, *alerts: Alert, now: dt.datetime = NOW) -> None:
    """What the anomaly assets do: record this detection of each kind, then follow it in ops.alerts."""
    with transaction(url) as cursor:
        for kind in ("sales_drop", "stock_risk", "customer_churn"):
            record_anomalies(cursor, kind, [a for a in alerts if a.kind == kind])
            follow_anomalies(cursor, kind, now)


@pytest.fixture
def shop(empty_warehouse: str) -> str:
    """Two stores, a coffee product with a hostile name, a customer of S02 with a hostile name."""
    with transaction(empty_warehouse) as cursor:
        cursor.execute(
            "INSERT INTO core.stores (store_id, name, city, source) VALUES"
            " ('S01', 'Paris Opéra', 'Paris', 't'), ('S02', 'Lyon Part-Dieu', 'Lyon', 't')"
        )
        cursor.execute(
            "INSERT INTO core.products (product_id, name, category, unit_price, source) VALUES"
            " ('P0077', %s, 'Coffee', 12.5, 't'), ('P0001', 'Tea', 'Tea', 3, 't')",
            (HTML_PRODUCT,),
        )
        cursor.execute(
            "INSERT INTO core.customers (customer_id, name, source) VALUES ('C1', %s, 't')", (HOSTILE_CUSTOMER,)
        )
        cursor.execute(
            "INSERT INTO core.sales (order_id, line_number, sold_at, sale_date, store_id, product_id, customer_id,"
            " quantity, unit_price, revenue, source) VALUES ('O1', 1, '2026-08-24 12:00+00', '2026-08-24', 'S02',"
            " 'P0001', 'C1', 1, 3, 3, 't')"
        )
    return empty_warehouse


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory):
    return certificates(tmp_path_factory.mktemp("certs"))


def config(
    tmp_path: Path, port: int | None = None, mode: str = "starttls", webhook: str | None = None, **changes
) -> AlertingConfig:
    smtp = SmtpSettings(
        host="127.0.0.1" if port else None, port=port or 25, sender=SENDER, user=USER if mode != "plain" else None,
        password=PASSWORD if mode != "plain" else None, starttls=mode == "starttls", ssl=mode == "ssl", timeout_s=5,
    )  # fmt: skip
    values = {
        "smtp": smtp,
        "outbox_dir": tmp_path / "outbox",
        "routing": ROUTING,
        "policy": Policy(webhook=webhook is not None),
        "webhook_url": webhook,
        "secrets": tuple(s for s in (PASSWORD, webhook) if s),
    }
    return AlertingConfig(**(values | changes))


def notifications(url: str) -> list[tuple]:
    return query(url, "SELECT kind, channel, recipient, state, attempts FROM ops.notifications ORDER BY 1, 2, 3")


def text_of(message) -> str:
    """The plain-text part, with the narrow and no-break spaces Babel puts in numbers read as spaces."""
    return message.get_body(("plain",)).get_content().replace("\u202f", " ").replace("\xa0", " ")


def eml(path: Path):
    return message_from_bytes(path.read_bytes(), policy=policy.default)


def test_a_critical_stock_risk_reaches_its_store_manager_and_buyer_and_the_webhook(shop, certs, tmp_path):
    detect(shop, stock_risk())
    mailbox = Mailbox()
    with smtp_server("starttls", certs, mailbox) as port, WebhookReceiver() as hook:
        report = deliver(
            partial(transaction, shop), config(tmp_path, port, webhook=hook.url), NOW, ssl_context=certs.client
        )
    assert report.sent == 3 and not report.errors
    assert sorted(r.rcpt_tos[0] for r in mailbox.received) == [BUYER, LYON]  # not Paris, not head office
    [email] = mailbox.to(LYON)
    body = text_of(email)
    assert "P0077" in email["Subject"] and "S02 (Lyon Part-Dieu)" in body and "2.5 days" in body
    assert "sales-pipeline alerts ack 1" in body and "http://127.0.0.1:3000/assets/anomalies/stock_risks" in body
    assert email["Message-ID"].endswith("@shop.example>") and email["From"] == SENDER
    assert [p.get_content_type() for p in email.walk()] == [
        "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"]  # fmt: skip
    [card] = hook.bodies
    assert "P0077" in card["text"] and card["blocks"][0]["type"] == "header"
    assert query(shop, "SELECT DISTINCT state FROM ops.notifications") == [("sent",)]
    assert query(shop, "SELECT provider_message_id FROM ops.notifications WHERE recipient = %s", (LYON,)) == [
        ("2.0.0 Ok: queued as Q1",)
    ] or mailbox.received[0].rcpt_tos != [LYON]


@pytest.mark.parametrize("mode", ["ssl", "plain"])
def test_implicit_tls_and_a_plain_local_relay(shop, certs, tmp_path, mode):
    detect(shop, stock_risk())
    mailbox = Mailbox()
    with smtp_server(mode, certs, mailbox, login=mode != "plain") as port:
        report = deliver(partial(transaction, shop), config(tmp_path, port, mode), NOW, ssl_context=certs.client)
    assert report.sent == 2 and sorted(r.rcpt_tos[0] for r in mailbox.received) == [BUYER, LYON]


def test_a_server_without_starttls_is_named_and_the_messages_wait(shop, certs, tmp_path):
    detect(shop, stock_risk())
    with smtp_server("plain", certs, Mailbox(), login=False) as port:
        report = deliver(partial(transaction, shop), config(tmp_path, port, "starttls"), NOW, ssl_context=certs.client)
    assert report.retrying == 2
    assert "does not offer STARTTLS: set SMTP_SSL=true" in report.errors[0]
    assert {row[3] for row in notifications(shop)} == {"pending"}


def test_french_numbers_money_and_days(shop, certs, tmp_path):
    detect(shop, stock_risk(), drop("store", "S02"))
    mailbox = Mailbox()
    with smtp_server("starttls", certs, mailbox) as port:
        deliver(partial(transaction, shop), config(tmp_path, port, locale="fr"), NOW, ssl_context=certs.client)
    [email] = mailbox.to(LYON)  # the store's drop and its stock risk, in one email
    body = text_of(email)
    assert "2,5 jours" in body and "1 234,56 €" in body
    assert email["Subject"].startswith("2 alertes critiques : ")
    assert "Chiffre d'affaires du magasin S02 (Lyon Part-Dieu)" in body


def test_the_delivery_run_twice_and_the_sensor_twice_send_one_email(shop, certs, tmp_path):
    detect(shop, stock_risk())
    settings = config(tmp_path, None)
    with transaction(shop) as cursor:
        first, second = decide(cursor, settings, NOW), decide(cursor, settings, NOW)
    assert first.key == second.key and len(first.planned) == 2  # one run key: Dagster launches one run
    deliver(partial(transaction, shop), settings, NOW)
    deliver(partial(transaction, shop), settings, NOW)
    with transaction(shop) as cursor:
        assert decide(cursor, settings, NOW).planned == []
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == [
        "000001-first-coffee@shop.example.eml", "000002-first-lyon@shop.example.eml"]  # fmt: skip


def test_smtp_down_for_a_tick_then_delivered_once_and_a_webhook_500_then_200(shop, certs, tmp_path):
    detect(shop, stock_risk())
    mailbox = Mailbox()
    port = None
    with WebhookReceiver([500]) as hook:
        with smtp_server("starttls", certs, Mailbox()) as port:
            pass  # a port nobody listens on any more: the server is down
        settings = config(tmp_path, port, webhook=hook.url)
        down = deliver(partial(transaction, shop), settings, NOW, ssl_context=certs.client)
        assert (down.sent, down.retrying) == (0, 3)
        assert all("unreachable: ConnectionRefusedError" in e for e in down.errors[:2])
        assert "webhook answered HTTP 500" in down.errors[2]
        # Before the backoff is over, nothing is tried again.
        assert (
            deliver(partial(transaction, shop), settings, NOW + dt.timedelta(seconds=30), ssl_context=certs.client).sent
            == 0
        )
        with smtp_server("starttls", certs, mailbox, port=port):
            back = deliver(
                partial(transaction, shop), settings, NOW + dt.timedelta(minutes=1), ssl_context=certs.client
            )
            again = deliver(
                partial(transaction, shop), settings, NOW + dt.timedelta(minutes=5), ssl_context=certs.client
            )
    assert (back.sent, again.sent) == (3, 0)
    assert sorted(r.rcpt_tos[0] for r in mailbox.received) == [BUYER, LYON]
    assert len(hook.bodies) == 1 and hook.answered == [500, 200]
    assert {row[3:] for row in notifications(shop)} == {("sent", 2)}


def test_a_refused_recipient_fails_for_good_and_a_429_waits(shop, certs, tmp_path):
    detect(shop, stock_risk())
    with WebhookReceiver([429]) as hook:
        report = deliver(partial(transaction, shop), config(tmp_path, None, webhook=hook.url), NOW)
    assert report.retrying == 1 and "HTTP 429" in report.errors[0]
    [(next_attempt,)] = query(shop, "SELECT next_attempt_at FROM ops.notifications WHERE channel = 'webhook'")
    assert next_attempt == NOW + dt.timedelta(minutes=1)  # the backoff, longer than Retry-After: 1
    with WebhookReceiver([404]) as hook:
        report = deliver(
            partial(transaction, shop), config(tmp_path, None, webhook=hook.url), NOW + dt.timedelta(minutes=2)
        )
    assert report.failed == 1 and "HTTP 404" in report.errors[0]


def test_acknowledge_stops_reminders_and_a_resolved_critical_sends_one_note(shop, tmp_path):
    detect(shop, stock_risk(), stock_risk("P0001", "S01"))
    settings = config(tmp_path, None)
    deliver(partial(transaction, shop), settings, NOW)
    ids = dict(query(shop, "SELECT entity_id, alert_id FROM ops.alerts"))
    with transaction(shop) as cursor:
        acknowledge(cursor, ids["P0077@S02"], "Marie")
    later = NOW + dt.timedelta(hours=24)
    report = deliver(partial(transaction, shop), settings, later)
    assert dict(report.planned) == {"reminder": 1}  # Paris's P0001 only: Lyon's is acknowledged
    assert query(shop, "SELECT recipient FROM ops.notifications WHERE kind = 'reminder'") == [(PARIS,)]
    assert deliver(partial(transaction, shop), settings, later + dt.timedelta(hours=1)).planned == {}  # not every tick
    detect(shop, stock_risk("P0001", "S01"), now=later)  # P0077 no longer at risk
    resolved = deliver(partial(transaction, shop), settings, later + dt.timedelta(hours=2))
    assert dict(resolved.planned) == {"resolved": 2}  # to Lyon and the coffee buyer, who got it
    assert deliver(partial(transaction, shop), settings, later + dt.timedelta(hours=3)).planned == {}
    assert query(shop, "SELECT status, acknowledged_by FROM ops.alerts WHERE alert_id = %s", (ids["P0077@S02"],)) == [
        ("resolved", "Marie")
    ]
    with transaction(shop) as cursor, pytest.raises(AlertError, match="already resolved"):
        acknowledge(cursor, ids["P0077@S02"], "Marie")


def test_snooze_holds_reminders_until_its_time(shop, tmp_path):
    detect(shop, stock_risk())
    settings = config(tmp_path, None)
    deliver(partial(transaction, shop), settings, NOW)
    [(alert_id,)] = query(shop, "SELECT alert_id FROM ops.alerts")
    with transaction(shop) as cursor:
        snooze(cursor, alert_id, NOW + dt.timedelta(days=2), now=NOW)
    assert deliver(partial(transaction, shop), settings, NOW + dt.timedelta(days=1)).planned == {}
    assert dict(deliver(partial(transaction, shop), settings, NOW + dt.timedelta(days=2, hours=1)).planned) == {
        "reminder": 2
    }
    assert query(shop, "SELECT status FROM ops.alerts") == [("open",)]


def test_the_digest_holds_the_days_warnings_once(shop, tmp_path):
    detect(shop, stock_risk(severity="warning"), drop("store", "S02", "warning", 2), drop("product", "P0001"))
    settings = config(tmp_path, None)
    early = deliver(partial(transaction, shop), settings, NOW.replace(hour=6))
    assert early.planned == {}  # warnings wait for 07:00; a product drop is never pushed, even critical
    report = deliver(partial(transaction, shop), settings, NOW)
    assert dict(report.planned) == {"digest": 3}  # Lyon, the coffee buyer, head office (the product drop)
    assert deliver(partial(transaction, shop), settings, NOW + dt.timedelta(hours=1)).planned == {}
    lyon = eml(next((tmp_path / "outbox").glob("*digest-lyon*")))
    assert text_of(lyon).count("[Warning]") == 2 and lyon["Subject"] == "Alerts digest of Nov 23, 2026: 2 warnings"
    # The next day: a new warning; the two of yesterday are listed once, as still open.
    detect(shop, stock_risk(severity="warning"), drop("store", "S02", "warning", 2), churn(severity="warning"))
    deliver(partial(transaction, shop), settings, NOW + dt.timedelta(days=1))
    digest = text_of(eml(sorted((tmp_path / "outbox").glob("*digest-lyon*"))[-1]))
    assert digest.count("[Warning]") == 1 and "stopped buying" in digest
    assert digest.split("Still open")[1].count("- ") == 2


def test_a_chain_drop_inhibits_the_same_days_store_and_category_drops(shop, tmp_path):
    routing = Routing((Route(to=(HEAD,)),))
    detect(shop, drop("total", "all"), drop("store", "S01"), drop("category", "Coffee"))
    deliver(partial(transaction, shop), config(tmp_path, None, routing=routing), NOW)
    [email] = (tmp_path / "outbox").glob("*first*")
    text = text_of(eml(email))
    assert text.count("[Critical]") == 1 and "Chain revenue: sales drop" in text
    assert "Part of the same drop, the same day: Revenue of store S01 (Paris Opéra): sales drop" in text
    assert query(shop, "SELECT count(*) FILTER (WHERE inhibited) FROM ops.notification_alerts") == [(2,)]


def test_hostile_names_stay_names_and_secrets_appear_nowhere(shop, certs, tmp_path, caplog):
    mailbox = Mailbox()
    with smtp_server("starttls", certs, mailbox) as port, WebhookReceiver([500]) as hook:
        settings = config(tmp_path, port, webhook=hook.url)
        detect(shop, churn())
        report = deliver(partial(transaction, shop), settings, NOW, ssl_context=certs.client)
        detect(shop, churn(), stock_risk())
        deliver(partial(transaction, shop), settings, NOW, ssl_context=certs.client)
    assert all(r.rcpt_tos in ([LYON], [BUYER]) for r in mailbox.received)  # nobody Bcc'd
    churned = mailbox.to(LYON)[0]
    assert churned["Subject"] == "Critical: Customer C1 (x Bcc: thief@evil.example) stopped buying"
    assert churned["Bcc"] is None
    html = churned.get_body(("html",)).get_content()
    stock = mailbox.to(BUYER)[0].get_body(("html",)).get_content()
    assert "<script>" not in stock and "Espresso &lt;script&gt;alert(1)&lt;/script&gt; &amp; beans" in stock
    assert "x\r\nBcc" not in html
    everywhere = "\n".join(
        [repr(settings), *report.errors, caplog.text, *(r.raw.decode() for r in mailbox.received),
         json.dumps(query(shop, "SELECT to_jsonb(n) FROM ops.notifications AS n"), default=str)]
    )  # fmt: skip
    assert PASSWORD not in everywhere and hook.url not in everywhere and "xoxb-webhook-secret" not in everywhere


def test_notify_wakes_a_listener_when_an_alert_opens_or_resolves(shop):
    listener = psycopg2.connect(libpq_url(shop))
    listener.autocommit = True
    try:
        with listener.cursor() as cursor:
            cursor.execute(f"LISTEN {ALERTS_CHANNEL}")
        detect(shop, stock_risk())
        detect(shop)
        events = []
        while select.select([listener], [], [], 2) != ([], [], []):
            listener.poll()
            events += [json.loads(n.payload)["event"] for n in listener.notifies]
            listener.notifies.clear()
            if len(events) >= 2:
                break
    finally:
        listener.close()
    assert events == ["opened", "resolved"]


def test_a_report_with_a_pdf_goes_through_the_same_outbox(shop, certs, tmp_path):
    pdf = tmp_path / "S02-2026-11-23.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% a report\n")
    message = outbox.Message(
        kind="report", channel="email", recipient=LYON, group_key="daily:S02:2026-11-23",
        subject="Rapport du 23 novembre", body_text="Votre rapport.", body_html="<p>Votre rapport.</p>",
        attachments=(outbox.Attachment(pdf.name, "application/pdf", path=str(pdf)),),
    )  # fmt: skip
    with transaction(shop) as cursor:
        assert outbox.enqueue(cursor, message, "shop.example") is not None
        assert outbox.enqueue(cursor, message, "shop.example") is None  # queued once
    mailbox = Mailbox()
    with smtp_server("starttls", certs, mailbox) as port:
        assert (
            deliver(partial(transaction, shop), config(tmp_path, port), NOW, plan=False, ssl_context=certs.client).sent
            == 1
        )
    [email] = mailbox.to(LYON)
    [attachment] = list(email.iter_attachments())
    assert attachment.get_filename() == pdf.name and attachment.get_content() == pdf.read_bytes()


def test_routing_file_errors_name_the_file_and_line(tmp_path, shop):
    good = tmp_path / "routing.yaml"
    good.write_text("routes:\n  - to: [a@shop.example]\n    stores: [S02]\n  - to: b@shop.example\n    chain: true\n")
    routing = load_routing(good)
    assert [r.line for r in routing.routes] == [2, 4] and routing.routes[1].chain
    cases = {
        "routes:\n  - to: [a@shop.example, not-an-address]\n": "line 2: 'not-an-address' is not an email address",
        "routes:\n  - to: a@shop.example\n    kinds: [stock_risks]\n": "line 3: kinds: 'stock_risks' is not one of",
        "routes:\n  - stores: [S02]\n": "line 2: a route needs `to:`",
        "routes:\n  - to: a@shop.example\n    store: [S02]\n": "line 3: unknown key 'store'",
        "routes: [\n": "line 2: not valid YAML",
    }
    for text, expected in cases.items():
        good.write_text(text)
        with pytest.raises(RoutingError, match=f"^{good}, {expected}"):
            load_routing(good)
    good.write_text("routes:\n  - to: a@shop.example\n\n  - to: b@shop.example\n    stores: [S02, S99]\n")
    with transaction(shop) as cursor, pytest.raises(RoutingError, match=r"line 4: stores S99 unknown to the warehouse"):
        load_routing(good).check_known(cursor)


def test_teams_gets_an_adaptive_card_chosen_by_the_setting_or_the_url(shop, tmp_path):
    from sales_pipeline.alerts.webhook import webhook_format

    assert webhook_format("https://prod-12.westeurope.logic.azure.com/workflows/abc?sig=s3cret", None) == "teams"
    assert webhook_format("https://hooks.slack.com/services/T/B/x", None) == "slack"
    detect(shop, stock_risk())
    with WebhookReceiver() as hook:
        deliver(partial(transaction, shop), config(tmp_path, None, webhook=hook.url, webhook_format="teams"), NOW)
    [body] = hook.bodies
    [attachment] = body["attachments"]
    card = attachment["content"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive" and card["type"] == "AdaptiveCard"
    assert any(block.get("type") == "FactSet" for block in card["body"])
    assert card["actions"][0]["url"] == "http://127.0.0.1:3000/assets/anomalies/stock_risks"
