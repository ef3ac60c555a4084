"""Customer churn: hand-worked cases of the model, then the real warehouse on a generated retailer."""

from __future__ import annotations

import math
import shutil
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sales_pipeline.anomalies import churn
from sales_pipeline.anomalies.churn import assess_customers, churn_alerts, churn_kpis, fit_prior, refresh_churn
from sales_pipeline.demo.retailer import DEFAULT_END, generate_retailer, write_sheets_workbook
from sales_pipeline.excel.importer import ImportSettings, import_workbook
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import empty_tables, query

AS_OF = date(2026, 5, 8)
PRIOR = (1.0, 10.0)  # r, α: a fixed population prior, so every p_silence below is worked by hand


def weekly(customer: str, last: date, n: int = 10, lines: int = 1) -> list[tuple[str, date]]:
    """`n` purchase days a week apart ending at `last`, each with `lines` rows (lines of one visit)."""
    return [(customer, last - timedelta(days=7 * k)) for k in range(n) for _ in range(lines)]


def hand_purchases() -> pd.DataFrame:
    rows = [
        *weekly("C001", AS_OF - timedelta(days=60), lines=3),  # three lines a visit: still 10 purchases
        ("C001", AS_OF + timedelta(days=1)),  # after as_of: not seen
        ("C001", AS_OF + timedelta(days=5)),
        *weekly("C002", AS_OF - timedelta(days=8)),
        *weekly("C003", AS_OF - timedelta(days=30)),
        *weekly("C004", AS_OF - timedelta(days=100)),
        ("C005", AS_OF - timedelta(days=100)),
        ("C005", AS_OF - timedelta(days=100)),  # two lines, one visit: a one-time buyer
        ("C006", AS_OF - timedelta(days=400)),
        ("C007", AS_OF + timedelta(days=2)),  # a customer only after as_of: not a customer yet
        (None, AS_OF - timedelta(days=3)),  # an anonymous walk-in is nobody's purchase
    ]
    return pd.DataFrame(rows, columns=["customer_id", "day"])


def test_statuses_and_p_silence_worked_by_hand():
    customers = assess_customers(hand_purchases(), AS_OF, prior=PRIOR).set_index("customer_id")

    assert list(customers.index) == ["C001", "C002", "C003", "C004", "C005", "C006"]
    assert list(customers.reset_index().columns) == churn.COLUMNS
    # Weekly regulars: x = 9 gaps over T = 63 days, each a wait of 6.5 on a continuous clock (purchases fall on
    # whole days): 58.5; posterior Gamma(1 + 9, 10 + 58.5); p = (68.5 / (68.5 + t)) ** 10 for a silence of t days.
    expected = {
        "C001": (60, (68.5 / 128.5) ** 10, "churned"),  # 0.0019: warning
        "C002": (8, (68.5 / 76.5) ** 10, "active"),  # 0.33
        "C003": (30, (68.5 / 98.5) ** 10, "at_risk"),  # 0.026
        "C004": (100, (68.5 / 168.5) ** 10, "churned"),  # 0.00012: critical
        # One-time buyers, the prior alone: p = 10 / (10 + t); lapsed below 5%, i.e. after 190 days.
        "C005": (100, 10 / 110, "one_time_recent"),
        "C006": (400, 10 / 410, "one_time_lapsed"),
    }
    for customer, (silent, p, status) in expected.items():
        row = customers.loc[customer]
        assert (row.days_silent, row.status) == (silent, status), customer
        assert row.p_silence == pytest.approx(p, rel=1e-9), customer
    assert churn.CRITICAL_P < customers.loc["C001", "p_silence"] < churn.CHURNED_P  # a warning, not critical
    assert churn.CHURNED_P < customers.loc["C003", "p_silence"] < churn.AT_RISK_P

    c001 = customers.loc["C001"]
    assert (c001.purchases, c001.first_purchase, c001.last_purchase) == (10, date(2026, 1, 5), date(2026, 3, 9))
    assert c001.mean_gap_days == pytest.approx(7.0)
    assert c001.as_of == AS_OF
    assert customers.loc["C005", "purchases"] == 1
    assert math.isnan(customers.loc["C005", "mean_gap_days"]) and math.isnan(customers.loc["C006", "mean_gap_days"])


