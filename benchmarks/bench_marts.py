"""Analytics marts: a full rebuild of the marts against one new day, at 1M and 5M order lines.

Data: a synthetic retailer big enough for N order lines, loaded straight into a database of its
own (`bench_marts`, on the warehouse server) with COPY, not through the Excel importer. One
`generate_retailer` at that size would need gigabytes (its stock table alone grows with stores x
products), so the retailer is generated in chunks of --chunk-scale stores (seeds seed*1000+k, ids
prefixed R00-, R01-, ...: distinct stores, products, customers and orders), the last chunk sized to
what is left and thinned at random to exactly N lines. The last day of sales (pipeline time zone)
is held back in `bench.held_back`.

Ours, each run in its own process (peak RSS is that run's alone), each mart in its own transaction
as the Dagster assets do:

- full rebuild: daily KPIs and trends over every day, stock health, top products, dashboard;
- one new day: insert the held-back day's sales, then daily KPIs and trends of that day (the
  trends asset's "first day whose KPIs changed" lookup included), stock health, top products,
  dashboard. The day is deleted again afterwards, so every run measures the same thing.

Between runs (not timed) the touched tables are vacuumed and analysed and a checkpoint is taken.
Baseline, once per size up to --baseline-max-rows: the daily KPIs and trends the plain way,
`pandas.read_sql` of core.sales joined to products, groupby per scope and rolling sums over the
days (computed, not written back); it is checked against the marts' row counts and revenue.

Then Dagster's bookkeeping on a long backfill: the daily KPIs of 1,460 days (four years of a one-store
synthetic retailer, database `bench_backfill`) as one run of `refresh_daily_kpis` through Dagster, into a
fresh Dagster storage (`bench_backfill_dagster`) on the same server each run, with the event settings the
commands use (`runs.DAGSTER_EVENT_SETTINGS`): wall time of `execute_in_process` (`backfill_1460_days_s`,
target 15 s), checked: every day materialized in the partition status, each day's materialization
carrying its own revenue, the reconciliation check evaluated and passed. Once, for comparison, the same
run with Dagster's default event settings (`backfill_1460_days_defaults_s`; skipped with --quick).

    .venv/bin/python benchmarks/bench_marts.py                   # 1M and 5M order lines, 3 runs each, then the backfill
    .venv/bin/python benchmarks/bench_marts.py --quick           # 100,000 lines
    .venv/bin/python benchmarks/bench_marts.py --backfill-only   # the backfill alone (about 3 minutes)

The loaded database is kept and reused by the next invocation when it holds the same data (same
size, seed, chunking, time zone, generator and migrations' text); anything else is reloaded into a
database created afresh (an edited migration is not applied again to an existing one). Each run
reports the hash of the marts module it ran, and a size whose runs disagree says so (others edit
it). About 25 minutes for the default sizes, 3.4 GB of disk at 5M; --quick takes about 20 seconds.
The last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg2
from common import autocommit, copy_frame, median_of, own_database, pandas_engine, print_outcome, run_worker
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.warehouse import db

BENCH_DB = "bench_marts"
LOADER_VERSION = "1"  # bump when the loader below changes what it loads
DAYS = 730
LINES_PER_STORE = 26_000  # a store makes 26.9k-27.8k lines over 730 days: sizing by this one overshoots
TOP_N = 5
TARGET_NEW_DAY_PCT = 5
MART_TABLES = ("marts.daily_kpis", "marts.sales_trends", "marts.stock_health", "marts.top_products", "marts.dashboard")
STEPS_FULL = ("daily_kpis", "sales_trends", "stock_health", "top_products", "dashboard")
STEPS_NEW_DAY = ("insert_day", *STEPS_FULL)
BACKFILL_DB, BACKFILL_DAGSTER_DB = "bench_backfill", "bench_backfill_dagster"
BACKFILL_DAYS, BACKFILL_END = 1460, date(2025, 12, 31)
TARGET_BACKFILL_S = 15


# --- the database -----------------------------------------------------------------------------


def bench_database(recreate: bool = False) -> tuple[str, bool]:
    """Create (if needed, or afresh) and migrate the benchmark's own database; return its URL and whether embedded.

    Afresh before every load: migrations apply once per database, so a database kept from before a
    migration was edited would keep the old schema (indexes included).
    """
    from sales_pipeline import settings

    return own_database(BENCH_DB, recreate=recreate), not os.environ.get(settings.DATABASE_URL)


def settle(url: str) -> None:
    """What autovacuum would do sooner or later, done now and untimed: every run starts from the same state."""
    autocommit(url, f"VACUUM (ANALYZE) core.sales, core.stock, {', '.join(MART_TABLES)}")
    autocommit(url, "CHECKPOINT", tolerate=(psycopg2.errors.InsufficientPrivilege,))


def fingerprint(rows: int, seed: int, chunk_scale: int, timezone: str) -> str:
    from sales_pipeline.demo import retailer

    code = hashlib.sha256(Path(retailer.__file__).read_bytes()).hexdigest()[:12]
    # The migrations' text, not only their versions: an edited migration means a fresh database.
    schema = hashlib.sha256("".join(f"{m.version}{m.sql}" for m in db.migrations()).encode()).hexdigest()[:12]
    return f"v{LOADER_VERSION} rows={rows} seed={seed} chunk={chunk_scale} tz={timezone} gen={code} schema={schema}"


def boundary(alias: str = "") -> str:
    """SQL: sold_at is on or after the held-back day's local midnight."""
    return f"{alias}sold_at >= (%(held_day)s::date::timestamp AT TIME ZONE %(timezone)s)"


