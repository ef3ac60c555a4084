"""Alerts: 10,000 open anomalies across 50 stores and 50 routed recipients, into a local SMTP server.

The data: 50 stores, 8 categories, 160 products; 10,000 active anomalies recorded the way the anomaly
assets do (`record_anomalies`, then `follow_anomalies` into ops.alerts): 7,000 stock-out risks, 2,900
churned customers (one sale each, so each has a usual store) and 100 sales drops (the total, 8
categories, the 50 stores, 41 products); 20% critical, 60% warning, 20% info. Routing: 41 store
managers (stores shared out), 8 category buyers (stock risks and drops of their category), head office
(the chain's alerts): 50 recipients. The mail server is aiosmtpd on loopback (a plain relay, no TLS:
the pipeline is measured, not the handshake), in a process of its own.

Measured, in a database of its own (`bench_alerts`, emptied before each run):
- `sensor_eval_s`: one tick of the delivery sensor (`decide`: read the alerts and what was sent, plan);
- `critical_send_s`: the delivery run at 06:00 (before the digest time): write the critical messages
  (grouped per recipient, each with its chart) and send them;
- `digest_s`: the delivery run at 07:30: build the daily digests and send them;
- `messages_per_s`: messages sent by the two runs over their time.
Baseline: the plain way, one email per (critical alert, recipient) over a new SMTP connection each
(`smtplib.SMTP(...).send_message`), timed on 300 messages and extrapolated to the count it would send.

    .venv/bin/python benchmarks/bench_alerts.py           # 10,000 anomalies, 3 runs (needs the test extras: aiosmtpd)
    .venv/bin/python benchmarks/bench_alerts.py --quick   # 1,000 anomalies, 1 run

Targets: sensor evaluation under 1 s at 10,000 alerts, critical emails under 10 s, digests under 10 s.
The last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import smtplib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from common import own_database, peak_rss_mb

from sales_pipeline.alerts.delivery import AlertingConfig, decide, deliver
from sales_pipeline.alerts.mail import SmtpSettings
from sales_pipeline.alerts.policy import Policy
from sales_pipeline.alerts.routing import Route, Routing
from sales_pipeline.alerts.store import follow_anomalies
from sales_pipeline.anomalies.store import record_anomalies
from sales_pipeline.records import Alert
from sales_pipeline.warehouse import db

BENCH_DB = "bench_alerts"
STORES, CATEGORIES, PRODUCTS = 50, 8, 160
DAY = dt.date(2026, 11, 22)
EARLY, DIGEST = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC), dt.datetime(2026, 11, 23, 7, 30, tzinfo=dt.UTC)
BASELINE_SAMPLE = 300


@contextlib.contextmanager
def mail_server() -> Iterator[int]:
    """aiosmtpd's own command in a process of its own, keeping what it accepts nowhere (Sink); its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait()


