"""Tableau's Sample - Superstore through data/mappings/superstore.yaml, and what a wrong mapping gets.

Superstore is real retail data nobody on this project wrote (see /work/shared/datasets/README.md):
one Orders sheet of 9,994 order lines that repeats products, customers and regions on every line.
The dataset tests skip when the file is absent; the mapping error tests need no dataset.
"""

from __future__ import annotations

import datetime as dt
import shutil
import zipfile
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest
import python_calamine

from sales_pipeline.analytics import marts
from sales_pipeline.excel.importer import import_workbook
from sales_pipeline.excel.mapping import MappingError, load_mapping
from sales_pipeline.excel.read import content_hash
from sales_pipeline.warehouse.db import transaction
from sales_pipeline.warehouse.quality import revenue_mismatches
from sales_pipeline_tests.conftest import DATASETS, PROJECT, query, table_counts
from sales_pipeline_tests.workbooks import write_workbook

SUPERSTORE_XLSX = DATASETS / "superstore.xlsx"
SUPERSTORE_XLS = DATASETS / "superstore.xls"
MAPPING = PROJECT / "data" / "mappings" / "superstore.yaml"
LINES, STORES, CUSTOMERS, PRODUCTS = 9_994, ["Central", "East", "South", "West"], 793, 1_862
FIRST_ORDER, LAST_ORDER = date(2014, 1, 3), date(2017, 12, 30)
CENT = Decimal("0.01")
CORE = ("core.products", "core.stores", "core.customers", "core.sales", "core.stock")

needs_xlsx = pytest.mark.skipif(not SUPERSTORE_XLSX.is_file(), reason=f"{SUPERSTORE_XLSX} is absent")
needs_xls = pytest.mark.skipif(not SUPERSTORE_XLS.is_file(), reason=f"{SUPERSTORE_XLS} is absent")


def orders(path: Path) -> list[dict[str, object]]:
    """The Orders sheet as python-calamine reads it, one dict per order line (header -> cell)."""
    rows = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Orders").to_python()
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


@pytest.fixture(scope="module")
def source() -> list[dict[str, object]]:
    return orders(SUPERSTORE_XLSX)


@pytest.fixture(scope="module")
def mapping():
    return load_mapping(MAPPING)


def drop(original: Path, inbox: Path, name: str | None = None) -> Path:
    path = inbox / (name or original.name)
    shutil.copyfile(original, path)
    return path


