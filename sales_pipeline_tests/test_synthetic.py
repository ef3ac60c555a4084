"""The synthetic retailer: deterministic, shaped like the template, and carrying its planted anomalies."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from sales_pipeline.demo.retailer import (
    DEFAULT_END,
    EXCEL_MAX_ROWS,
    Retailer,
    generate_retailer,
    write_sheets_workbook,
    write_workbooks,
)
from sales_pipeline.excel import layout

SCALE, DAYS, SEED = 2, 400, 7
END = pd.Timestamp(DEFAULT_END)


@pytest.fixture(scope="module")
def retailer() -> Retailer:
    return generate_retailer(scale=SCALE, seed=SEED, days=DAYS)


@pytest.fixture(scope="module")
def small() -> Retailer:
    """Small enough to write to Excel several times in a test run."""
    return generate_retailer(scale=1, seed=3, days=70)


def _sha256(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _revenue(sales: pd.DataFrame) -> pd.Series:
    return sales["quantity"] * sales["unit_price"] * (1 - sales["discount"])


# Determinism ---------------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames(retailer: Retailer) -> None:
    again = generate_retailer(scale=SCALE, seed=SEED, days=DAYS)
    for name, frame in retailer.frames().items():
        pd.testing.assert_frame_equal(frame, again.frames()[name], obj=name)
    assert again.planted == retailer.planted


def test_different_seed_gives_different_data(retailer: Retailer) -> None:
    other = generate_retailer(scale=SCALE, seed=SEED + 1, days=DAYS)
    assert not other.sales.equals(retailer.sales)
    assert not other.products.equals(retailer.products)


def test_workbooks_are_byte_identical_for_the_same_seed(small: Retailer, tmp_path: Path) -> None:
    first = write_workbooks(small, tmp_path / "a", split="monthly")
    second = write_workbooks(generate_retailer(scale=1, seed=3, days=70), tmp_path / "b", split="monthly")
    assert [p.name for p in first] == [p.name for p in second]
    assert _sha256(first) == _sha256(second)

    other = write_workbooks(generate_retailer(scale=1, seed=4, days=70), tmp_path / "c", split="monthly")
    assert [p.name for p in other] == [p.name for p in first]
    differing = {n for n, h in _sha256(other).items() if _sha256(first)[n] != h}
    assert differing == {p.name for p in first}


# Shape ---------------------------------------------------------------------------------------------


def test_columns_are_the_layout_names_in_order(retailer: Retailer) -> None:
    for sheet in layout.SHEETS:
        frame = retailer.frames()[sheet.name]
        assert list(frame.columns) == [c.name for c in sheet.columns], sheet.name


def test_sizes_follow_scale(retailer: Retailer) -> None:
    assert len(retailer.products) == 40 + 20 * SCALE
    assert list(retailer.stores["store_id"]) == ["S01", "S02"]
    assert len(retailer.customers) == 250 * SCALE
    per_store_day = len(retailer.sales) / (SCALE * DAYS)
    assert 28 <= per_store_day <= 42
    days = retailer.sales["sold_at"].dt.normalize()
    assert days.max() == END
    assert days.min() == END - pd.Timedelta(days=DAYS - 1)


def test_new_york_store_from_three_stores() -> None:
    stores = generate_retailer(scale=3, seed=1, days=60).stores
    assert list(stores["timezone"]).count("America/New_York") == 1
    assert list(stores["timezone"]).count("Europe/Paris") == 2


def test_keys_are_unique(retailer: Retailer) -> None:
    for sheet in layout.SHEETS:
        frame = retailer.frames()[sheet.name]
        assert not frame.duplicated(list(sheet.key)).any(), sheet.name


def test_references_exist(retailer: Retailer) -> None:
    sales, stock = retailer.sales, retailer.stock
    products, stores = set(retailer.products["product_id"]), set(retailer.stores["store_id"])
    assert set(sales["product_id"]) <= products
    assert set(sales["store_id"]) <= stores
    assert set(sales["customer_id"].dropna()) <= set(retailer.customers["customer_id"])
    assert set(stock["product_id"]) == products
    assert set(stock["store_id"]) == stores


def test_values_are_plausible(retailer: Retailer) -> None:
    sales, products = retailer.sales, retailer.products
    assert (sales["quantity"] >= 1).all()
    assert sales["quantity"].median() <= 2
    assert sales["discount"].between(0, 0.3).all()
    assert (sales.loc[sales["promotion"], "discount"] >= 0.1).all()
    assert 0.02 < sales["promotion"].mean() < 0.2
    hours = sales["sold_at"].dt.hour
    assert hours.min() >= 8 and hours.max() <= 19
    assert 0.2 < sales["customer_id"].isna().mean() < 0.4
    line_counts = sales.groupby("order_id")["line_number"].agg(["min", "max", "count"])
    assert (line_counts["min"] == 1).all() and (line_counts["max"] == line_counts["count"]).all()
    assert line_counts["count"].max() <= 5
    prices = products.set_index("product_id")["unit_price"]
    assert (sales["unit_price"].to_numpy() == prices[sales["product_id"]].to_numpy()).all()

    assert products["lead_time_days"].between(2, 21).all()
    assert 1 <= products["unit_cost"].isna().sum() <= 6
    assert 1 <= (~products["active"]).sum() <= 0.1 * len(products)
    assert 6 <= products["category"].nunique() <= 8
    assert (retailer.stock[["on_hand", "on_order"]] >= 0).all().all()


def test_closed_days_and_seasonality(retailer: Retailer) -> None:
    sales = retailer.sales.assign(day=retailer.sales["sold_at"].dt.normalize(), revenue=_revenue(retailer.sales))
    sold_days = set(sales["day"])
    for holiday in ("2025-12-25", "2026-01-01", "2026-05-01"):
        assert pd.Timestamp(holiday) not in sold_days
    open_days = sales.groupby("store_id")["day"].nunique()
    assert open_days.min() < open_days.max()  # one store closes on Sundays
    monthly = sales.groupby(sales["day"].dt.to_period("M"))["revenue"].sum()
    assert monthly[pd.Period("2025-12")] > 1.15 * monthly[pd.Period("2026-08")]
    # Zipf-like mix: a clear head and a long tail.
    units = sales.groupby("product_id")["quantity"].sum().sort_values(ascending=False)
    assert units.iloc[0] > 10 * units.iloc[-len(units) // 5]


# Planted anomalies ---------------------------------------------------------------------------------


def test_planted_sales_drop(retailer: Retailer) -> None:
    planted = retailer.planted
    assert planted.sales_drop_start == (END - pd.Timedelta(days=9)).date()
    sales = retailer.sales.assign(day=retailer.sales["sold_at"].dt.normalize(), revenue=_revenue(retailer.sales))
    last10 = sales["day"] > END - pd.Timedelta(days=10)
    before = ~last10 & (sales["day"] > END - pd.Timedelta(days=38))
    daily_last10 = sales[last10].groupby("store_id")["revenue"].sum() / 10
    daily_before = sales[before].groupby("store_id")["revenue"].sum() / 28
    ratio = (daily_last10 / daily_before).sort_values()
    assert ratio.index[0] == planted.sales_drop_store_id
    assert 0.5 <= ratio.iloc[0] < 0.6  # ~-45%
    if len(ratio) > 1:
        assert ratio.iloc[1] > ratio.iloc[0] + 0.1  # other stores move with ordinary noise only


def test_planted_stockout(retailer: Retailer) -> None:
    planted = retailer.planted
    product = retailer.products.set_index("product_id").loc[planted.stockout_product_id]
    assert product["lead_time_days"] >= 7 and product["active"]
    units = retailer.sales.groupby("product_id")["quantity"].sum().sort_values(ascending=False)
    assert planted.stockout_product_id in set(units.index[:10])

    sales = retailer.sales
    recent = sales[
        (sales["sold_at"] >= END - pd.Timedelta(days=27))
        & (sales["product_id"] == planted.stockout_product_id)
        & (sales["store_id"] == planted.stockout_store_id)
    ]
    daily = recent["quantity"].sum() / 28
    stock = retailer.stock
    final = stock[
        (stock["as_of"] == END)
        & (stock["product_id"] == planted.stockout_product_id)
        & (stock["store_id"] == planted.stockout_store_id)
    ].iloc[0]
    cover = final["on_hand"] / daily
    assert 1.5 <= cover <= 3.5
    assert cover < product["lead_time_days"]
    assert final["on_order"] == 0
    assert final["on_hand"] + final["on_order"] <= product["reorder_point"]


def test_other_fast_sellers_are_well_stocked(retailer: Retailer) -> None:
    sales, stock = retailer.sales, retailer.stock
    recent = sales[sales["sold_at"] >= END - pd.Timedelta(days=27)]
    daily = recent.groupby(["store_id", "product_id"])["quantity"].sum() / 28
    final = stock[stock["as_of"] == END].set_index(["store_id", "product_id"])
    lead = retailer.products.set_index("product_id")["lead_time_days"]
    fast = daily[daily >= 1.0]
    cover = (final.loc[fast.index, "on_hand"] + final.loc[fast.index, "on_order"]) / fast
    short = cover[cover < lead.reindex(fast.index.get_level_values("product_id")).to_numpy()]
    planted = (retailer.planted.stockout_store_id, retailer.planted.stockout_product_id)
    assert list(short.index) == [planted]


def test_planted_churned_customers(retailer: Retailer) -> None:
    churned = retailer.planted.churned_customer_ids
    assert 5 <= len(churned) <= 10
    sales = retailer.sales
    orders = sales.groupby("customer_id").agg(orders=("order_id", "nunique"), last=("sold_at", "max"))
    for customer_id in churned:
        assert orders.loc[customer_id, "orders"] >= 6
        assert orders.loc[customer_id, "last"] < END - pd.Timedelta(days=80)
    # Most other regulars are still buying (a few slow ones just have a long gap).
    regulars = orders[(orders["orders"] >= 6) & ~orders.index.isin(churned)]
    assert (regulars["last"] >= END - pd.Timedelta(days=80)).mean() > 0.8


def test_planted_to_dict_is_json(retailer: Retailer) -> None:
    data = json.loads(json.dumps(retailer.planted.to_dict()))
    assert data["sales_drop_start"] == retailer.planted.sales_drop_start.isoformat()
    assert data["churned_customer_ids"] == list(retailer.planted.churned_customer_ids)


# Workbooks -----------------------------------------------------------------------------------------


def test_single_workbook_has_layout_sheets_and_headers(small: Retailer, tmp_path: Path) -> None:
    (path,) = write_workbooks(small, tmp_path, split="single")
    assert path.name == "retailer.xlsx"
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        assert wb.sheetnames == [s.name for s in layout.SHEETS]
        for sheet in layout.SHEETS:
            rows = wb[sheet.name].iter_rows(min_row=1, max_row=2, values_only=True)
            header = next(rows)
            assert list(header) == [c.header for c in sheet.columns]
            assert wb[sheet.name].max_row == len(small.frames()[sheet.name]) + 1
    finally:
        wb.close()


def test_workbook_cells_round_trip(small: Retailer, tmp_path: Path) -> None:
    (path,) = write_workbooks(small, tmp_path, split="single")
    headers = {s.name: {c.header: c.name for c in s.columns} for s in layout.SHEETS}
    products = pd.read_excel(path, sheet_name="Products").rename(columns=headers["Products"])
    assert products["unit_cost"].isna().sum() == small.products["unit_cost"].isna().sum()
    assert list(products["active"].map({"yes": True, "no": False})) == list(small.products["active"])
    sales = pd.read_excel(path, sheet_name="Sales").rename(columns=headers["Sales"])
    assert (sales["sold_at"].to_numpy() == small.sales["sold_at"].to_numpy()).all()
    assert sales["customer_id"].isna().sum() == small.sales["customer_id"].isna().sum()
    assert set(sales["promotion"]) <= {"yes", "no"}
    stores = pd.read_excel(path, sheet_name="Stores").rename(columns=headers["Stores"])
    assert list(stores["opened_on"]) == list(small.stores["opened_on"])

    wb = openpyxl.load_workbook(path)  # formats are only visible outside read-only mode
    try:
        sheet = wb["Sales"]
        assert sheet.freeze_panes == "A2"
        assert sheet["C2"].number_format == "yyyy-mm-dd hh:mm"
        assert sheet["A1"].font.bold
        assert wb["Stores"]["F2"].number_format == "yyyy-mm-dd"
    finally:
        wb.close()


def test_monthly_split_files(small: Retailer, tmp_path: Path) -> None:
    paths = write_workbooks(small, tmp_path, split="monthly")
    names = [p.name for p in paths]
    months = sorted(small.sales["sold_at"].dt.strftime("%Y-%m").unique())
    assert names == ["master_data.xlsx", *[f"sales_{m}.xlsx" for m in months], "stock.xlsx"]
    wb = openpyxl.load_workbook(paths[0], read_only=True)
    try:
        assert wb.sheetnames == ["Products", "Stores", "Customers", "Calendar", "Promotions"]
    finally:
        wb.close()
    total = 0
    for path in paths[1:-1]:
        wb = openpyxl.load_workbook(path, read_only=True)
        try:
            assert wb.sheetnames == ["Sales"]
            total += wb["Sales"].max_row - 1
        finally:
            wb.close()
    assert total == len(small.sales)


def test_sheet_over_excel_limit_is_refused(tmp_path: Path) -> None:
    n = EXCEL_MAX_ROWS  # one more than fits below the header
    frame = pd.DataFrame(
        {
            "product_id": ["P0001"] * n,
            "store_id": "S01",
            "as_of": pd.Timestamp("2026-01-01"),
            "on_hand": 1,
            "on_order": 0,
        }
    )
    with pytest.raises(ValueError, match="at most"):
        write_sheets_workbook(tmp_path / "big.xlsx", {"Stock": frame})
    assert not (tmp_path / "big.xlsx").exists()


def test_bad_sheets_are_refused(small: Retailer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sheet"):
        write_sheets_workbook(tmp_path / "x.xlsx", {"Orders": small.sales})
    with pytest.raises(ValueError, match="missing columns"):
        write_sheets_workbook(tmp_path / "x.xlsx", {"Sales": small.sales.drop(columns=["discount"])})
    with pytest.raises(ValueError, match="split"):
        write_workbooks(small, tmp_path, split="weekly")  # type: ignore[arg-type]


def test_messy_cells_are_written_as_they_are(tmp_path: Path) -> None:
    """Benchmarks write deliberately bad values; they must reach the workbook unchanged."""
    frame = pd.DataFrame(
        {
            "product_id": ["P0001", "P0002", "P0003"],
            "store_id": ["S01", "S01", None],
            "as_of": ["2026-01-05", pd.Timestamp("2026-01-06"), None],
            "on_hand": ["twelve", 3, None],
            "on_order": [0, 1.5, float("nan")],
        }
    )
    path = write_sheets_workbook(tmp_path / "messy.xlsx", {"Stock": frame})
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(wb["Stock"].iter_rows(min_row=2, values_only=True))
    finally:
        wb.close()
    assert rows[0] == ("P0001", "S01", "2026-01-05", "twelve", 0)
    assert rows[1][2] == pd.Timestamp("2026-01-06").to_pydatetime()
    assert rows[1][3:] == (3, 1.5)
    assert rows[2][1:] == (None, None, None, None)