def anomalies(total: int, rng: np.random.Generator) -> list[Alert]:
    """`total` anomalies in the module docstring's proportions."""
    severities = rng.choice(["critical", "warning", "info"], size=total + 100, p=[0.2, 0.6, 0.2])
    stock, churn = int(total * 0.70), int(total * 0.29)
    alerts = []
    for i in range(stock):
        product, store = f"P{i % PRODUCTS:04d}", f"S{(i // PRODUCTS) % STORES + 1:02d}"
        numbers = {"as_of": DAY.isoformat(), "counted_on": DAY.isoformat(), "on_hand": 12, "sold_since_count": 0,
                   "projected_on_hand": 12, "on_order": 0, "daily_demand": 4.0, "forecast_days": 7,
                   "days_until_stockout": 3.0, "stockout_day": DAY.isoformat(), "lead_time_days": 7,
                   "lead_time_known": True}  # fmt: skip
        key = f"{product}@{store}#{i // (PRODUCTS * STORES)}"
        alerts.append(Alert("stock_risk", severities[i], "product_store", f"{product}@{store}", DAY, "stock", numbers,
                            f"stock_risk:{key}"))  # fmt: skip
    for i in range(churn):
        numbers = {"purchases": 8, "mean_gap_days": 12.0, "days_silent": 80, "p_silence": 0.001,
                   "last_purchase": "2026-09-01"}  # fmt: skip
        alerts.append(Alert("customer_churn", severities[stock + i], "customer", f"C{i:05d}", DAY, "churn", numbers,
                            f"customer_churn:C{i:05d}"))  # fmt: skip
    drops = [("total", "all")] + [("category", f"Cat{c}") for c in range(CATEGORIES)]
    drops += [("store", f"S{s + 1:02d}") for s in range(STORES)]
    drops += [("product", f"P{p:04d}") for p in range(max(total - stock - churn - len(drops), 0))]
    for j, (entity_type, entity_id) in enumerate(drops):
        numbers = {"first_day": "2026-11-20", "last_day": DAY.isoformat(), "days": 3, "closed_days": 0,
                   "actual": 2000.0, "expected": 3000.0, "lower_bound": 2500.0, "confidence": 0.99,
                   "shortfall": 1000.0, "shortfall_pct": 33.3, "latest_day": DAY.isoformat(),
                   "latest_actual": 600.0, "latest_expected": 1000.0, "latest_lower_95": 800.0}  # fmt: skip
        alerts.append(Alert("sales_drop", severities[stock + churn + j], entity_type, entity_id, DAY, "drop", numbers,
                            f"sales_drop:{entity_type}:{entity_id}"))  # fmt: skip
    return alerts[:total]


def routing() -> Routing:
    """41 store managers, 8 buyers, head office: 50 recipients."""
    stores = {m: frozenset(f"S{s + 1:02d}" for s in range(STORES) if s % 41 == m) for m in range(41)}
    managers = [Route(to=(f"manager{m:02d}@shop.example",), stores=stores[m]) for m in range(41)]
    buyers = [
        Route(
            to=(f"buyer{c}@shop.example",),
            categories=frozenset({f"Cat{c}"}),
            kinds=frozenset({"stock_risk", "sales_drop"}),
        )
        for c in range(CATEGORIES)
    ]
    return Routing((*managers, *buyers, Route(to=("head.office@shop.example",), chain=True)))


def load(url: str, total: int) -> None:
    """The shop and its anomalies, as the anomaly assets would leave them (not timed)."""
    rng = np.random.default_rng(7)
    with db.transaction(url) as cursor:
        cursor.execute(
            "TRUNCATE ops.notification_alerts, ops.notification_attachments, ops.notifications, ops.alerts,"
            " ml.anomalies, core.sales, core.customers, core.products, core.stores RESTART IDENTITY CASCADE"
        )
        cursor.execute(
            "INSERT INTO core.stores (store_id, name, source) SELECT 'S' || lpad(s::text, 2, '0'), 'Store ' || s, 'b'"
            " FROM generate_series(1, %s) AS s",
            (STORES,),
        )
        cursor.execute(
            "INSERT INTO core.products (product_id, name, category, unit_price, source)"
            " SELECT 'P' || lpad(p::text, 4, '0'), 'Product ' || p, 'Cat' || (p %% %s), 4.5, 'b'"
            " FROM generate_series(0, %s) AS p",
            (CATEGORIES, PRODUCTS - 1),
        )
        sales = pd.DataFrame({"order_id": [f"O{i}" for i in range(int(total * 0.29))]})
        sales["line_number"], sales["customer_id"] = 1, [f"C{i:05d}" for i in range(len(sales))]
        sales["store_id"] = [f"S{i % STORES + 1:02d}" for i in range(len(sales))]
        sales["product_id"], sales["sold_at"], sales["sale_date"] = "P0001", "2026-09-01 12:00+00", "2026-09-01"
        sales["quantity"], sales["unit_price"], sales["revenue"], sales["source"] = 1, 4.5, 4.5, "b"
        buffer = io.StringIO()
        sales.to_csv(buffer, index=False, header=False)
        buffer.seek(0)
        cursor.copy_expert(f"COPY core.sales ({', '.join(sales.columns)}) FROM STDIN WITH (FORMAT csv)", buffer)
        found = anomalies(total, rng)
        for kind in ("sales_drop", "stock_risk", "customer_churn"):
            record_anomalies(cursor, kind, [a for a in found if a.kind == kind])
            follow_anomalies(cursor, kind, EARLY - dt.timedelta(hours=1))