def repacked(original: Path, path: Path) -> Path:
    """The same workbook zipped again at another compression level: the same content, other bytes."""
    with zipfile.ZipFile(original) as old, zipfile.ZipFile(path, "w") as new:
        for info in old.infolist():
            new.writestr(info, old.read(info.filename), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    return path


def core_state(url: str) -> dict[str, tuple]:
    """Row count and latest change of every core table: what a load that adds nothing leaves alone."""
    return {table: query(url, f"SELECT count(*), max(updated_at) FROM {table}")[0] for table in CORE}


def by_target(result) -> dict[str, object]:
    return {sheet.target: sheet for sheet in result.sheets}


def sales_lines(url: str, import_id: int | None = None) -> dict[int, tuple]:
    """core.sales by line number (the sheet's Row ID): everything but the order's key and dates."""
    where = "" if import_id is None else " WHERE import_id = %s"
    rows = query(
        url,
        "SELECT line_number, store_id, customer_id, product_id, quantity, unit_price, discount, revenue"
        f" FROM core.sales{where}",
        (import_id,) if import_id is not None else (),
    )
    return {row[0]: row[1:] for row in rows}


# --- superstore.xlsx ---------------------------------------------------------------------------


@needs_xlsx
def test_superstore_loads_every_order_line(import_settings, folders, mapping, source, warehouse, empty_warehouse):
    url = empty_warehouse
    path = drop(SUPERSTORE_XLSX, folders["inbox"])

    result = import_workbook(warehouse.transaction, path, import_settings, mapping)

    assert (result.status, result.reason, result.mapping) == ("loaded", None, "superstore")
    sheets = by_target(result)
    assert {t: (s.sheet, s.rows_read, s.rows_loaded, s.rows_rejected, s.inserted) for t, s in sheets.items()} == {
        "Products": ("Orders", LINES, PRODUCTS, 0, PRODUCTS),
        "Stores": ("Orders", LINES, len(STORES), 0, len(STORES)),
        "Customers": ("Orders", LINES, CUSTOMERS, 0, CUSTOMERS),
        "Sales": ("Orders", LINES, LINES, 0, LINES),
    }
    counts = table_counts(url)
    assert {t: counts[t] for t in (*CORE, "ops.import_rejects", "ops.import_ledger")} == {
        "core.products": PRODUCTS, "core.stores": len(STORES), "core.customers": CUSTOMERS, "core.sales": LINES,
        "core.stock": 0, "ops.import_rejects": 0, "ops.import_ledger": 1,
    }  # fmt: skip
    assert counts["raw.excel_rows"] == LINES  # every line landed as written, once though four targets read it
    assert query(url, "SELECT status, rows_loaded, rows_rejected, mapping FROM ops.import_ledger") == [
        ("loaded", PRODUCTS + len(STORES) + CUSTOMERS + LINES, 0, "superstore")
    ]
    # The counts are the source's, not just numbers that happen to match.
    assert len({line["Customer ID"] for line in source}) == CUSTOMERS
    assert len({line["Product ID"] for line in source}) == PRODUCTS
    assert query(url, "SELECT store_id, name, region, timezone FROM core.stores ORDER BY store_id") == [
        (store, store, store, "America/Chicago") for store in STORES
    ]
    assert query(url, "SELECT min(sale_date)::text, max(sale_date)::text, sum(quantity) FROM core.sales") == [
        ("2014-01-03", "2017-12-30", sum(int(line["Quantity"]) for line in source))
    ]
    assert Path(result.archived_path).read_bytes() == SUPERSTORE_XLSX.read_bytes()
    assert not path.exists()


@needs_xlsx
def test_superstore_revenue_is_the_sales_column(import_settings, folders, mapping, source, warehouse, empty_warehouse):
    url = empty_warehouse
    import_workbook(warehouse.transaction, drop(SUPERSTORE_XLSX, folders["inbox"]), import_settings, mapping)
    revenue = {row[0]: row[1] for row in query(url, "SELECT line_number, revenue FROM core.sales")}

    # Line by line: revenue is the line's Sales (the mapping's line total) as Excel shows it, 3 or 4
    # decimals included, so the warehouse adds up to what the workbook adds up to.
    amounts = {int(line["Row ID"]): as_shown(line["Sales"]) for line in source}
    assert revenue == amounts
    assert sum(amount != amount.quantize(CENT) for amount in amounts.values()) == 4_001  # sub-cent amounts kept
    # Without the double's binary noise: 731.94 is stored as 731.94, not 731.9399999999999.
    assert repr(next(line["Sales"] for line in source if line["Row ID"] == 2)) == "731.9399999999999"
    assert str(revenue[2]) == "731.94"


def as_shown(number: object) -> Decimal:
    """A number cell as Excel shows it: 15 significant digits."""
    return Decimal(format(number, ".15g"))


def workbook_sums(source: list[dict[str, object]], header: str | None) -> dict[object, Decimal]:
    """The workbook's Sales summed per value of `header` (one total for None), exactly and then to the cent."""
    sums: dict[object, Decimal] = {}
    for line in source:
        key = line[header] if header else None
        sums[key] = sums.get(key, Decimal(0)) + as_shown(line["Sales"])
    return {key: total.quantize(CENT, rounding=ROUND_HALF_UP) for key, total in sums.items()}


def to_the_cent(rows: list[tuple]) -> dict[object, Decimal]:
    return {key: total.quantize(CENT, rounding=ROUND_HALF_UP) for key, total in rows}


@needs_xlsx
def test_superstore_reconciles_to_the_cent_in_total_per_category_and_region(
    import_settings, folders, mapping, source, warehouse, empty_warehouse
):
    url = empty_warehouse
    import_workbook(warehouse.transaction, drop(SUPERSTORE_XLSX, folders["inbox"]), import_settings, mapping)
    with transaction(url) as cursor:
        marts.refresh_daily_kpis(cursor, FIRST_ORDER, LAST_ORDER, "UTC")
    total, by_category, by_region = (workbook_sums(source, h) for h in (None, "Category", "Region"))
    assert total == {None: Decimal("2297200.86")}  # the figure a user sums in Excel

    assert to_the_cent(query(url, "SELECT NULL, sum(revenue) FROM core.sales")) == total
    assert to_the_cent(query(url, "SELECT store_id, sum(revenue) FROM core.sales GROUP BY 1")) == by_region
    assert (to_the_cent(query(url, "SELECT p.category, sum(s.revenue) FROM core.sales s JOIN core.products p"
                                   " USING (product_id) GROUP BY 1")) == by_category)  # fmt: skip
    # The marts' days add up to the same, scope by scope: no day was rounded on the way.
    marts_sums = "SELECT {key}, sum(revenue) FROM marts.daily_kpis WHERE scope = '{scope}' GROUP BY 1"
    assert to_the_cent(query(url, marts_sums.format(key="NULL", scope="all"))) == total
    assert to_the_cent(query(url, marts_sums.format(key="scope_id", scope="store"))) == by_region
    assert to_the_cent(query(url, marts_sums.format(key="scope_id", scope="category"))) == by_category


@needs_xlsx
def test_superstore_days_are_its_order_dates_in_los_angeles(
    import_settings, folders, mapping, source, warehouse, empty_warehouse
):
    """Order Date is a date in a Chicago store; reported in Los Angeles, each line stays on its date."""
    url = empty_warehouse
    import_workbook(warehouse.transaction, drop(SUPERSTORE_XLSX, folders["inbox"]), import_settings, mapping)
    with transaction(url) as cursor:
        marts.refresh_daily_kpis(cursor, FIRST_ORDER - timedelta(days=1), LAST_ORDER + timedelta(days=1),
                                 "America/Los_Angeles")  # fmt: skip

    per_day: dict[date, tuple[Decimal, int]] = {}
    for line in source:
        revenue, units = per_day.get(line["Order Date"], (Decimal(0), 0))
        per_day[line["Order Date"]] = (revenue + as_shown(line["Sales"]), units + int(line["Quantity"]))
    found = query(url, "SELECT day, revenue, units FROM marts.daily_kpis WHERE scope = 'all'")
    assert {day: (revenue, units) for day, revenue, units in found} == per_day
    assert (min(per_day), max(per_day)) == (FIRST_ORDER, LAST_ORDER)
    with transaction(url) as cursor:
        assert revenue_mismatches(cursor, "America/Los_Angeles", FIRST_ORDER, LAST_ORDER).passed


@needs_xlsx
def test_importing_superstore_again_loads_nothing_new(import_settings, folders, mapping, warehouse, empty_warehouse):
    url = empty_warehouse
    first = import_workbook(warehouse.transaction, drop(SUPERSTORE_XLSX, folders["inbox"]), import_settings, mapping)
    before = core_state(url)

    # The same bytes, under another name: recorded as a duplicate, nothing read.
    again = import_workbook(
        warehouse.transaction, drop(SUPERSTORE_XLSX, folders["inbox"], "superstore (1).xlsx"), import_settings, mapping
    )
    assert again.status == "duplicate"
    assert again.reason == f"same content as import #{first.import_id} (superstore.xlsx): nothing new to load"
    assert core_state(url) == before

    # The same content in other bytes (saved again): read and merged, and every row found unchanged.
    export = repacked(SUPERSTORE_XLSX, folders["inbox"] / "superstore re-export.xlsx")
    assert content_hash(export) != content_hash(SUPERSTORE_XLSX)
    resaved = import_workbook(warehouse.transaction, export, import_settings, mapping)
    assert resaved.status == "loaded"
    assert {t: (s.inserted, s.updated, s.unchanged) for t, s in by_target(resaved).items()} == {
        "Products": (0, 0, PRODUCTS), "Stores": (0, 0, len(STORES)), "Customers": (0, 0, CUSTOMERS),
        "Sales": (0, 0, LINES),
    }  # fmt: skip
    assert core_state(url) == before
    assert query(url, "SELECT file_name, status FROM ops.import_ledger ORDER BY import_id") == [
        ("superstore.xlsx", "loaded"), ("superstore (1).xlsx", "duplicate"), ("superstore re-export.xlsx", "loaded"),
    ]  # fmt: skip
    assert Path(again.archived_path).read_bytes() == SUPERSTORE_XLSX.read_bytes()  # the duplicate is kept too


@pytest.fixture(scope="module")
def workbook_orders() -> pd.DataFrame:
    """The Orders sheet read by pandas: the expectations below are computed from it independently."""
    frame = pd.read_excel(SUPERSTORE_XLSX, sheet_name="Orders", engine="calamine")
    frame["Product Name"] = frame["Product Name"].str.split().str.join(" ")  # the importer folds inner spaces
    return frame


@needs_xlsx
def test_superstore_products_carry_the_name_and_cost_of_their_latest_dated_line(
    import_settings, folders, mapping, workbook_orders, warehouse, empty_warehouse
):
    url = empty_warehouse
    import_workbook(warehouse.transaction, drop(SUPERSTORE_XLSX, folders["inbox"]), import_settings, mapping)

    # A product's latest Orders row by Order Date (on the same date, the later row in the sheet).
    latest = workbook_orders.sort_values("Order Date", kind="stable").drop_duplicates("Product ID", keep="last")
    unit_cost = ((latest["Sales"] - latest["Profit"]) / latest["Quantity"]).round(4)
    expected = dict(zip(latest["Product ID"], zip(latest["Product Name"], unit_cost, strict=True), strict=True))
    loaded = {pid: (name, float(cost)) for pid, name, cost in query(url, "SELECT product_id, name, unit_cost"
                                                                         " FROM core.products")}  # fmt: skip
    assert loaded == expected
    # What used to go wrong: the last row in sheet order carried an older name.
    assert expected["OFF-BI-10004632"][0] == "GBC Binding covers"


@needs_xlsx
def test_superstore_gross_margin_is_the_profit_column(
    import_settings, folders, mapping, workbook_orders, warehouse, empty_warehouse
):
    url = empty_warehouse
    import_workbook(warehouse.transaction, drop(SUPERSTORE_XLSX, folders["inbox"]), import_settings, mapping)
    with transaction(url) as cursor:
        marts.refresh_daily_kpis(cursor, dt.date(2014, 1, 1), dt.date(2017, 12, 31), "UTC")

    # Each line keeps its own cost per unit, (Sales - Profit) / Quantity.
    line_cost = (workbook_orders["Sales"] - workbook_orders["Profit"]) / workbook_orders["Quantity"]
    expected = dict(zip(workbook_orders["Row ID"], line_cost.round(4), strict=True))
    assert {row: float(cost) for row, cost in query(url, "SELECT line_number, unit_cost FROM core.sales")} == expected
    # Summed over every day, the margin is the sheet's Profit but for rounding to the cent (of each line
    # total and each day's margin: half a cent at most each, about 0.1 in all).
    margin, revenue, revenue_with_cost = query(
        url, "SELECT sum(gross_margin), sum(revenue), sum(revenue_with_cost) FROM marts.daily_kpis WHERE scope = 'all'"
    )[0]
    assert revenue_with_cost == revenue  # every line has a cost
    assert float(margin) == pytest.approx(workbook_orders["Profit"].sum(), abs=0.5)


# --- superstore.xls ----------------------------------------------------------------------------


@needs_xlsx
@needs_xls
def test_the_legacy_xls_imports_the_same_rows(import_settings, folders, mapping, source, warehouse, empty_warehouse):
    url = empty_warehouse
    legacy = orders(SUPERSTORE_XLS)

    from_xls = import_workbook(warehouse.transaction, drop(SUPERSTORE_XLS, folders["inbox"]), import_settings, mapping)

    assert (from_xls.status, from_xls.rows_rejected) == ("loaded", 0)
    assert {t: s.rows_loaded for t, s in by_target(from_xls).items()} == {
        "Products": PRODUCTS, "Stores": len(STORES), "Customers": CUSTOMERS, "Sales": LINES,
    }  # fmt: skip
    xls_lines = sales_lines(url, from_xls.import_id)
    keys_xls = set(query(url, "SELECT order_id, line_number FROM core.sales"))
    assert keys_xls == {(line["Order ID"], int(line["Row ID"])) for line in legacy}
    # Line by line, the .xls loads what the .xlsx holds: store, customer, product, quantity, discount, amount.
    expected = {
        int(line["Row ID"]): (line["Region"], line["Customer ID"], line["Product ID"], int(line["Quantity"]),
                              Decimal(repr(line["Discount"])),
                              as_shown(line["Sales"]))
        for line in source
    }  # fmt: skip
    loaded = {row: (*values[:4], values[5], values[6]) for row, values in xls_lines.items()}
    assert loaded.keys() == expected.keys()
    assert [row for row in expected if loaded[row] != expected[row]] == []

    # The .xlsx after it: the same products, stores and customers, found unchanged. Sales lines are
    # keyed by Order ID and Row ID: the .xlsx adds exactly the keys the .xls lacks and changes none.
    from_xlsx = import_workbook(
        warehouse.transaction, drop(SUPERSTORE_XLSX, folders["inbox"]), import_settings, mapping
    )
    keys_xlsx = {(line["Order ID"], int(line["Row ID"])) for line in source}
    assert {t: (s.inserted, s.updated) for t, s in by_target(from_xlsx).items()} == {
        "Products": (0, 0), "Stores": (0, 0), "Customers": (0, 0), "Sales": (len(keys_xlsx - keys_xls), 0),
    }  # fmt: skip
    assert by_target(from_xlsx)["Sales"].unchanged == len(keys_xlsx & keys_xls)
    new_lines = sales_lines(url, from_xlsx.import_id)  # the lines it inserted: the same as the .xls's
    assert new_lines == {row: xls_lines[row] for row in new_lines}

    # And the .xls again, same bytes: a duplicate.
    before = core_state(url)
    again = import_workbook(
        warehouse.transaction,
        drop(SUPERSTORE_XLS, folders["inbox"], "copy of superstore.xls"),
        import_settings,
        mapping,
    )
    assert again.status == "duplicate"
    assert core_state(url) == before


# --- wrong mappings ----------------------------------------------------------------------------

SALES_COLUMNS = """
    columns:
      order_id: Order ID
      sold_at: Order Date
      store_id: Region
      product_id: Product ID
      quantity: Quantity
      unit_price: Price
"""


def test_a_mapping_naming_a_sheet_the_workbook_lacks_is_rejected_naming_both(
    import_settings, folders, tmp_path, warehouse, empty_warehouse
):
    mapping_file = tmp_path / "monthly.yaml"
    mapping_file.write_text("name: monthly export\nsheets:\n  - sheet: Orders 2017\n    target: sales" + SALES_COLUMNS)
    header = ["Order ID", "Order Date", "Region", "Product ID", "Quantity", "Price"]
    path = write_workbook(folders["inbox"] / "orders.xlsx", {
        "Orders": [header, ["CA-1", "2017-01-02", "West", "P1", 2, 9.5]], "Returns": [["Order ID"]], "People": [],
    })  # fmt: skip
    original = path.read_bytes()

    result = import_workbook(warehouse.transaction, path, import_settings, load_mapping(mapping_file))

    reason = "sheet 'Orders 2017' is missing (mapping 'monthly export'); the workbook has 'Orders', 'Returns', 'People'"
    assert (result.status, result.reason) == ("rejected", reason)
    assert query(empty_warehouse, "SELECT file_name, status, reason, mapping FROM ops.import_ledger") == [
        ("orders.xlsx", "rejected", reason, "monthly export")
    ]
    assert Path(result.archived_path).is_relative_to(folders["rejected"])
    assert Path(result.archived_path).read_bytes() == original
    assert not path.exists()
    counts = table_counts(empty_warehouse)
    assert {t: counts[t] for t in (*CORE, "raw.excel_rows")} == dict.fromkeys((*CORE, "raw.excel_rows"), 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "sheets:\n  - sheet: Orders\n    target: sales" + SALES_COLUMNS + "  - sheet: Orders\n    target: orders\n",
            "sheets[2]: target must be one of products, stores, customers, sales, stock",
            id="unknown target",
        ),
        pytest.param(
            "sheets:\n  - sheet: Orders\n    target: products\n    columns:\n      product_id: Product ID\n"
            "      name: Product Name\n      category: Category\n      colour: Colour\n",
            "sheets[1]: 'colour' is not a column of Products (columns: product_id, sku, name, category,",
            id="unknown column",
        ),
        pytest.param(
            f"sheets:\n  - sheet: Orders\n    target: sales{SALES_COLUMNS}    computed:\n      margin: '`Profit`'\n",
            "sheets[1]: 'margin' is not a column of Sales",
            id="unknown computed column",
        ),
        pytest.param(
            "sheets:\n  - sheet: Orders\n    target: sales\n    columns:\n      order_id: Order ID\n",
            "sheets[1]: required columns of Sales not mapped: sold_at, store_id, product_id, quantity, unit_price",
            id="required column not mapped",
        ),
        pytest.param(
            "sheets:\n  - target: sales" + SALES_COLUMNS,
            "sheets[1]: 'sheet' (the sheet name in the workbook) is missing",
            id="no sheet name",
        ),
        pytest.param(
            "sheets:\n  - sheet: Orders\n    target: stores\n    repeated_keys: first\n    columns:\n"
            "      store_id: Region\n",
            "sheets[1]: repeated_keys must be 'reject' or 'last', not 'first'",
            id="unknown repeated_keys",
        ),
        pytest.param("sheets: []\n", "a mapping needs a non-empty 'sheets' list", id="no sheets"),
        pytest.param("sheets:\n  - sheet: [Orders\n", "cannot read the mapping", id="not YAML"),
    ],
)
def test_a_malformed_mapping_is_refused_naming_the_file_and_entry(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)

    with pytest.raises(MappingError) as raised:
        load_mapping(path)

    assert str(raised.value).startswith(f"{path}: {message}"), str(raised.value)


