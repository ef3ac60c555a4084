"""Forecasts and sales drops on real retail data, imported as a new user would, through the production path.

- Superstore (Tableau's sample, 2014-2017) through data/mappings/superstore.yaml: 1,862 products that sell on
  a median gap of 146 days, four regions that are sales channels, not shops.
- Rossmann (20 German drug stores, 2013-2015) through data/mappings/rossmann.yaml: daily store totals with
  closed days (Open = 0) and promotions (Promo = 1); and the same file with one store's last two weeks at 60%.

Each is imported by the importer, its daily KPIs refreshed, and its sales forecast and sales drops
materialised by Dagster, as the pipeline runs them. Skipped when ../shared/datasets is absent.
"""

from __future__ import annotations

import csv
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
from scipy.stats import binom

from sales_pipeline.analytics import marts
from sales_pipeline.anomalies.drops import detect_sales_drops
from sales_pipeline.defs.anomalies.assets import sales_drops
from sales_pipeline.defs.forecasting.assets import build_sales_forecast
from sales_pipeline.excel.importer import ImportSettings, import_workbook
from sales_pipeline.excel.mapping import load_mapping
from sales_pipeline.forecasting import queries
from sales_pipeline.resources import ForecastingResource, WarehouseResource
from sales_pipeline.warehouse import embedded
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import DATASETS, PROJECT, empty_tables, query

pytestmark = pytest.mark.slow

SUPERSTORE = DATASETS / "superstore.xlsx"
ROSSMANN = DATASETS / "store_retail.csv"
ROSSMANN_END = date(2015, 7, 31)
PLANTED_STORE, PLANTED_FROM, PLANTED_RATIO = "1", ROSSMANN_END - timedelta(days=13), 0.6
needs_superstore = pytest.mark.skipif(not SUPERSTORE.is_file(), reason=f"{SUPERSTORE} is absent")
needs_rossmann = pytest.mark.skipif(not ROSSMANN.is_file(), reason=f"{ROSSMANN} is absent")