def one_run(url: str, total: int, port: int, folder: Path) -> dict:
    load(url, total)
    config = AlertingConfig(
        smtp=SmtpSettings("127.0.0.1", port, "alerts@shop.example", starttls=False, timeout_s=10),
        outbox_dir=folder,
        routing=routing(),
        policy=Policy(),
    )
    ticks = []
    for _ in range(3):
        started = time.perf_counter()
        with db.transaction(url) as cursor:
            batch = decide(cursor, config, EARLY)
        ticks.append(time.perf_counter() - started)
    started = time.perf_counter()
    critical = deliver(partial(db.transaction, url), config, EARLY)
    critical_s = time.perf_counter() - started
    started = time.perf_counter()
    digest = deliver(partial(db.transaction, url), config, DIGEST)
    digest_s = time.perf_counter() - started
    assert critical.failed == digest.failed == critical.retrying == digest.retrying == 0, critical.errors
    sent = critical.sent + digest.sent
    return {
        "sensor_eval_s": statistics.median(ticks),
        "planned_messages": len(batch.planned),
        "critical_messages": critical.sent,
        "critical_send_s": critical_s,
        "digest_messages": digest.sent,
        "digest_s": digest_s,
        "messages_per_s": sent / (critical_s + digest_s),
    }


def baseline(url: str, port: int) -> dict:
    """One email per (critical alert, recipient), one SMTP connection each: timed on a sample."""
    with db.transaction(url) as cursor:
        cursor.execute("SELECT count(*) FROM ops.notification_alerts l JOIN ops.notifications n USING (notification_id)"
                       " WHERE n.kind = 'first' AND n.channel = 'email'")  # fmt: skip
        pairs = cursor.fetchone()[0]
    started = time.perf_counter()
    for i in range(BASELINE_SAMPLE):
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = f"Alert {i}", "alerts@shop.example", "m@shop.example"
        message.set_content(f"Alert {i}")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(message)
    per_message = (time.perf_counter() - started) / BASELINE_SAMPLE
    return {"baseline_messages": pairs, "baseline_send_s": per_message * pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 anomalies, 1 run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    total, runs = (1_000, 1) if args.quick else (10_000, args.runs)
    url = own_database(BENCH_DB, recreate=True)
    folder = Path(".sales_pipeline") / "bench_alerts_outbox"
    with mail_server() as port:
        outcomes = [one_run(url, total, port, folder) for _ in range(runs)]
        plain = baseline(url, port)
    median = {key: statistics.median(o[key] for o in outcomes) for key in outcomes[0]}
    print(f"{total:,} open anomalies, 50 stores, 50 recipients; median of {runs} run(s)")
    print(f"  sensor evaluation (plan one tick)   {median['sensor_eval_s']:8.3f} s   ({median['planned_messages']:.0f} "
          "messages to write)")  # fmt: skip
    print(f"  critical batch: write and send      {median['critical_send_s']:8.3f} s   "
          f"({median['critical_messages']:.0f} emails)")  # fmt: skip
    print(
        f"  daily digests: build and send       {median['digest_s']:8.3f} s   ({median['digest_messages']:.0f} emails)"
    )
    print(f"  messages per second                 {median['messages_per_s']:8.1f}")
    print(f"  baseline, one email per alert and recipient, a connection each: {plain['baseline_messages']:,} emails, "
          f"{plain['baseline_send_s']:.1f} s (extrapolated from {BASELINE_SAMPLE})")  # fmt: skip
    result = {"benchmark": "alerts", "anomalies": total, "runs": runs, **{k: round(v, 3) for k, v in median.items()},
              **{k: round(v, 3) for k, v in plain.items()}, "peak_rss_mb": round(peak_rss_mb(), 1)}  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
