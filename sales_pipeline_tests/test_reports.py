"""The daily PDF report and the analytics export, read back as a manager (pypdf) and a spreadsheet (openpyxl) would.

A small retailer is written into the real warehouse and its marts refreshed by the production code;
forecasts and anomalies are written through their documented columns (ml.forecasts) and functions
(record_anomalies), so the expected figures are known.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import zipfile
from pathlib import Path

import openpyxl
import pypdf
import pypdfium2
import pytest

from sales_pipeline.analytics import marts
from sales_pipeline.anomalies.store import record_anomalies
from sales_pipeline.defs.reporting import reporting_definitions
from sales_pipeline.i18n import Formatter
from sales_pipeline.records import Alert
from sales_pipeline.reporting.build import build_report, page_one_png
from sales_pipeline.reporting.data import Scope, suggested_order
from sales_pipeline.reporting.export import build_export
from sales_pipeline.settings import Settings
from sales_pipeline.warehouse.db import transaction
from sales_pipeline_tests.conftest import PROJECT, empty_tables, query

DAY = dt.date(2026, 11, 22)  # a Sunday
HISTORY = 120
PRODUCTS = [  # id, name, category, price, cost, units a day in S01 (S02 sells half, rounded up)
    ("P01", "Multigrain loaf 500g", "Bakery", 4.0, 1.5, 9),
    ("P02", "Butter croissant", "Bakery", 1.5, 0.5, 12),
    ("P03", "Espresso beans 1kg", "Coffee", 19.0, 11.0, 2),
    ("P04", "Green tea 20 bags", "Tea", 3.5, 1.0, 4),
    ("P05", '=HYPERLINK("http://x","y")', "Snacks", 2.0, 0.8, 5),
    ("P06", "@SUM(A1)", "Snacks", 2.5, 1.0, 3),
    ("P07", "Strawberry jam 370g", "Grocery", 3.0, 1.2, 1),  # sells 20 a day the week before: the faller
]
STORES = [("S01", "Paris Marais"), ("S02", "Lyon Part-Dieu"), ("S03", "Lille Flandres")]
S03_DAYS = 10  # a new store: 10 days of history, no stock count


def units(product: tuple, store: str, day: dt.date) -> int:
    base = product[5] if store == "S01" else -(-product[5] // 2)
    if product[0] == "P07" and DAY - dt.timedelta(days=13) <= day <= DAY - dt.timedelta(days=7):
        base = 20
    return base + (day.toordinal() % 3)  # a little movement from day to day


def sales_rows() -> list[tuple]:
    rows = []
    for offset in range(HISTORY):
        day = DAY - dt.timedelta(days=offset)
        for store, _ in STORES:
            if store == "S03" and offset >= S03_DAYS:
                continue
            for line, product in enumerate(PRODUCTS, start=1):
                quantity = units(product, store, day)
                order = f"{store}-{day.isoformat()}"
                rows.append((order, line, f"{day} 12:00+00", day, store, f"C{line}", product[0], quantity,
                             product[3], round(quantity * product[3], 2), "excel"))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def retailer(warehouse_url: str) -> str:
    """The small retailer in the warehouse, its marts refreshed, its forecasts and anomalies written."""
    url = empty_tables(warehouse_url)
    with transaction(url) as cursor:
        cursor.executemany("INSERT INTO core.stores (store_id, name, source) VALUES (%s, %s, 'excel')", STORES)
        cursor.executemany(
            "INSERT INTO core.products (product_id, name, category, unit_price, unit_cost, lead_time_days,"
            " reorder_point, source) VALUES (%s, %s, %s, %s, %s, 7, 5, 'excel')",
            [p[:5] for p in PRODUCTS],
        )
        cursor.executemany(
            "INSERT INTO core.sales (order_id, line_number, sold_at, sale_date, store_id, customer_id, product_id,"
            " quantity, unit_price, revenue, source) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            sales_rows(),
        )
        cursor.executemany(
            "INSERT INTO core.stock (product_id, store_id, as_of, on_hand, on_order, source)"
            " VALUES (%s, %s, %s, %s, 0, 'excel')",
            [(p[0], store, DAY, 40) for p in PRODUCTS for store in ("S01", "S02")],
        )
        marts.refresh_daily_kpis(cursor, DAY - dt.timedelta(days=HISTORY), DAY, "UTC")
        marts.refresh_sales_trends(cursor, DAY - dt.timedelta(days=HISTORY), DAY)
        marts.refresh_stock_health(cursor, "UTC")
        marts.refresh_top_products(cursor, DAY, 5, "UTC")
        _forecasts(cursor)
        _anomalies(cursor)
    return url


def _forecasts(cursor) -> None:
    """A week-old forecast 10% above what happened, and the next 7 days, for the chain, stores, categories."""
    cursor.execute(
        """
        INSERT INTO ml.forecasts (target, scope, scope_id, origin, day, model, yhat, yhat_lower_80, yhat_upper_80,
                                  yhat_lower_95, yhat_upper_95)
        SELECT 'sales', scope, scope_id, %(origin)s, day, 'prophet', revenue * 1.1, revenue * 0.9, revenue * 1.3,
               revenue * 0.8, revenue * 1.4
        FROM marts.daily_kpis WHERE scope IN ('all', 'store', 'category') AND day > %(origin)s
        UNION ALL
        SELECT 'sales', scope, scope_id, %(day)s, %(day)s + n, 'prophet', revenue, revenue * 0.9, revenue * 1.1,
               revenue * 0.8, revenue * 1.2
        FROM marts.daily_kpis, generate_series(1, 7) AS n
        WHERE scope IN ('all', 'store', 'category') AND day = %(day)s
        """,
        {"origin": DAY - dt.timedelta(days=7), "day": DAY},
    )
    cursor.executemany(
        "INSERT INTO ml.churn_kpis (as_of, repeat_customers, active, at_risk, churned, churn_rate, one_time_recent,"
        " one_time_lapsed) VALUES (%s, 100, 90, 5, %s, %s, 0, 0)",
        [(DAY - dt.timedelta(days=n), 5 + n % 2, (5 + n % 2) / 100) for n in range(30)],
    )


def _anomalies(cursor) -> None:
    numbers = {"on_hand": 6, "projected_on_hand": 6, "on_order": 0, "daily_demand": 2.4, "days_until_stockout": 2.5,
               "lead_time_days": 7}  # fmt: skip
    stock = Alert("stock_risk", "critical", "product_store", "P03@S01", DAY,
                  "Product P03 (Espresso beans 1kg) at store S01 will run out in about 2.5 days.", numbers,
                  f"stock_risk:P03@S01:{DAY}")  # fmt: skip
    record_anomalies(cursor, "stock_risk", [stock])
    drop = Alert("sales_drop", "warning", "store", "S02", DAY, "Store S02 (Lyon Part-Dieu) revenue fell below its"
                 " forecast for 2 days in a row.", {"days": 2}, f"sales_drop:store:S02:{DAY}")  # fmt: skip
    record_anomalies(cursor, "sales_drop", [drop])


def report(url: str, scope: str, locale: str, folder: Path, day: dt.date = DAY):
    with transaction(url) as cursor:
        return build_report(cursor, day, Scope.parse(scope), Formatter(locale, "EUR"), "UTC", folder)


def text_of(path: str) -> str:
    reader = pypdf.PdfReader(path)
    return "\n".join(page.extract_text() for page in reader.pages)


def spaced(text: str) -> str:
    """Babel's no-break spaces as the PDF holds them: reportlab keeps them together on a line, then writes spaces."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