def test_kpis_and_alerts_worked_by_hand():
    customers = assess_customers(hand_purchases(), AS_OF, prior=PRIOR)

    assert churn_kpis(customers, AS_OF) == {
        "as_of": AS_OF,
        "repeat_customers": 4,
        "active": 1,
        "at_risk": 1,
        "churned": 2,
        "churn_rate": 0.5,
        "one_time_recent": 1,
        "one_time_lapsed": 1,
    }

    alerts = {alert.entity_id: alert for alert in churn_alerts(customers)}
    assert set(alerts) == {"C001", "C004"}  # the one-time buyer C006, silent 400 days, is never alerted
    c001, c004 = alerts["C001"], alerts["C004"]
    assert (c001.kind, c001.severity, c001.entity_type, c001.detected_on) == (
        "customer_churn",
        "warning",
        "customer",
        AS_OF,
    )
    assert c004.severity == "critical"
    assert c001.dedupe_key == "customer_churn:C001:2026-03-09"
    assert c001.numbers == {
        "purchases": 10,
        "mean_gap_days": 7.0,
        "median_gap_days": 7.0,
        "days_silent": 60,
        "p_silence": 0.00185,  # three significant digits
        "last_purchase": "2026-03-09",
    }
    assert c001.message == (
        "Customer C001 has not bought for 60 days; they bought 10 times, a median of 7 days apart: "
        "a silence that long has a 0.19% chance if they were still a customer."
    )
    assert "0.012% chance" in c004.message


def test_the_fitted_prior_gives_the_same_verdicts_among_regulars():
    """Without a given prior, the population's own rhythm is fitted: weekly regulars make a tight, regular prior."""
    population = [row for k in range(12) for row in weekly(f"R{k:02d}", AS_OF - timedelta(days=k % 7), n=20)]
    frame = pd.DataFrame(
        [*population, *weekly("C001", AS_OF - timedelta(days=60)), *weekly("C002", AS_OF - timedelta(days=7))],
        columns=["customer_id", "day"],
    )

    customers = assess_customers(frame, AS_OF).set_index("customer_id")

    assert customers.loc["C001", "status"] == "churned"
    assert customers.loc["C002", "status"] == "active"
    assert (customers.drop(index=["C001", "C002"])["status"] == "active").all()
    # A weekly rhythm kept to the day: far less likely than the memoryless tail exp(-60 / 7) = 0.019%.
    assert customers.loc["C001", "p_silence"] < 1e-6 < math.exp(-60 / 7)
    # Due today: active. (A day late, a clockwork customer is at risk: 8 days has a 3% chance for them.)
    assert customers.loc["C002", "p_silence"] > churn.AT_RISK_P


def test_a_regular_among_sparse_buyers_is_judged_by_their_own_rhythm():
    """Ten purchases 30 days apart, then 200 days of silence, among 300 customers buying a few times at random.

    The rates' prior fitted on sparse shoppers is tight around their pace (a purchase every ~200 days), so a
    rate estimate alone barely hears the regular's ten purchases; what tells them apart is how regular their
    gaps are, which the regularity prior (fitted, near memoryless for this population) lets their own data show.
    """
    rng = np.random.default_rng(3)
    start = AS_OF - timedelta(days=1400)
    sparse = [
        (f"S{k:03d}", start + timedelta(days=int(day)))
        for k in range(300)
        for day in np.sort(rng.uniform(0, 1400, rng.integers(2, 8)))
    ]
    last = AS_OF - timedelta(days=200)
    regular = [("R001", last - timedelta(days=30 * k)) for k in range(10)]
    frame = pd.DataFrame([*sparse, *regular], columns=["customer_id", "day"])

    customers = assess_customers(frame, AS_OF).set_index("customer_id")

    row = customers.loc["R001"]
    assert (row.status, row.purchases, row.median_gap_days, row.days_silent) == ("churned", 10, 30.0, 200)
    [alert] = [a for a in churn_alerts(customers.reset_index()) if a.entity_id == "R001"]
    assert alert.severity == "critical"
    assert "they bought 10 times, a median of 30 days apart" in alert.message
    assert alert.numbers["median_gap_days"] == 30.0
    # The sparse buyers keep their verdicts: chance alone, ~0.5% of them below CHURNED_P.
    assert (customers.drop(index="R001")["status"] == "churned").sum() <= 3