def test_the_shipped_superstore_mapping_reads():
    mapping = load_mapping(MAPPING)
    assert mapping.name == "superstore" and mapping.dayfirst is False
    assert [(s.source, s.target.name, s.repeated_keys, s.latest_by) for s in mapping.sheets] == [
        ("Orders", "Products", "last", "Order Date"), ("Orders", "Stores", "last", "Order Date"),
        ("Orders", "Customers", "last", "Order Date"), ("Orders", "Sales", "reject", None),
    ]  # fmt: skip


# --- repeated master data ---------------------------------------------------------------------

ORDERS_HEADER = ["Order ID", "Order Date", "Region", "Product ID", "Product Name", "Category", "Quantity", "Price"]
PRODUCTS_ENTRY = """
  - sheet: Orders
    target: products
    repeated_keys: last
    columns:
      product_id: Product ID
      name: Product Name
      category: Category
"""
SALES_ENTRY = "  - sheet: Orders\n    target: sales" + SALES_COLUMNS + "    constants:\n      discount: 0\n"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        # The Sales entry dates the sheet's rows by Order Date: P1's latest row is the one dated March.
        pytest.param(PRODUCTS_ENTRY + SALES_ENTRY, "Binding covers", id="dated by the sales entry"),
        pytest.param(PRODUCTS_ENTRY + "    latest_by: Order Date\n", "Binding covers", id="dated by latest_by"),
        # Nothing dates the rows: the last row in the sheet wins.
        pytest.param(PRODUCTS_ENTRY, "Binding system", id="undated: sheet order"),
    ],
)
def test_repeated_master_data_takes_the_latest_dated_row(
    import_settings, folders, tmp_path, entries, expected, warehouse, empty_warehouse
):
    mapping_file = tmp_path / "orders.yaml"
    mapping_file.write_text("name: orders\nsheets:" + entries)
    path = write_workbook(folders["inbox"] / "orders.xlsx", {"Orders": [
        ORDERS_HEADER,
        ["O-3", dt.datetime(2017, 3, 5), "West", "P1", "Binding covers", "Office", 1, 4.0],
        ["O-2", dt.datetime(2017, 2, 1), "West", "P2", "Stapler", "Office", 1, 9.0],
        ["O-2", dt.datetime(2017, 2, 1), "West", "P2", "Stapler, black", "Office", 2, 9.0],  # same day: later row
        ["O-1", dt.datetime(2016, 12, 30), "East", "P1", "Binding system", "Office", 1, 60.0],
    ]})  # fmt: skip

    result = import_workbook(warehouse.transaction, path, import_settings, load_mapping(mapping_file))

    assert result.status == "loaded"
    assert query(empty_warehouse, "SELECT product_id, name FROM core.products ORDER BY 1") == [
        ("P1", expected), ("P2", "Stapler, black"),
    ]  # fmt: skip
    assert by_target(result)["Products"].rows_duplicate == 2


def test_latest_by_without_repeated_keys_last_is_refused(tmp_path):
    path = tmp_path / "orders.yaml"
    path.write_text("sheets:" + PRODUCTS_ENTRY.replace("repeated_keys: last", "latest_by: Order Date"))

    with pytest.raises(MappingError, match=r"sheets\[1\]: latest_by only applies with repeated_keys: last"):
        load_mapping(path)