def day_kpis(url: str, scope: str = "all", scope_id: str = "") -> tuple:
    [row] = query(url, "SELECT revenue, orders, units, gross_margin FROM marts.daily_kpis"
                  " WHERE day = %s AND scope = %s AND scope_id = %s", (DAY, scope, scope_id))  # fmt: skip
    return row


SECTIONS = {
    "en": ["1. Headline figures", "2. Revenue, last 90 days and the next 7", "3. Revenue by category and by store",
           "4. Top 5 products and biggest fallers", "5. Stock at risk", "6. Anomalies and churn",
           "7. Forecast accuracy"],
    "fr": ["1. Chiffres clés", "2. Chiffre d’affaires : les 90 derniers jours", "3. Chiffre d’affaires par catégorie",
           "4. Top 5 des produits", "5. Stock à risque", "6. Anomalies et attrition", "7. Précision des prévisions"],
}  # fmt: skip


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_chain_report_holds_the_days_figures_in_the_locale(retailer: str, tmp_path: Path, locale: str) -> None:
    built, rendered = report(retailer, "all", locale, tmp_path)
    text = text_of(built.path)
    fmt = Formatter(locale, "EUR")
    revenue, orders, units_sold, margin = day_kpis(retailer)
    for figure in (fmt.money(revenue), fmt.number(orders), fmt.number(units_sold), fmt.money(margin)):
        assert spaced(figure) in text
    assert fmt.date(DAY) in text  # 'Sunday, November 22, 2026' / 'dimanche 22 novembre 2026'
    if locale == "fr":
        assert re.search(r"\d \d{3},\d\d €", text)  # 2 597,00 €: thousands and the euro after, with spaces
    positions = [text.find(title) for title in SECTIONS[locale]]
    assert -1 not in positions and positions == sorted(positions)
    top5 = [name for (name,) in query(retailer, "SELECT product_name FROM marts.top_products WHERE as_of = %s"
            " AND period = 'last_7_days' AND scope = 'all' ORDER BY rank, product_id", (DAY,))][:5]  # fmt: skip
    at = [text.find(name) for name in top5]
    assert -1 not in at and at == sorted(at), (top5, at)
    assert "Espresso beans 1kg (P03)" in text  # at risk
    assert "Strawberry jam 370g" in text.split(SECTIONS[locale][3])[1]  # the faller
    assert built.pages == rendered.pages == len(pypdf.PdfReader(built.path).pages) >= 3
    assert Path(built.path).read_bytes() == rendered.pdf