def loaded_info(url: str, expected: str) -> dict | None:
    """The held-back day and history span of a loaded database holding `expected` data, else None."""
    with db.transaction(url) as cursor:
        cursor.execute("SELECT to_regclass('bench.meta') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT fingerprint, rows, first_day, held_day, timezone FROM bench.meta")
        row = cursor.fetchone()
    if row is None or row[0] != expected:
        return None
    info = {"rows": row[1], "first_day": row[2], "held_day": row[3], "timezone": row[4]}
    reset_new_day(url, info)  # a run cut short may have left the new day in
    with db.transaction(url) as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM core.sales) + (SELECT count(*) FROM bench.held_back)")
        if cursor.fetchone()[0] != info["rows"]:
            return None
    return info


def reset_new_day(url: str, info: dict) -> None:
    """Take the held-back day out of core.sales and the marts again."""
    params = {"held_day": info["held_day"], "timezone": info["timezone"]}
    with db.transaction(url) as cursor:
        cursor.execute(f"DELETE FROM core.sales WHERE {boundary()}", params)
        cursor.execute("DELETE FROM marts.daily_kpis WHERE day >= %(held_day)s", params)
        cursor.execute("DELETE FROM marts.sales_trends WHERE day >= %(held_day)s", params)
        cursor.execute("DELETE FROM marts.top_products WHERE as_of >= %(held_day)s", params)
        cursor.execute("DELETE FROM marts.dashboard WHERE as_of >= %(held_day)s", params)


# --- loading (its own process, so its peak memory is its own) ------------------------------------