def test_the_prior_is_recovered_by_maximum_likelihood():
    rng = np.random.default_rng(7)
    r, alpha = 3.0, 60.0  # mean gap 20 days
    rates = rng.gamma(r, 1 / alpha, 4000)
    gaps = rng.integers(1, 30, 4000)
    spans = rng.gamma(gaps, 1 / rates)  # the sum of `gaps` exponential gaps

    fitted_r, fitted_alpha = fit_prior(gaps, spans)

    assert fitted_r == pytest.approx(r, rel=0.1)
    assert fitted_alpha / fitted_r == pytest.approx(alpha / r, rel=0.05)
    assert fit_prior(np.array([3, 4]), np.array([30.0, 40.0])) == churn.FALLBACK_PRIOR  # too few to fit


def test_no_purchases_no_customers():
    customers = assess_customers(
        pd.DataFrame({"customer_id": [None, "C1"], "day": [AS_OF, AS_OF + timedelta(1)]}), AS_OF
    )
    assert customers.empty and list(customers.columns) == churn.COLUMNS
    assert churn_kpis(customers, AS_OF)["churn_rate"] is None
    assert churn_alerts(customers) == []


# --- the warehouse ------------------------------------------------------------------------------------


def insert_sales(url: str, rows: list[tuple[str | None, date]]) -> None:
    with transaction(url) as cursor:
        for n, (customer, day) in enumerate(rows):
            cursor.execute(
                "INSERT INTO core.sales (order_id, line_number, sold_at, sale_date, store_id, customer_id,"
                " product_id, quantity, unit_price, revenue, source)"
                " VALUES (%s, 1, %s, %s, 'S01', %s, 'P01', 1, 2.5, 2.5, 'excel')",
                (f"O{n:05d}", datetime.combine(day, datetime.min.time().replace(hour=10)), day, customer),
            )


def test_refresh_tracks_a_customer_who_comes_back_and_stops_again(empty_warehouse):
    url = empty_warehouse
    first_stop = date(2026, 3, 9)
    second_stop = first_stop + timedelta(days=70 + 7 * 9)
    rows = [row for k in range(8) for row in weekly(f"R{k}", second_stop + timedelta(days=60 - k), n=30)]
    rows += weekly("C010", first_stop) + weekly("C010", second_stop)  # 70 quiet days between the two runs
    rows += [("C020", first_stop + timedelta(days=55)), (None, date(2026, 2, 1)), (None, first_stop)]
    insert_sales(url, rows)

    with transaction(url) as cursor:
        kpis, alerts = refresh_churn(cursor, first_stop + timedelta(days=60))
    assert [(a.entity_id, a.dedupe_key) for a in alerts] == [("C010", "customer_churn:C010:2026-03-09")]
    assert (kpis["churned"], kpis["repeat_customers"], kpis["one_time_recent"]) == (1, 9, 1)

    with transaction(url) as cursor:
        kpis, alerts = refresh_churn(cursor)  # as_of: the latest sale
    assert kpis["as_of"] == second_stop + timedelta(days=60)
    assert (kpis["churned"], kpis["repeat_customers"], kpis["one_time_lapsed"]) == (1, 9, 1)
    assert [a.dedupe_key for a in alerts] == [f"customer_churn:C010:{second_stop.isoformat()}"]
    assert query(url, "SELECT dedupe_key, active, resolved_at IS NOT NULL FROM ml.anomalies ORDER BY dedupe_key") == [
        ("customer_churn:C010:2026-03-09", False, True),  # came back: that situation is over
        (f"customer_churn:C010:{second_stop.isoformat()}", True, False),
    ]
    assert query(url, "SELECT count(*), min(as_of), max(as_of) FROM ml.customer_churn") == [
        (10, kpis["as_of"], kpis["as_of"])  # the anonymous walk-ins are nobody
    ]
    assert query(url, "SELECT count(*) FROM ml.churn_kpis") == [(2,)]