def test_report_embeds_its_fonts_charts_outline_and_metadata(retailer: str, tmp_path: Path) -> None:
    built, _ = report(retailer, "all", "fr", tmp_path)
    reader = pypdf.PdfReader(built.path)
    fonts, images = set(), 0
    for page in reader.pages:
        resources = page["/Resources"]
        for font in resources.get("/Font", {}).values():
            font = font.get_object()
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"] if "/DescendantFonts" in font \
                else font.get("/FontDescriptor")  # fmt: skip
            assert descriptor is not None and "/FontFile2" in descriptor.get_object(), font["/BaseFont"]
            fonts.add(str(font["/BaseFont"]).split("+")[-1])
        images += len(page.images)
    assert fonts == {"DejaVuSans", "DejaVuSans-Bold"}
    assert images >= 5  # revenue, categories, stores, churn, accuracy
    assert [item.title for item in reader.outline] == [
        "1. Chiffres clés", "2. Chiffre d’affaires : les 90 derniers jours et les 7 prochains",
        "3. Chiffre d’affaires par catégorie et par magasin, 7 derniers jours contre les 7 précédents",
        "4. Top 5 des produits et plus fortes baisses", "5. Stock à risque", "6. Anomalies et attrition",
        "7. Précision des prévisions"]  # fmt: skip
    assert reader.metadata.title == "Rapport quotidien des ventes : Toute l’enseigne, dimanche 22 novembre 2026"
    assert reader.metadata.author == "sales_pipeline"
    assert "Page 1 sur " + str(len(reader.pages)) in reader.pages[0].extract_text()
    # Page 1 as a picture, to look at (kept out of git, under the tests' home).
    png = page_one_png(Path(built.path).read_bytes(), 1200)
    (PROJECT / ".sales_pipeline" / "tests" / "report-page-1.png").write_bytes(png)
    page = pypdfium2.PdfDocument(built.path)[0]
    assert page.get_textpage().get_text_range().count("€") == 9  # revenue, basket and margin x 3 periods


