"""Known closures and promotions from a workbook, and CSV files read through a mapping with row filters."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from sales_pipeline.excel.importer import import_workbook
from sales_pipeline.excel.mapping import MappingError, load_mapping
from sales_pipeline_tests.conftest import DATASETS, PROJECT, query
from sales_pipeline_tests.workbooks import products, write_workbook

CALENDAR_HEADER = ["Store ID", "Date", "Weekday", "Open", "Note"]
PROMOTIONS_HEADER = ["Product ID", "Category", "Store ID", "From", "To", "Name"]
ROSSMANN_CSV = DATASETS / "store_retail.csv"
ROSSMANN_MAPPING = PROJECT / "data" / "mappings" / "rossmann.yaml"


def rejects(url: str) -> list[tuple]:
    return query(
        url, "SELECT sheet, row_number, column_name, reason FROM ops.import_rejects ORDER BY sheet, row_number"
    )


def test_calendar_and_promotion_rows_load_and_bad_ones_are_rejected_with_a_reason(warehouse, import_settings, folders):
    path = write_workbook(
        folders["inbox"] / "calendar.xlsx",
        {
            "Products": products(2),
            "Calendar": [
                CALENDAR_HEADER,
                [None, dt.datetime(2026, 12, 25), None, None, "Christmas"],  # every store, one date
                ["S2", None, "Sunday", "no", None],  # a store's closed weekday
                ["S2", dt.datetime(2026, 12, 20), None, "yes", "Sunday opening"],  # open by exception
                ["S1", dt.datetime(2026, 12, 24), "Thursday", None, None],  # both: which is meant?
                ["S1", None, None, None, "stock-take"],  # neither
            ],
            "Promotions": [
                PROMOTIONS_HEADER,
                ["P1", None, "S1", dt.datetime(2026, 11, 23), dt.datetime(2026, 11, 29), "Black Friday week"],
                [None, "Tea", None, dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 7), None],
                ["P2", None, None, dt.datetime(2026, 12, 9), dt.datetime(2026, 12, 2), "backwards"],
            ],
        },
    )
    result = import_workbook(warehouse.transaction, path, import_settings)
    url = warehouse.database_url

    assert result.status == "loaded_with_rejects"
    assert query(url, "SELECT store_id, day, weekday, open, note FROM core.store_calendar ORDER BY store_id, day") == [
        ("S2", dt.date(2026, 12, 20), None, True, "Sunday opening"),
        ("S2", None, "Sunday", False, None),
        (None, dt.date(2026, 12, 25), None, False, "Christmas"),
    ]
    assert query(
        url, "SELECT product_id, category, store_id, starts_on, ends_on FROM core.promotions ORDER BY starts_on"
    ) == [
        ("P1", None, "S1", dt.date(2026, 11, 23), dt.date(2026, 11, 29)),
        (None, "Tea", None, dt.date(2026, 12, 1), dt.date(2026, 12, 7)),
    ]
    assert rejects(url) == [
        ("Calendar", 5, "Weekday",
         "give a date or a weekday, not both: a date closes that day, a weekday every such day"),
        ("Calendar", 6, "Date", "a date or a weekday is required: the day (or days) it is about"),
        ("Promotions", 4, "To",
         "ends before it starts (2026-12-09): the To date is the promotion's last day, on or after From"),
    ]  # fmt: skip


def csv_mapping(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "daily.yaml"
    path.write_text(
        "name: daily\nformat: csv\n" + extra + "sheets:\n"
        "  - target: products\n    repeated_keys: last\n"
        "    constants: {product_id: ALL, name: All sales, category: All}\n"
        '  - target: sales\n    where: "`Open` == 1"\n'
        "    columns: {order_id: Date, line_number: Store, sold_at: Date, store_id: Store, unit_price: Sales,"
        " revenue: Sales}\n    constants: {product_id: ALL, quantity: 1}\n"
        '  - target: calendar\n    where: "`Open` == 0"\n    columns: {store_id: Store, day: Date}\n'
    )
    return path


def test_a_csv_file_loads_through_a_mapping_whose_row_filters_split_it(warehouse, import_settings, folders, tmp_path):
    lines = ["Store;Date;Sales;Open", "1;2015-07-30;5020;1", "2;2015-07-30;0;0", "1;2015-07-31;5263,5;1", "",
             "2;2015-07-31;6064;1"]  # fmt: skip
    text = "\n".join(lines) + "\n"
    path = folders["inbox"] / "daily.csv"
    path.write_text(text, encoding="utf-8-sig")  # as Excel saves CSV: with a byte-order mark, ';' in Europe

    result = import_workbook(warehouse.transaction, path, import_settings, load_mapping(csv_mapping(tmp_path)))
    url = warehouse.database_url

    assert result.status == "loaded", result.reason
    assert {sheet.target: (sheet.rows_read, sheet.rows_loaded) for sheet in result.sheets} == {
        "Products": (4, 1),
        "Sales": (3, 3),
        "Calendar": (1, 1),
    }
    assert query(url, "SELECT store_id, sale_date, revenue::float8 FROM core.sales ORDER BY sale_date, store_id") == [
        ("1", dt.date(2015, 7, 30), 5020.0),
        ("1", dt.date(2015, 7, 31), 5263.5),
        ("2", dt.date(2015, 7, 31), 6064.0),
    ]
    assert query(url, "SELECT store_id, day, open FROM core.store_calendar") == [("2", dt.date(2015, 7, 30), False)]
    # Every line read by an entry is kept as sent, once.
    assert query(url, "SELECT count(*), min(sheet) FROM raw.excel_rows") == [(4, "daily.csv")]


def test_a_bad_cell_a_mapping_reads_twice_is_rejected_once(warehouse, import_settings, folders, tmp_path):
    path = folders["inbox"] / "daily.csv"  # the mapping reads Sales as the unit price and as the revenue
    path.write_text("Store;Date;Sales;Open\n1;2015-07-30;5020;1\n3;2015-07-31;abc;1\n", encoding="utf-8-sig")

    result = import_workbook(warehouse.transaction, path, import_settings, load_mapping(csv_mapping(tmp_path)))

    assert result.status == "loaded_with_rejects", result.reason
    assert query(warehouse.database_url, "SELECT row_number, column_name, value, reason FROM ops.import_rejects") == [
        (3, "Sales", "abc", "not a number")
    ]


@pytest.mark.parametrize(
    ("file_name", "mapping", "reason"),
    [
        pytest.param(
            "daily.csv", None,
            "a CSV file is read through a mapping with 'format: csv' (mapping 'template' reads workbooks): drop it"
            " into the inbox folder of such a mapping, e.g. rossmann/",
            id="a CSV with the template",
        ),
        pytest.param(
            "daily.xlsx", "csv", "mapping 'daily' reads CSV files, and daily.xlsx is not one", id="a workbook for CSV"
        ),
    ],
)  # fmt: skip
def test_a_file_of_the_other_format_is_rejected_naming_both(warehouse, import_settings, folders, tmp_path, file_name,
                                                            mapping, reason):  # fmt: skip
    path = folders["inbox"] / file_name
    if file_name.endswith(".csv"):
        path.write_text("Store,Date,Sales,Open\n1,2015-07-31,5263,1\n")
    else:
        write_workbook(path, {"Products": products(1)})
    kwargs = {"mapping": load_mapping(csv_mapping(tmp_path))} if mapping else {}

    result = import_workbook(warehouse.transaction, path, import_settings, **kwargs)

    assert (result.status, result.reason) == ("rejected", reason)


@pytest.mark.parametrize(
    ("extra", "entry", "message"),
    [
        ("format: tsv\n", "", "format must be one of workbook, csv, not 'tsv'"),
        ("delimiter: ';;'\n", "", "delimiter is one character, and only for format: csv"),
        ("", "    where: Open == 1\n", "sheets[4]: where must name the source headers it reads in backticks"),
    ],
)
def test_a_malformed_csv_mapping_is_refused_naming_the_file_and_entry(tmp_path, extra, entry, message):
    path = csv_mapping(tmp_path, extra)
    if entry:
        path.write_text(path.read_text() + "  - target: promotions\n" + entry + "    columns: {starts_on: Date,"
                        " ends_on: Date}\n")  # fmt: skip

    with pytest.raises(MappingError) as raised:
        load_mapping(path)

    assert str(raised.value).startswith(f"{path}: {message}"), str(raised.value)


@pytest.mark.skipif(not ROSSMANN_CSV.is_file(), reason=f"{ROSSMANN_CSV} is absent")
def test_rossmann_loads_its_sales_closures_and_promotions(warehouse, import_settings, folders):
    path = shutil.copy(ROSSMANN_CSV, folders["inbox"] / ROSSMANN_CSV.name)

    result = import_workbook(warehouse.transaction, Path(path), import_settings, load_mapping(ROSSMANN_MAPPING))
    url = warehouse.database_url

    assert result.status == "loaded", result.reason
    assert result.ignored_sheets == {}  # the file is one table, read whole
    # 18,472 lines: 15,311 open days are sales, 3,161 closed ones calendar rows, 7,052 promotion days.
    assert query(url, "SELECT count(*), sum(revenue)::bigint FROM core.sales") == [(15_311, 100_042_839)]
    assert query(url, "SELECT count(*), count(DISTINCT store_id) FROM core.store_calendar WHERE NOT open") == [
        (3_161, 20)
    ]
    assert query(url, "SELECT count(*), min(starts_on), max(ends_on) FROM core.promotions") == [
        (7_052, dt.date(2013, 1, 7), dt.date(2015, 7, 31))
    ]
    assert query(url, "SELECT DISTINCT kind, timezone FROM core.stores") == [("store", "Europe/Berlin")]