def load(url: str, path: Path, mapping: str, folder: Path, timezone: str) -> None:
    """Import `path` through data/mappings/<mapping>.yaml, refresh the KPIs, forecast sales, look for drops."""
    for name in ("inbox", "archive", "rejected"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    inbox_copy = Path(shutil.copy(path, folder / "inbox" / path.name))
    settings = ImportSettings(folder / "archive", folder / "rejected", timezone=timezone, dayfirst=False)
    warehouse = WarehouseResource(database_url=url)
    the_mapping = load_mapping(PROJECT / "data" / "mappings" / f"{mapping}.yaml")
    result = import_workbook(warehouse.transaction, inbox_copy, settings, the_mapping)
    assert result.status == "loaded", result.reason
    with transaction(url) as cursor:
        cursor.execute("SELECT min(sale_date), max(sale_date) FROM core.sales")
        marts.refresh_daily_kpis(cursor, *cursor.fetchone(), timezone)
    resources = {"warehouse": warehouse, "forecasting": ForecastingResource(timezone=timezone, workers=2)}
    assert dg.materialize([build_sales_forecast(holiday_country=None), sales_drops], resources=resources).success


def latest_forecasts(url: str, scope: str) -> dict[tuple[str, date], float]:
    rows = query(
        url,
        "SELECT f.scope_id, f.day, f.yhat::numeric FROM ml.forecasts f JOIN ml.forecast_series s"
        " USING (target, scope, scope_id, origin) WHERE f.target = 'sales' AND f.scope = %s",
        (scope,),
    )
    return {(scope_id, day): yhat for scope_id, day, yhat in rows}


def sums_per_day(forecasts: dict[tuple[str, date], float]) -> dict[date, float]:
    days: dict[date, float] = {}
    for (_, day), yhat in forecasts.items():
        days[day] = days.get(day, 0) + yhat
    return days


def drops(url: str, severity: str | None = None) -> list[tuple]:
    return query(
        url,
        "SELECT entity_type, entity_id, severity, message, numbers FROM ml.anomalies"
        " WHERE kind = 'sales_drop' AND active AND (%s IS NULL OR severity = %s) ORDER BY entity_type, entity_id",
        (severity, severity),
    )


# --- Superstore ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def superstore(warehouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    empty_tables(warehouse_url)
    load(warehouse_url, SUPERSTORE, "superstore", tmp_path_factory.mktemp("superstore"), "America/Los_Angeles")
    return warehouse_url


@needs_superstore
def test_superstore_regions_are_channels_whose_forecasts_add_up_to_the_total(superstore: str) -> None:
    assert query(superstore, "SELECT DISTINCT kind FROM core.stores") == [("channel",)]
    # A region with no order on a day sold nothing: no region is ever forecast closed.
    assert query(superstore, "SELECT count(*) FROM ml.forecasts WHERE scope = 'store' AND closed") == [(0,)]
    total = {day: yhat for (_, day), yhat in latest_forecasts(superstore, "all").items()}
    regions, categories = (
        sums_per_day(latest_forecasts(superstore, "store")),
        sums_per_day(latest_forecasts(superstore, "category")),
    )
    assert len(total) == 7 and all(yhat > 0 for yhat in total.values())
    assert regions == total and categories == total  # to the cent (numeric), so well within 1%
    [(reconciliation,)] = query(
        superstore, "SELECT DISTINCT reconciliation FROM ml.forecast_series WHERE scope IN ('all', 'store')"
    )
    assert reconciliation in ("bottom_up", "wls_var", "ols")


@needs_superstore
def test_superstore_raises_a_handful_of_critical_drops_each_under_its_bound(superstore: str) -> None:
    """The old streak rule called 74 products critical, each one silent as it always is (a median gap of 146 days)."""
    critical = drops(superstore, "critical")
    assert len(critical) <= 3, critical
    for _, _, _, message, numbers in critical:
        assert numbers["shortfall_pct"] >= 20 and numbers["actual"] < numbers["lower_bound"], message
        assert f"{numbers['actual']:,.2f} against {numbers['expected']:,.2f} expected" in message


@needs_superstore
def test_no_product_is_critical_for_a_silence_its_own_history_makes_likely(superstore: str) -> None:
    """Its selling days in the year before the silence, as a daily chance: a silence above 1% likely is no critical."""
    products = [row for row in drops(superstore) if row[0] == "product"]
    for _, product, severity, message, numbers in products:
        [(open_days, selling_days)] = query(
            superstore,
            "SELECT count(*), count(*) FILTER (WHERE revenue > 0) FROM generate_series(%s::date - 365, %s::date - 1,"
            " '1 day') AS d(day) LEFT JOIN marts.daily_kpis k ON k.day = d.day AND k.scope = 'product'"
            " AND k.scope_id = %s WHERE d.day >= (SELECT min(day) FROM marts.daily_kpis WHERE scope_id = %s)",
            (numbers["first_day"], numbers["first_day"], product, product),
        )
        chance = binom.cdf(numbers["selling_days"], numbers["days"], selling_days / max(open_days, 1))
        assert severity != "critical" or chance < 0.01, (message, chance)
        assert "over the year before it sold on" in message
    # The products' accuracy leaves out those whose every scored day was a zero forecast of zero sales.
    # TSB's rate of a product silent for years decays to nothing: forecast 0.00, sold 0, every scored day.
    with transaction(superstore) as cursor:
        summary = queries.accuracy_summary(cursor, "sales").set_index("scope")
    assert 0 < summary.loc["product", "trivially_zero"] < summary.loc["product", "series"]
    assert summary.loc["product", "median_mase"] > 0  # over the others: no longer a flattering 0.000


# --- Rossmann -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rossmann(warehouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    empty_tables(warehouse_url)
    load(warehouse_url, ROSSMANN, "rossmann", tmp_path_factory.mktemp("rossmann"), "Europe/Berlin")
    return warehouse_url


@needs_rossmann
def test_rossmann_forecasts_know_its_closures_and_add_up(rossmann: str) -> None:
    # Every store closes on Sundays (a dated Open = 0 line each week): Sunday 2 August is forecast closed, at 0.
    closed = query(rossmann, "SELECT DISTINCT day, yhat FROM ml.forecasts WHERE scope = 'store' AND closed")
    assert closed == [(date(2015, 8, 2), 0.0)]
    total = {day: yhat for (_, day), yhat in latest_forecasts(rossmann, "all").items()}
    assert sums_per_day(latest_forecasts(rossmann, "store")) == total
    # A store with promotions has two candidates: Prophet, which takes them as an input, and seasonal naive,
    # which looks back to the latest same weekday on promotion as the day is.
    models = query(rossmann, "SELECT DISTINCT model FROM ml.forecast_series WHERE scope = 'store' ORDER BY 1")
    assert {model for (model,) in models} <= {"prophet", "seasonal_naive"} and ("prophet",) in models


@needs_rossmann
def test_rossmann_closed_days_and_promotion_ends_raise_no_drop(rossmann: str) -> None:
    """Judged on each day the backtest covers: no drop on a closed day, none begun by a promotion's end, no critical."""
    # Rossmann's promotions are one row per day; a promotion ends on a day the next one is not promoted.
    promoted = set(query(rossmann, "SELECT store_id, starts_on FROM core.promotions"))
    promotion_ends = {
        (store, day + timedelta(days=after))
        for store, day in promoted
        if (store, day + timedelta(days=1)) not in promoted
        for after in (1, 2, 3)
    }
    closed = set(query(rossmann, "SELECT store_id, day FROM core.store_calendar WHERE NOT open"))
    alerts = {}
    with transaction(rossmann) as cursor:
        for back in range(28):
            for alert in detect_sales_drops(cursor, ROSSMANN_END - timedelta(days=back)):
                alerts[alert.dedupe_key] = alert
    for alert in alerts.values():
        first, last = date.fromisoformat(alert.numbers["first_day"]), date.fromisoformat(alert.numbers["last_day"])
        assert (alert.entity_id, first) not in closed and (alert.entity_id, last) not in closed, alert.message
        assert (alert.entity_id, first) not in promotion_ends, alert.message
        assert alert.severity != "critical", alert.message
    assert len(alerts) <= 5  # warnings of a summer the forecast does not know of, at most


@pytest.fixture(scope="module")
def planted(pipeline_home: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Rossmann with store 1 selling 60% of its sales over its last two weeks, in a database of its own."""
    folder = tmp_path_factory.mktemp("planted")
    source = folder / "store_retail.csv"
    with ROSSMANN.open(newline="") as original, source.open("w", newline="") as changed:
        rows = csv.DictReader(original)
        writer = csv.DictWriter(changed, rows.fieldnames)
        writer.writeheader()
        for row in rows:
            if row["Store"] == PLANTED_STORE and date.fromisoformat(row["Date"]) >= PLANTED_FROM:
                row["Sales"] = str(round(int(row["Sales"]) * PLANTED_RATIO))
            writer.writerow(row)
    name = f"tests_{os.getpid()}_planted"
    url = embedded.own_database(name, recreate=True)
    load(url, source, "rossmann", folder, "Europe/Berlin")
    yield url
    embedded.drop_own_database(name)


@needs_rossmann
def test_a_drop_planted_in_one_rossmann_store_is_found(planted: str) -> None:
    critical = drops(planted, "critical")
    assert [(entity_type, entity_id) for entity_type, entity_id, *_ in critical] == [("store", PLANTED_STORE)]
    [(_, _, _, message, numbers)] = critical
    # The run reaches into the planted fortnight (a slow summer week before it may open it) and is deep.
    assert date.fromisoformat(numbers["last_day"]) >= PLANTED_FROM + timedelta(days=5), message
    assert numbers["shortfall_pct"] >= 20 and numbers["actual"] < numbers["lower_bound"], message