def test_a_store_report_shows_its_own_figures_only(retailer: str, tmp_path: Path) -> None:
    built, _ = report(retailer, "store:S02", "en", tmp_path)
    text = text_of(built.path)
    revenue, *_ = day_kpis(retailer, "store", "S02")
    assert spaced(fmt_en().money(revenue)) in text and "Store S02 Lyon Part-Dieu" in text
    assert "Store S02 (Lyon Part-Dieu) revenue fell below" in text
    assert "Espresso beans 1kg (P03)" not in text  # S01's stock risk is not S02's business
    assert "No product is at risk of running out" in text
    assert built.scope == "store:S02" and built.path.endswith("report-2026-11-22-store-S02-en.pdf")


def test_a_new_store_without_stock_counts_says_so(retailer: str, tmp_path: Path) -> None:
    text = text_of(report(retailer, "store:S03", "en", tmp_path)[0].path)
    assert "Store S03 Lille Flandres has no stock counts: stock at risk can only be judged once a count" in text
    assert "Store S03 Lille Flandres has 10 days of sales history up to Sunday, November 22, 2026" in text


def test_a_day_without_sales_says_so(retailer: str, tmp_path: Path) -> None:
    after = DAY + dt.timedelta(days=1)
    built, _ = report(retailer, "all", "fr", tmp_path, day=after)
    text = text_of(built.path)
    assert "Aucune vente n’a été enregistrée le lundi 23 novembre 2026" in text
    assert "0,00 €" in text


def test_a_category_report_and_an_unknown_scope(retailer: str, tmp_path: Path) -> None:
    text = text_of(report(retailer, "category:Bakery", "en", tmp_path)[0].path)
    assert "Category Bakery" in text and "Butter croissant" in text and "Green tea" not in text
    with pytest.raises(ValueError, match=r"no store 'S99' in core\.stores"):
        report(retailer, "store:S99", "en", tmp_path)
    with pytest.raises(ValueError, match="'shop:S01' is not all, store:<store id> or category:<category>"):
        Scope.parse("shop:S01")


def test_the_record_follows_the_file_and_a_rebuild_replaces_it(retailer: str, tmp_path: Path) -> None:
    first, _ = report(retailer, "store:S01", "en", tmp_path)
    second, _ = report(retailer, "store:S01", "en", tmp_path)
    [(path, pages, size, sha256, headline)] = query(
        retailer, "SELECT path, pages, bytes, sha256, headline FROM ops.generated_reports"
        " WHERE day = %s AND scope = 'store:S01' AND locale = 'en'", (DAY,))  # fmt: skip
    assert path == second.path == first.path and pages == second.pages and size == Path(path).stat().st_size
    assert sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert headline["day"]["revenue"]["value"] == float(day_kpis(retailer, "store", "S01")[0])
    assert [p.name for p in Path(path).parent.iterdir()] == [Path(path).name]  # no temporary file left


def test_suggested_order_covers_lead_time_and_a_week() -> None:
    assert suggested_order(2.4, 7, 6, 0) == 28  # 2.4 x 14 = 33.6 - 6 = 27.6 -> 28
    assert suggested_order(1.0, 3, 20, 5) == 0
    assert suggested_order(float("nan"), 7, 0, 0) == 0