def load(url: str, rows: int, seed: int, chunk_scale: int, timezone: str, stamp: str) -> dict:
    """Generate the retailer chunk by chunk and COPY it into the core tables; hold back the last day."""
    import numpy as np
    import pandas as pd

    from sales_pipeline.demo.retailer import generate_retailer

    started = time.perf_counter()
    with db.transaction(url) as cursor:
        cursor.execute("CREATE SCHEMA bench")  # on a fresh database: the caller recreated it
    remaining, chunk, stores, products, stock_rows = rows, 0, 0, 0, 0
    while remaining > 0:
        scale = min(chunk_scale, -(-remaining // LINES_PER_STORE))
        retailer = generate_retailer(scale=scale, seed=seed * 1000 + chunk, days=DAYS)
        sales = retailer.sales
        if len(sales) > remaining:  # thin the last chunk at random to exactly `rows` lines
            keep = np.sort(np.random.default_rng(seed).permutation(len(sales))[:remaining])
            sales = sales.iloc[keep]
        prefix = f"R{chunk:02d}-"
        products_frame = retailer.products.assign(product_id=prefix + retailer.products["product_id"], source="bench")
        stores_frame = retailer.stores.assign(store_id=prefix + retailer.stores["store_id"], source="bench")
        customers_frame = retailer.customers.assign(
            customer_id=prefix + retailer.customers["customer_id"], source="bench"
        )
        sales_frame = pd.DataFrame(
            {
                "order_id": prefix + sales["order_id"],
                "line_number": sales["line_number"],
                "sold_at": sales["sold_at"],  # naive local time, read as UTC (the session's zone)
                "sale_date": sales["sold_at"].dt.normalize(),
                "store_id": prefix + sales["store_id"],
                "customer_id": prefix + sales["customer_id"],  # anonymous stays missing
                "product_id": prefix + sales["product_id"],
                "quantity": sales["quantity"],
                "unit_price": sales["unit_price"],
                "discount": sales["discount"],
                "revenue": sales["revenue"],  # the generator's round(q * p * (1 - d), 2), half a cent up
                "promotion": sales["promotion"],
                "source": "bench",
            }
        )
        stock_frame = retailer.stock.assign(
            product_id=prefix + retailer.stock["product_id"],
            store_id=prefix + retailer.stock["store_id"],
            source="bench",
        )
        with db.transaction(url) as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
            copy_frame(cursor, "core.products", products_frame)
            copy_frame(cursor, "core.stores", stores_frame)
            copy_frame(cursor, "core.customers", customers_frame)
            copy_frame(cursor, "core.sales", sales_frame)
            copy_frame(cursor, "core.stock", stock_frame)
        print(
            f"  chunk {chunk}: {scale} stores, {len(products_frame)} products, {len(sales_frame):,} lines,"
            f" {len(stock_frame):,} stock counts  ({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        remaining -= len(sales_frame)
        stores, products, stock_rows = stores + scale, products + len(products_frame), stock_rows + len(stock_frame)
        chunk += 1
        del retailer, sales, products_frame, stores_frame, customers_frame, sales_frame, stock_frame

    with db.transaction(url) as cursor:
        cursor.execute(
            "SELECT min((sold_at AT TIME ZONE %(tz)s)::date), max((sold_at AT TIME ZONE %(tz)s)::date) FROM core.sales",
            {"tz": timezone},
        )
        first_day, held_day = cursor.fetchone()
        cursor.execute(
            "CREATE TABLE bench.held_back (LIKE core.sales);"
            f" WITH moved AS (DELETE FROM core.sales WHERE {boundary()} RETURNING *)"
            " INSERT INTO bench.held_back SELECT * FROM moved",
            {"held_day": held_day, "timezone": timezone},
        )
        held_rows = cursor.rowcount
        cursor.execute(
            "CREATE TABLE bench.meta AS SELECT %s::text AS fingerprint, %s::bigint AS rows, %s::date AS first_day,"
            " %s::date AS held_day, %s::text AS timezone",
            (stamp, rows, first_day, held_day, timezone),
        )
    load_s = time.perf_counter() - started
    settle(url)
    return {
        "load_s": load_s,
        "settle_s": time.perf_counter() - started - load_s,
        "chunks": chunk,
        "stores": stores,
        "products": products,
        "stock_rows": stock_rows,
        "held_rows": held_rows,
    }


# --- measured runs -------------------------------------------------------------------------------


def backend_peak_mb(pid: int) -> float | None:
    """Peak RSS of a server backend on this machine (VmHWM: counts the shared buffers it touched too)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match[1]) / 1024 if match else None


class Steps:
    """Each step one transaction on its own connection, as each Dagster asset opens its own."""

    def __init__(self, url: str, server_local: bool) -> None:
        self.url, self.server_local = url, server_local
        self.seconds: dict[str, float] = {}
        self.results: dict[str, Any] = {}
        self.server_peak_mb: float | None = None

    def run(self, name: str, work: Callable[[Cursor], Any]) -> None:
        started = time.perf_counter()
        with db.transaction(self.url) as cursor:
            self.results[name] = work(cursor)
            if self.server_local:
                cursor.execute("SELECT pg_backend_pid()")
                peak = backend_peak_mb(cursor.fetchone()[0])
                if peak is not None:
                    self.server_peak_mb = max(self.server_peak_mb or 0.0, peak)
        self.seconds[name] = time.perf_counter() - started


def marts_code() -> str:
    """A short hash of the marts module this process runs (others edit it: runs of one size should agree)."""
    from sales_pipeline.analytics import marts

    return hashlib.sha256(Path(marts.__file__).read_bytes()).hexdigest()[:12]


def trends_as_the_asset_does(cursor: Cursor) -> tuple[str, int]:
    """The sales_trends asset: from the first day whose KPIs changed since the last refresh, to the last day."""
    from sales_pipeline.analytics import marts

    cursor.execute(
        "SELECT min(day) FROM marts.daily_kpis WHERE computed_at >"
        " coalesce((SELECT max(computed_at) FROM marts.sales_trends), '-infinity')"
    )
    first_changed = cursor.fetchone()[0]
    last_day = marts.last_complete_day(cursor)
    return str(first_changed), marts.refresh_sales_trends(cursor, first_changed, last_day)


def run_marts(kind: str, url: str, info: dict) -> dict:
    from sales_pipeline.analytics import marts

    tz = info["timezone"]
    held_day = date.fromisoformat(info["held_day"])
    first_day = date.fromisoformat(info["first_day"]) if kind == "full" else held_day
    last_day = date.fromisoformat(info["last_day"]) if kind == "full" else held_day
    steps = Steps(url, info["server_local"])
    started = time.perf_counter()
    if kind == "new_day":
        steps.run(
            "insert_day", lambda c: c.execute("INSERT INTO core.sales SELECT * FROM bench.held_back") or c.rowcount
        )
    steps.run("daily_kpis", lambda c: marts.refresh_daily_kpis(c, first_day, last_day, tz))
    steps.run("sales_trends", trends_as_the_asset_does)
    steps.run("stock_health", lambda c: marts.refresh_stock_health(c, tz))
    steps.run(
        "top_products",
        lambda c: (str(as_of := marts.last_complete_day(c)), marts.refresh_top_products(c, as_of, TOP_N, tz)),
    )
    steps.run("dashboard", lambda c: marts.build_dashboard(c, marts.last_complete_day(c), timezone=tz)["as_of"])
    seconds = time.perf_counter() - started
    # The run refreshed what it meant to: trends from first_day, top products and dashboard as of last_day.
    expected = {"sales_trends": str(first_day), "top_products": str(last_day), "dashboard": str(last_day)}
    got = {"sales_trends": steps.results["sales_trends"][0], "top_products": steps.results["top_products"][0],
           "dashboard": steps.results["dashboard"]}  # fmt: skip
    if got != expected:
        raise SystemExit(f"{kind}: refreshed {got}, expected {expected}")
    return {"seconds": seconds, "steps": steps.seconds, "server_peak_mb": steps.server_peak_mb, "code": marts_code()}


def run_baseline(url: str, info: dict) -> dict:
    """Daily KPIs (all, store, category, product) and trends (all, category, product), the plain pandas way."""
    import numpy as np
    import pandas as pd

    tz = info["timezone"]
    started = time.perf_counter()
    lines = pd.read_sql(
        "SELECT s.sold_at, s.order_id, s.store_id, s.customer_id, s.product_id, coalesce(p.category, '') AS category,"
        " s.quantity, s.unit_price, s.revenue, coalesce(s.unit_cost, p.unit_cost) AS unit_cost"
        " FROM core.sales AS s LEFT JOIN core.products AS p USING (product_id)",
        pandas_engine(url),
    )
    read_s = time.perf_counter() - started
    lines["day"] = lines["sold_at"].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    lines["list_amount"] = lines["quantity"] * lines["unit_price"]
    lines["cost"] = lines["quantity"] * lines["unit_cost"]
    lines["revenue_with_cost"] = lines["revenue"].where(lines["cost"].notna())
    kpis = []
    for scope, key in (("all", None), ("store", "store_id"), ("category", "category"), ("product", "product_id")):
        grouped = lines.groupby(["day", key] if key else ["day"], sort=False).agg(
            revenue=("revenue", "sum"),
            units=("quantity", "sum"),
            orders=("order_id", "nunique"),
            customers=("customer_id", "nunique"),
            revenue_with_cost=("revenue_with_cost", "sum"),
            cost=("cost", "sum"),
            lines_with_cost=("cost", "count"),
            list_amount=("list_amount", "sum"),
        )
        grouped["average_order_value"] = (grouped["revenue"] / grouped["orders"]).round(2)
        margin = grouped["revenue_with_cost"] - grouped["cost"]
        grouped["gross_margin"] = margin.where(grouped["lines_with_cost"] > 0).round(2)
        grouped["margin_rate"] = (
            (margin / grouped["revenue_with_cost"]).where(grouped["revenue_with_cost"] > 0).round(4)
        )
        grouped["discount_given"] = (grouped["list_amount"] - grouped["revenue"]).round(2)
        grouped = grouped.reset_index().rename(columns={key: "scope_id"} if key else {})
        if not key:
            grouped["scope_id"] = ""
        kpis.append(grouped.assign(scope=scope))
    daily = pd.concat(kpis, ignore_index=True)

    calendar = pd.date_range(daily["day"].min(), daily["day"].max(), freq="D")
    trends = []
    for scope in ("all", "category", "product"):
        rows = daily[daily["scope"] == scope]
        revenue = rows.pivot(index="day", columns="scope_id", values="revenue").reindex(calendar).fillna(0.0)
        week = revenue.rolling(7, min_periods=1).sum()  # a missing day counts as zero
        month = revenue.rolling(28, min_periods=1).sum()
        week_before, month_before = week.shift(7, fill_value=0.0), month.shift(28, fill_value=0.0)
        year_before = month.shift(364, fill_value=0.0)
        rise = pd.DataFrame(1.0, index=revenue.index, columns=revenue.columns)
        wide = {
            "revenue": revenue,
            "ma_7": (week / 7).round(2),
            "ma_28": (month / 28).round(2),
            "wow": week / week_before.where(week_before != 0) - 1,
            "mom": month / month_before.where(month_before != 0) - 1,
            "yoy": month / year_before.where(year_before != 0) - 1,
            # For the direction, sales after a period with none read as a rise (+100%); nothing at all, no signal.
            "wow_signal": (week / week_before - 1).where(week_before > 0, rise.where(week > 0)),
            "mom_signal": (month / month_before - 1).where(month_before > 0, rise.where(month > 0)),
        }
        long = pd.concat({name: frame.stack() for name, frame in wide.items()}, axis=1)
        long.index.names = ["day", "scope_id"]
        long = long.reset_index()
        first_sale = rows.groupby("scope_id")["day"].min()
        age = (long["day"] - long["scope_id"].map(first_sale)).dt.days
        long = long[age >= 0]
        age = age[age >= 0]
        high = long[["wow_signal", "mom_signal"]].max(axis=1)
        low = long[["wow_signal", "mom_signal"]].min(axis=1)
        long["direction"] = np.select(
            [age < 28, (high >= 0.05) & (low > -0.05), (low <= -0.05) & (high < 0.05)],
            ["new", "rising", "falling"],
            "steady",
        )
        trends.append(long.drop(columns=["wow_signal", "mom_signal"]).assign(scope=scope))
    trend_rows = sum(len(t) for t in trends)
    return {
        "seconds": time.perf_counter() - started,
        "read_s": read_s,
        "kpi_rows": len(daily),
        "trend_rows": trend_rows,
        "revenue": round(float(daily.loc[daily["scope"] == "all", "revenue"].sum()), 2),
    }


# --- a long backfill through Dagster ----------------------------------------------------------------


def load_backfill_days(seed: int) -> dict:
    """A one-store retailer over BACKFILL_DAYS days, COPYed into `bench_backfill` (recreated); its days."""
    import pandas as pd

    from sales_pipeline.demo.retailer import generate_retailer

    url = own_database(BACKFILL_DB, recreate=True)
    retailer = generate_retailer(scale=1, seed=seed, days=BACKFILL_DAYS, end=BACKFILL_END)
    sales = retailer.sales
    with db.transaction(url) as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        copy_frame(cursor, "core.products", retailer.products.assign(source="bench"))
        copy_frame(cursor, "core.stores", retailer.stores.assign(source="bench"))
        copy_frame(cursor, "core.customers", retailer.customers.assign(source="bench"))
        columns = ["order_id", "line_number", "sold_at", "store_id", "customer_id", "product_id", "quantity",
                   "unit_price", "discount", "revenue", "promotion"]  # fmt: skip
        copy_frame(
            cursor,
            "core.sales",
            pd.DataFrame(sales[columns]).assign(sale_date=sales["sold_at"].dt.normalize(), source="bench"),
        )
    first = BACKFILL_END - timedelta(days=BACKFILL_DAYS - 1)
    return {"url": url, "first": first.isoformat(), "last": BACKFILL_END.isoformat(), "lines": len(sales)}


def run_backfill(info: dict) -> dict:
    """One run of refresh_daily_kpis over every day, into a fresh Dagster storage; timed and checked."""
    import tempfile

    import dagster as dg

    from sales_pipeline.definitions import build_definitions
    from sales_pipeline.defs.analytics.sensors import RANGE_END_TAG, RANGE_START_TAG
    from sales_pipeline.resources import AnalyticsResource, WarehouseResource
    from sales_pipeline.runs import batch_range_run_events
    from sales_pipeline.settings import HISTORY_START, PIPELINE_TIMEZONE, Settings

    if not info["defaults"]:
        batch_range_run_events()  # as every command does
    storage = re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", own_database(BACKFILL_DAGSTER_DB, recreate=True))
    home = tempfile.mkdtemp(prefix="bench_backfill_")
    Path(home, "dagster.yaml").write_text(f"storage:\n  postgres:\n    postgres_url: {storage}\n"
                                          "telemetry:\n  enabled: false\n")  # fmt: skip
    os.environ.update({"DAGSTER_HOME": home, HISTORY_START: info["first"], PIPELINE_TIMEZONE: "UTC"})
    settings = Settings.from_environment()
    job = build_definitions(settings).resolve_job_def("refresh_daily_kpis")
    resources = {
        "warehouse": WarehouseResource(database_url=info["url"]),
        "analytics": AnalyticsResource(timezone="UTC", dashboard_dir=str(Path(home, "dashboard"))),
    }
    instance = dg.DagsterInstance.get()
    logging.getLogger("dagster").setLevel(logging.WARNING)  # 1,460 lines of "Materialized value" otherwise
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance, tags={RANGE_START_TAG: info["first"], RANGE_END_TAG: info["last"]}, resources=resources
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, **backfill_checks(instance, result, info)}


def backfill_checks(instance: Any, result: Any, info: dict) -> dict:
    """What the UI shows after the run: days materialized, their own revenues, the reconciliation check."""
    import dagster as dg

    key = dg.AssetKey(["marts", "daily_kpis"])
    materializations = result.asset_materializations_for_node("marts__daily_kpis")
    revenues = {m.partition: m.metadata["revenue"].value for m in materializations}
    end = (date.fromisoformat(info["last"]) + timedelta(days=1)).isoformat()  # exclusive
    partitions = dg.DailyPartitionsDefinition(start_date=info["first"], end_date=end, timezone="UTC")
    status = instance.get_status_by_partition(key, partitions.get_partition_keys(), partitions)
    checks = result.get_asset_check_evaluations()
    return {
        "materialized_days": sum(s == dg.AssetPartitionStatus.MATERIALIZED for s in (status or {}).values()),
        "distinct_day_revenues": len(set(revenues.values())),
        "revenue_total": round(sum(revenues.values()), 2),
        "check_passed": bool(checks) and all(c.passed for c in checks),
    }


def bench_backfill(args: argparse.Namespace) -> dict:
    print(f"\nbackfill: daily KPIs of {BACKFILL_DAYS:,} days in one Dagster run ({args.runs} run(s))")
    info = load_backfill_days(args.seed)
    print(f"  {info['lines']:,} order lines, {info['first']} .. {info['last']}")
    outcomes = []
    for run in range(args.runs):
        outcomes.append(measure("backfill", info["url"], info | {"defaults": False}))
        print(f"  run {run + 1}: {outcomes[-1]['seconds']:.2f} s  {outcome_line(outcomes[-1])}")
    defaults = None
    if not args.quick:
        defaults = measure("backfill", info["url"], info | {"defaults": True})
        print(f"  Dagster's default event settings: {defaults['seconds']:.2f} s  {outcome_line(defaults)}")
    bad = [o for o in outcomes if o["materialized_days"] != BACKFILL_DAYS or not o["check_passed"]
           or o["distinct_day_revenues"] < BACKFILL_DAYS // 2]  # fmt: skip
    assert not bad, bad
    seconds = median_of(outcomes, "seconds")
    verdict = "met" if seconds < TARGET_BACKFILL_S else "NOT met"
    print(f"  median {seconds:.2f} s (target {TARGET_BACKFILL_S} s: {verdict})")
    return {
        "backfill_1460_days_s": round(seconds, 2),
        "backfill_1460_days_defaults_s": round(defaults["seconds"], 2) if defaults else None,
        "backfill_peak_rss_mb": round(max(o["peak_rss_mb"] for o in outcomes)),
    }


def outcome_line(outcome: dict) -> str:
    return (
        f"{outcome['materialized_days']:,} days materialized, {outcome['distinct_day_revenues']:,} distinct day"
        f" revenues, check {'passed' if outcome['check_passed'] else 'NOT passed'},"
        f" peak {outcome['peak_rss_mb']:.0f} MB"
    )


def worker(kind: str, url: str, info: dict) -> None:
    if kind == "backfill":
        print_outcome(run_backfill(info))
        return
    if kind == "load":
        outcome = load(url, info["rows"], info["seed"], info["chunk_scale"], info["timezone"], info["fingerprint"])
    elif kind == "baseline":
        outcome = run_baseline(url, info)
    else:
        outcome = run_marts(kind, url, info)
    print_outcome(outcome)


def measure(kind: str, url: str, info: dict) -> dict:
    arguments = ["--worker", kind, "--url", url, "--info", json.dumps(info, default=str)]
    # The loader's progress goes straight through.
    return run_worker(__file__, arguments, f"the {kind} run", show_stderr=kind == "load")


# --- one size --------------------------------------------------------------------------------


def prepare(url: str, rows: int, seed: int, chunk_scale: int, timezone: str, server_local: bool) -> dict:
    stamp = fingerprint(rows, seed, chunk_scale, timezone)
    info = loaded_info(url, stamp)
    if info is not None:
        print(f"reusing the database {BENCH_DB}: it already holds these {rows:,} lines ({stamp}); load skipped")
    else:
        print(f"loading {rows:,} order lines into {BENCH_DB} with COPY (chunks of {chunk_scale} stores) ...")
        spec = {"rows": rows, "seed": seed, "chunk_scale": chunk_scale, "timezone": timezone, "fingerprint": stamp}
        bench_database(recreate=True)
        loaded = measure("load", url, spec)
        print(
            f"loaded in {loaded['load_s']:.0f} s (+{loaded['settle_s']:.0f} s vacuum/analyze), loader peak RSS"
            f" {loaded['peak_rss_mb']:,.0f} MB: {loaded['chunks']} chunk(s), {loaded['stores']} stores,"
            f" {loaded['products']:,} products, {loaded['stock_rows']:,} stock counts"
        )
        info = loaded_info(url, stamp)
        if info is None:
            raise SystemExit("the load did not leave the expected data behind")
    with db.transaction(url) as cursor:
        cursor.execute("SELECT count(*) FROM bench.held_back")
        held_rows = cursor.fetchone()[0]
    info = {
        "timezone": timezone,
        "first_day": str(info["first_day"]),
        "last_day": str(date.fromordinal(info["held_day"].toordinal() - 1)),
        "held_day": str(info["held_day"]),
        "held_rows": held_rows,
        "server_local": server_local,
    }
    print(
        f"history {info['first_day']} .. {info['last_day']} ({timezone}); new day {info['held_day']}:"
        f" {held_rows:,} lines held back"
    )
    return info


def check_baseline(url: str, baseline: dict) -> str:
    """The baseline computed what the marts hold (after a reset both cover the history without the new day)."""
    with db.transaction(url) as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM marts.daily_kpis), (SELECT count(*) FROM marts.sales_trends),"
            " (SELECT sum(revenue) FROM marts.daily_kpis WHERE scope = 'all')"
        )
        kpi_rows, trend_rows, revenue = cursor.fetchone()
    same = (kpi_rows, trend_rows, float(revenue)) == (
        baseline["kpi_rows"],
        baseline["trend_rows"],
        baseline["revenue"],
    )
    return (
        f"{'same as' if same else 'DIFFERENT from'} the marts: {baseline['kpi_rows']:,} KPI rows (marts {kpi_rows:,}),"
        f" {baseline['trend_rows']:,} trend rows (marts {trend_rows:,}), revenue {baseline['revenue']:,.2f}"
        f" (marts {float(revenue):,.2f})"
    )


def bench_size(url: str, rows: int, args: argparse.Namespace, timezone: str, server_local: bool) -> dict:
    print(f"\n=== {rows:,} order lines ===")
    info = prepare(url, rows, args.seed, args.chunk_scale, timezone, server_local)
    reset_new_day(url, info)
    settle(url)
    results: dict[str, list[dict]] = {"full": [], "new_day": []}
    for run in range(args.runs):
        for kind in ("full", "new_day"):  # alternated, so load on this shared machine hits both alike
            outcome = measure(kind, url, info)
            results[kind].append(outcome)
            print(f"  run {run + 1} {kind:<8}{outcome['seconds']:9.2f} s  peak {outcome['peak_rss_mb']:5.0f} MB")
            if kind == "new_day":
                reset_new_day(url, info)
            settle(url)

    baseline = None
    if rows <= args.baseline_max_rows:
        baseline = measure("baseline", url, info)
        print(f"  baseline    {baseline['seconds']:9.2f} s  peak {baseline['peak_rss_mb']:5.0f} MB")
        print(f"  baseline check: {check_baseline(url, baseline)}")
        baseline_note = None
    else:
        baseline_note = (
            f"baseline skipped at {rows:,} lines (above --baseline-max-rows {args.baseline_max_rows:,}):"
            " read_sql holds every line as Python objects"
        )
        print(f"  {baseline_note}")

    codes = sorted({r["code"] for kind in results for r in results[kind]})
    if len(codes) > 1:
        print(f"  WARNING: marts.py changed during the runs (versions {', '.join(codes)}): the medians mix them")
    full = median_of(results["full"], "seconds")
    new_day = median_of(results["new_day"], "seconds")
    peak = max(r["peak_rss_mb"] for kind in results for r in results[kind])
    server_peaks = [r["server_peak_mb"] for kind in results for r in results[kind] if r["server_peak_mb"]]
    server_peak = max(server_peaks) if server_peaks else None

    print(f"\n{rows:,} order lines, medians of {args.runs} run(s), seconds per step (each its own transaction):")
    print(f"{'step':<14}{'full':>10}{'new day':>10}{'new/full':>10}")
    for step in STEPS_NEW_DAY:
        f_s = statistics.median(r["steps"][step] for r in results["full"]) if step in STEPS_FULL else None
        n_s = statistics.median(r["steps"][step] for r in results["new_day"])
        ratio = f"{100 * n_s / f_s:9.1f}%" if f_s else f"{'':>10}"
        print(f"{step:<14}{f'{f_s:.3f}' if f_s is not None else '-':>10}{n_s:>10.3f}{ratio}")
    kpis_trends = statistics.median(r["steps"]["daily_kpis"] + r["steps"]["sales_trends"] for r in results["full"])
    print(f"{'total':<14}{full:>10.3f}{new_day:>10.3f}{100 * new_day / full:>9.1f}%")
    print()
    header = f"{'full s':>9}{'new day s':>11}{'new/full %':>12}{'peak RSS MB':>13}{'server MB':>11}{'baseline s':>12}"
    print(header + f"{'(ours KPIs+trends s)':>22}")
    server = f"{server_peak:,.0f}" if server_peak else "-"
    base = f"{baseline['seconds']:.2f}" if baseline else "skipped"
    print(
        f"{full:>9.2f}{new_day:>11.3f}{100 * new_day / full:>12.2f}{peak:>13,.0f}{server:>11}{base:>12}"
        f"{kpis_trends:>22.2f}"
    )
    figures = {
        "full_s": round(full, 3),
        "new_day_s": round(new_day, 3),
        "new_day_pct": round(100 * new_day / full, 2),
        "peak_rss_mb": round(peak),
        "server_backend_peak_mb": round(server_peak) if server_peak else None,
        "baseline_s": round(baseline["seconds"], 2) if baseline else None,
        "baseline_peak_rss_mb": round(baseline["peak_rss_mb"]) if baseline else None,
        "ours_kpis_trends_s": round(kpis_trends, 3),
        "held_day_lines": info["held_rows"],
        "marts_code": codes,
        "steps_full_s": {s: round(statistics.median(r["steps"][s] for r in results["full"]), 3) for s in STEPS_FULL},
        "steps_new_day_s": {
            s: round(statistics.median(r["steps"][s] for r in results["new_day"]), 3) for s in STEPS_NEW_DAY
        },
    }
    if baseline_note:
        figures["baseline_note"] = baseline_note
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 lines only")
    parser.add_argument("--sizes", type=int, nargs="+", help="order lines per size (default 1,000,000 5,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the full rebuild and of the new day (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk-scale", type=int, default=20, help="stores per generated chunk (default 20)")
    parser.add_argument(
        "--baseline-max-rows", type=int, default=1_000_000, help="run the pandas baseline up to this size"
    )
    parser.add_argument("--backfill-only", action="store_true", help="only the 1,460-day backfill through Dagster")
    parser.add_argument("--worker", choices=["load", "full", "new_day", "baseline", "backfill"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.url, json.loads(args.info))
        return

    sys.stdout.reconfigure(line_buffering=True)  # progress shows when the output goes to a file
    from sales_pipeline.settings import Settings

    if args.backfill_only:
        print(json.dumps({"benchmark": "marts", "runs": args.runs, **bench_backfill(args)}))
        return
    sizes = args.sizes or ([100_000] if args.quick else [1_000_000, 5_000_000])
    timezone = Settings.from_environment().pipeline_timezone
    url, server_local = bench_database()
    print(
        f"database {BENCH_DB} on the {'embedded' if server_local else 'configured'} server; {args.runs} run(s) each;"
        f" marts.py {marts_code()}"
    )
    figures = {str(rows): bench_size(url, rows, args, timezone, server_local) for rows in sizes}
    backfill = bench_backfill(args)

    print(f"\nsummary (target: one new day at most {TARGET_NEW_DAY_PCT}% of a full rebuild)")
    print(f"{'order lines':>12}{'full s':>9}{'new day s':>11}{'new/full %':>12}{'peak RSS MB':>13}{'baseline s':>12}")
    for rows, f in figures.items():
        base = f"{f['baseline_s']:.2f}" if f["baseline_s"] is not None else "skipped"
        print(
            f"{int(rows):>12,}{f['full_s']:>9.2f}{f['new_day_s']:>11.3f}{f['new_day_pct']:>12.2f}"
            f"{f['peak_rss_mb']:>13,}{base:>12}"
        )
    print(
        json.dumps(
            {"benchmark": "marts", "runs": args.runs, "sizes": figures, "target_new_day_pct": TARGET_NEW_DAY_PCT}
            | backfill
        )
    )


if __name__ == "__main__":
    main()