def test_refresh_without_sales_writes_nothing_and_closes_open_alerts(empty_warehouse):
    with transaction(empty_warehouse) as cursor:
        cursor.execute(
            "INSERT INTO ml.anomalies (dedupe_key, kind, severity, entity_type, entity_id, detected_on, message,"
            " numbers) VALUES ('customer_churn:C9:2026-01-01', 'customer_churn', 'warning', 'customer', 'C9',"
            " '2026-04-01', 'gone', '{}')"
        )
        kpis, alerts = refresh_churn(cursor)
    assert alerts == [] and kpis["as_of"] is None and kpis["repeat_customers"] == 0
    assert query(empty_warehouse, "SELECT count(*) FROM ml.customer_churn")[0][0] == 0
    assert query(empty_warehouse, "SELECT count(*) FROM ml.churn_kpis")[0][0] == 0
    assert query(empty_warehouse, "SELECT active FROM ml.anomalies") == [(False,)]


# --- a generated retailer, imported the real way --------------------------------------------------------

SEED, SCALE = 42, 2
CALM_AS_OF = DEFAULT_END - timedelta(days=120)  # before any planted churner stopped (88-96 days before the end)


@pytest.fixture(scope="module")
def retailer():
    return generate_retailer(scale=SCALE, seed=SEED)


@pytest.fixture(scope="module")
def retailer_workbook(retailer, tmp_path_factory) -> Path:
    return write_sheets_workbook(tmp_path_factory.mktemp("churn") / "retailer.xlsx", retailer.frames())


@pytest.fixture
def retailer_warehouse(warehouse_url, retailer_workbook, tmp_path) -> str:
    """The warehouse holding the generated retailer and no churn results yet.

    Imported once per module: a later import of the same bytes is a recorded duplicate and loads
    nothing, unless a test emptied the warehouse (empty_warehouse also empties the import ledger).
    """
    ledger = query(warehouse_url, "SELECT count(*) FROM ops.import_ledger WHERE file_name = 'retailer.xlsx'")[0][0]
    if not ledger:
        empty_tables(warehouse_url)  # what another module left behind must not mix in
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        path = Path(shutil.copy(retailer_workbook, inbox / retailer_workbook.name))
        settings = ImportSettings(tmp_path / "archive", tmp_path / "rejected", dayfirst=True, timezone="UTC")
        assert import_workbook(partial(transaction, warehouse_url), path, settings).status == "loaded"
    with transaction(warehouse_url) as cursor:
        cursor.execute("TRUNCATE ml.anomalies, ml.customer_churn, ml.churn_kpis")
    return warehouse_url


def churn_table(url: str) -> list[tuple]:
    return query(
        url,
        "SELECT customer_id, as_of, purchases, first_purchase, last_purchase, mean_gap_days, days_silent,"
        " p_silence, status FROM ml.customer_churn ORDER BY customer_id",
    )