def test_the_export_reopens_with_its_sheets_formats_and_text_kept_as_text(retailer: str, tmp_path: Path) -> None:
    path = tmp_path / "analytics_export.xlsx"
    with transaction(retailer) as cursor:
        rows = build_export(cursor, path, DAY, days=30)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["README", "Daily KPIs", "Trends", "Top products", "Stock health", "Forecasts",
                               "Open alerts"]  # fmt: skip
    kpis = book["Daily KPIs"]
    # 30 days of the chain, stores S01 and S02, 10 days of S03, 5 categories every day
    assert kpis.max_row - 1 == rows["Daily KPIs"] == 30 * (1 + 2 + 5) + 10
    assert (kpis.freeze_panes, kpis.auto_filter.ref) == ("A2", f"A1:L{kpis.max_row}")
    assert kpis["A2"].number_format == "yyyy-mm-dd" and kpis["E2"].number_format == "#,##0.00"
    assert kpis["K2"].number_format == "0.0%" and kpis.column_dimensions["D"].width >= len("Whole chain")
    assert book["Stock health"].max_row - 1 == 14 and book["Open alerts"].max_row - 1 == 2
    top = list(book["Top products"].iter_rows(min_row=2, values_only=True))
    assert len(top) == rows["Top products"] and {row[2] for row in top} == {"all", "store", "category"}
    assert [row[1:5] for row in top[:2]] == [("last_7_days", "all", "", 1), ("last_7_days", "all", "", 2)]
    names = {}
    for sheet in ("Top products", "Stock health"):
        for row in book[sheet].iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith(("=", "@")):
                    names[cell.value] = cell.data_type
    assert names == {'=HYPERLINK("http://x","y")': "s", "@SUM(A1)": "s"}
    readme = [row for row in book["README"].iter_rows(values_only=True)]
    assert ("Daily KPIs", "Per day, for the whole chain, each store and each category (marts.daily_kpis).",
            rows["Daily KPIs"]) in readme  # fmt: skip
    with zipfile.ZipFile(path) as archive:  # openpyxl does not read charts back
        charts = sorted(name for name in archive.namelist() if name.startswith("xl/charts/chart"))
    assert charts == ["xl/charts/chart1.xml", "xl/charts/chart2.xml"]


def fmt_en() -> Formatter:
    return Formatter("en", "EUR")


def test_the_daily_report_asset_builds_the_chain_and_each_store(retailer: str, tmp_path: Path) -> None:
    import dagster as dg

    from sales_pipeline.resources import AlertingResource, AnalyticsResource, ReportingResource, WarehouseResource

    [daily_report, _] = reporting_definitions(Settings.from_environment()).assets

    resources = {
        "warehouse": WarehouseResource(database_url=retailer),
        "analytics": AnalyticsResource(timezone="UTC", dashboard_dir=str(tmp_path)),
        "reporting": ReportingResource(reports_dir=str(tmp_path)),
        "alerting": AlertingResource(locale="fr", outbox_dir=str(tmp_path / "outbox"), timezone="UTC"),  # nobody
    }
    result = dg.materialize([daily_report], partition_key=DAY.isoformat(), resources=resources,
                            instance=dg.DagsterInstance.ephemeral())  # fmt: skip
    [event] = result.asset_materializations_for_node("reports__daily_report")
    metadata = {key: value.value for key, value in event.metadata.items()}
    assert metadata["path"] == str(tmp_path / "2026-11-22" / "report-2026-11-22-chain-fr.pdf")
    assert metadata["pages"] >= 3 and metadata["revenue"] == float(day_kpis(retailer)[0])
    assert metadata["page_1"].startswith("![page 1](data:image/png;base64,")
    assert sorted(p.name for p in (tmp_path / "2026-11-22").iterdir()) == [
        f"report-2026-11-22-{slug}-fr.pdf" for slug in ("chain", "store-S01", "store-S02", "store-S03")
    ]


def test_the_report_sensor_waits_for_its_hour_and_for_fresh_inputs(retailer: str) -> None:
    import dagster as dg

    from sales_pipeline.defs.analytics.marts import daily_partitions, partition_bounds
    from sales_pipeline.defs.reporting.sensors import due_day, stale_inputs

    partitions = partition_bounds(daily_partitions(Settings.from_environment()))

    seven = dt.time(7, 0)
    assert due_day(dt.datetime(2026, 11, 23, 6, 59), seven) is None
    assert due_day(dt.datetime(2026, 11, 23, 7, 0), seven) == DAY
    # The warehouse has the day's KPIs, but no Dagster run built them: a report would not know they are fresh.
    with transaction(retailer) as cursor:
        waiting = stale_inputs(dg.DagsterInstance.ephemeral(), cursor, "UTC", partitions, DAY)
    assert waiting == ["marts/daily_kpis has not been built for 2026-11-22"]


