"""Which days of KPIs the imports and pulls changed, and which of those changes the KPIs absorbed.

Each import (ops.import_ledger) and pull (ops.api_pulls) records the span of sale instants it
changed. It stays *pending* until a refresh of the daily KPIs covering its days marks it absorbed,
in the same transaction as the KPIs it writes (`absorb_sales_changes`). The sensor and the CLI plan
their refreshes from what is pending (`plan_kpi_refresh`), so a change that commits late, out of id
order, or while a refresh runs is never skipped: it is pending until a refresh that started after it
committed has covered it. The days of a change are given by ``ops.pending_sales_changes`` (migration
0008), the one place that turns instants into days.

The KPIs exist for the days of the daily partitions only (from the history start to yesterday): a
change outside them stays pending, and the plan says so, so that nobody is left with an empty mart
and no word why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from psycopg2.extensions import cursor as Cursor

from sales_pipeline.settings import HISTORY_START


@dataclass(frozen=True)
class SalesChange:
    """One import's or pull's changed sales, as the days of the KPIs they touch."""

    source: str  # 'import' or 'pull'
    change_id: int  # import_id or pull_id
    first_day: dt.date  # the first and last day whose KPIs it may have changed
    last_day: dt.date
    first_sale: dt.date  # the days of its first and last sale instant
    last_sale: dt.date

    @property
    def key(self) -> str:
        return f"{self.source}:{self.change_id}"


@dataclass(frozen=True)
class KpiRefreshPlan:
    """The one range of days to recompute for the pending changes, and what no range can cover yet."""

    first_day: dt.date | None = None
    last_day: dt.date | None = None
    changes: tuple[SalesChange, ...] = ()  # the changes the range covers
    before_history: tuple[SalesChange, ...] = ()  # wholly before the first partition

    @property
    def explanation(self) -> str | None:
        """A sentence for sales the marts cannot show yet, and what to do about it."""
        if not self.before_history:
            return None
        first = min(change.first_sale for change in self.before_history)
        last = max(change.last_sale for change in self.before_history)
        return (
            f"sales from {first} to {last} are before the first day of the marts: set {HISTORY_START}="
            f"{first} (or earlier) and run `sales-pipeline refresh` to include them"
        )


def pending_sales_changes(cursor: Cursor, timezone: str) -> list[SalesChange]:
    cursor.execute(
        "SELECT source, change_id, first_day, last_day, first_sale, last_sale FROM ops.pending_sales_changes(%s)"
        " ORDER BY source, change_id",
        (timezone,),
    )
    return [SalesChange(*row) for row in cursor.fetchall()]


def plan_pending_refresh(cursor: Cursor, timezone: str, partitions: tuple[dt.date, dt.date]) -> KpiRefreshPlan:
    """The one KPI range that absorbs every pending import and pull, within the partitions' first and last day."""
    return plan_kpi_refresh(pending_sales_changes(cursor, timezone), *partitions)


def plan_kpi_refresh(changes: list[SalesChange], first_partition: dt.date, last_partition: dt.date) -> KpiRefreshPlan:
    """One range covering every change that touches a day the KPIs have, clipped to those days.

    A change wholly after the last partition (today's sales) waits for the nightly refresh of its day.
    """
    covered = [c for c in changes if c.last_day >= first_partition and c.first_day <= last_partition]
    before = tuple(c for c in changes if c.last_day < first_partition)
    if not covered:
        return KpiRefreshPlan(before_history=before)
    return KpiRefreshPlan(
        first_day=max(min(c.first_day for c in covered), first_partition),
        last_day=min(max(c.last_day for c in covered), last_partition),
        changes=tuple(covered),
        before_history=before,
    )


def absorb_sales_changes(
    cursor: Cursor, first_day: dt.date, last_day: dt.date, timezone: str, partitions: tuple[dt.date, dt.date]
) -> int:
    """Mark absorbed the pending changes whose days (within the partitions) lie in first..last.

    Call it before the KPIs are recomputed, in the same transaction: every change it marks committed
    before this statement, so the KPI statements that follow see its sales; one that commits later
    stays pending for the next refresh.
    """
    cursor.execute(
        "WITH covered AS (SELECT source, change_id FROM ops.pending_sales_changes(%(zone)s)"
        "  WHERE greatest(first_day, %(first_partition)s) >= %(first)s"
        "  AND least(last_day, %(last_partition)s) <= %(last)s"
        "  AND first_day <= %(last_partition)s AND last_day >= %(first_partition)s),"
        " imports AS (UPDATE ops.import_ledger SET marts_absorbed_at = now() WHERE import_id IN"
        "  (SELECT change_id FROM covered WHERE source = 'import') RETURNING 1),"
        " pulls AS (UPDATE ops.api_pulls SET marts_absorbed_at = now() WHERE pull_id IN"
        "  (SELECT change_id FROM covered WHERE source = 'pull') RETURNING 1)"
        " SELECT (SELECT count(*) FROM imports) + (SELECT count(*) FROM pulls)",
        {
            "zone": timezone,
            "first": first_day,
            "last": last_day,
            "first_partition": partitions[0],
            "last_partition": partitions[1],
        },
    )
    return cursor.fetchone()[0]