@pytest.mark.slow
def test_planted_churners_are_found_on_a_generated_retailer(retailer_warehouse, retailer):
    url = retailer_warehouse
    planted = set(retailer.planted.churned_customer_ids)

    with transaction(url) as cursor:
        kpis, alerts = refresh_churn(cursor)

    assert kpis["as_of"] == DEFAULT_END
    rows = churn_table(url)
    by_id = {row[0]: row for row in rows}
    status = {customer: row[8] for customer, row in by_id.items()}
    known = query(url, "SELECT count(DISTINCT customer_id) FROM core.sales WHERE customer_id IS NOT NULL")[0][0]
    assert len(rows) == known

    # Every planted churner is at least at risk; the ones whose silence says something are churned.
    # A planted churner missed is one whose silence is under 4.5 of their mean gaps: even for a rhythm
    # known exactly, that silence has a >1% chance (exp(-4.5)), as it has for ~1 in 90 regulars, so
    # flagging it would cost more false alarms than the whole planted set (see churn.py).
    for customer in planted:
        assert status[customer] in ("churned", "at_risk"), customer
        if status[customer] == "at_risk":
            assert by_id[customer][6] < 4.5 * by_id[customer][5], by_id[customer]
    found = {c for c in planted if status[c] == "churned"}
    assert len(found) >= len(planted) - 1
    false_alarms = {c for c, s in status.items() if s == "churned"} - planted
    # ~490 regulars x CHURNED_P 0.005 = ~2.5 expected by chance alone.
    assert len(false_alarms) <= len(planted)

    # The KPI row agrees with the table.
    counts = dict(query(url, "SELECT status, count(*) FROM ml.customer_churn GROUP BY status"))
    kpi_row = query(
        url,
        "SELECT repeat_customers, active, at_risk, churned, churn_rate, one_time_recent,"
        " one_time_lapsed FROM ml.churn_kpis WHERE as_of = %s",
        (DEFAULT_END,),
    )
    repeat = counts.get("active", 0) + counts.get("at_risk", 0) + counts["churned"]
    assert kpi_row == [
        (
            repeat,
            counts.get("active", 0),
            counts.get("at_risk", 0),
            counts["churned"],
            counts["churned"] / repeat,
            counts.get("one_time_recent", 0),
            counts.get("one_time_lapsed", 0),
        )
    ]
    assert kpi_row[0][3] == len(found) + len(false_alarms)

    # One anomaly per churned customer, with its numbers and words.
    anomalies = query(
        url,
        "SELECT entity_id, severity, dedupe_key, numbers, message, first_seen_at"
        " FROM ml.anomalies WHERE kind = 'customer_churn' AND active",
    )
    assert {a[0] for a in anomalies} == found | false_alarms == {a.entity_id for a in alerts}
    for entity_id, severity, key, numbers, message, _ in anomalies:
        assert key == f"customer_churn:{entity_id}:{by_id[entity_id][4].isoformat()}"
        assert severity in ("warning", "critical")
        assert numbers["days_silent"] == by_id[entity_id][6] and numbers["p_silence"] < churn.CHURNED_P
        assert message.startswith(f"Customer {entity_id} has not bought for {numbers['days_silent']} days")

    # Again: the same rows, no duplicate anomaly, first_seen_at kept.
    with transaction(url) as cursor:
        again, _ = refresh_churn(cursor)
    assert again == kpis
    assert churn_table(url) == rows
    second = query(
        url,
        "SELECT entity_id, severity, dedupe_key, numbers, message, first_seen_at"
        " FROM ml.anomalies WHERE kind = 'customer_churn'",
    )
    assert sorted(second) == sorted(anomalies)
    assert query(url, "SELECT count(*) FROM ml.churn_kpis")[0][0] == 1


def test_a_calm_period_flags_none_of_the_planted_churners(retailer_warehouse, retailer):
    url = retailer_warehouse
    planted = set(retailer.planted.churned_customer_ids)

    with transaction(url) as cursor:
        kpis, alerts = refresh_churn(cursor, CALM_AS_OF)

    status = {row[0]: row[8] for row in churn_table(url)}
    assert all(status[c] == "active" for c in planted), {c: status[c] for c in planted}
    flagged = {a.entity_id for a in alerts}
    assert not flagged & planted
    assert len(flagged) <= len(planted)  # the same chance level as at the end: ~2.5 expected
    assert query(url, "SELECT max(last_purchase) FROM ml.customer_churn")[0][0] <= CALM_AS_OF
    assert query(url, "SELECT as_of, churned FROM ml.churn_kpis") == [(CALM_AS_OF, kpis["churned"])]