def test_each_manager_gets_their_report_once_through_the_alerts_delivery(
    retailer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report run queues the emails; the alerts' delivery sensor asks for a run that sends them."""
    import dagster as dg

    from sales_pipeline.defs.alerts.delivery import (
        deliver_notifications_job,
        notification_delivery_sensor,
        notifications,
    )
    from sales_pipeline.resources import AlertingResource, AnalyticsResource, ReportingResource, WarehouseResource
    from sales_pipeline_tests.receivers import PASSWORD, USER, Mailbox, certificates, smtp_server

    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "routes:\n"
        "  - {name: Paris store, to: paris@example.com, stores: [S01]}\n"
        "  - {name: Lyon store, to: [lyon@example.com], stores: [S02]}\n"
        "  - {name: Coffee buyer, to: coffee@example.com, categories: [Coffee]}\n"
        "  - {name: Head office, to: ceo@example.com, chain: true}\n"
    )
    certs, mailbox = certificates(tmp_path), Mailbox()
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_file))  # the client trusts the test CA, as a system store
    with smtp_server("starttls", certs, mailbox) as port, dg.instance_for_test() as instance:
        alerting = AlertingResource(
            smtp_host="127.0.0.1", smtp_port=port, smtp_user=USER, smtp_password=PASSWORD, smtp_timeout_s=5,
            email_from="reports@example.com", routing_file=str(routing), outbox_dir=str(tmp_path / "outbox"),
            timezone="UTC",
        )  # fmt: skip
        reporting = reporting_definitions(Settings.from_environment())
        [daily_report, _], [daily_report_job, _] = reporting.assets, reporting.jobs
        defs = dg.Definitions(
            assets=[daily_report, notifications],
            jobs=[daily_report_job, deliver_notifications_job],
            sensors=[notification_delivery_sensor],
            resources={
                "warehouse": WarehouseResource(database_url=retailer),
                "analytics": AnalyticsResource(timezone="UTC", dashboard_dir=str(tmp_path)),
                "reporting": ReportingResource(reports_dir=str(tmp_path / "reports")),
                "alerting": alerting,
            },
        )
        for _ in range(2):  # the day's run executed twice
            run = defs.resolve_job_def("daily_report").execute_in_process(instance=instance, partition_key=str(DAY))
            assert run.success
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        [request] = defs.resolve_sensor_def("notification_delivery_sensor").evaluate_tick(context).run_requests
        deliver = defs.resolve_job_def("deliver_notifications")
        for _ in range(2):  # the delivery run twice too
            assert deliver.execute_in_process(instance=instance, tags=request.tags).success
    assert sorted(address for r in mailbox.received for address in r.rcpt_tos) == [
        "ceo@example.com", "lyon@example.com", "paris@example.com"
    ]  # fmt: skip
    [paris] = mailbox.to("paris@example.com")
    assert paris["Subject"] == "Daily sales report: Store S01 Paris Marais, Sunday, November 22, 2026"
    [pdf] = [part for part in paris.iter_attachments() if part.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == "report-2026-11-22-store-S01-en.pdf"
    reader = pypdf.PdfReader(io.BytesIO(pdf.get_content()))
    assert "Store S01 Paris Marais" in reader.pages[0].extract_text()
    [ceo] = mailbox.to("ceo@example.com")
    assert [p.get_filename() for p in ceo.iter_attachments()] == ["report-2026-11-22-chain-en.pdf"]
    assert spaced(fmt_en().money(day_kpis(retailer)[0])) in spaced(ceo.get_body(("plain",)).get_content())
    assert query(retailer, "SELECT sent_to FROM ops.generated_reports WHERE day = %s AND scope = 'store:S02'"
                 " AND locale = 'en'", (DAY,)) == [(["lyon@example.com"],)]  # fmt: skip
