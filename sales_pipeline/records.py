"""The project's own records: what an import, a forecast or an alert produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class SheetResult:
    """What one source sheet brought into one core table."""

    sheet: str
    target: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int
    rows_summary: int = 0  # totals and subtotals, skipped
    rows_example: int = 0  # the template's example rows, skipped
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    ignored_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    """The outcome of one dropped workbook, as recorded in ops.import_ledger."""

    import_id: int
    file_name: str
    content_hash: str
    status: str  # loaded, loaded_with_rejects, rejected, duplicate
    reason: str | None = None
    mapping: str = "template"
    sheets: tuple[SheetResult, ...] = field(default_factory=tuple)
    archived_path: str | None = None
    feedback_path: str | None = None
    ignored_sheets: dict[str, str] = field(default_factory=dict)  # sheet -> why it was not read

    @property
    def rows_read(self) -> int:
        return sum(s.rows_read for s in self.sheets)

    @property
    def rows_loaded(self) -> int:
        return sum(s.rows_loaded for s in self.sheets)

    @property
    def rows_rejected(self) -> int:
        return sum(s.rows_rejected for s in self.sheets)

    @property
    def rows_duplicate(self) -> int:
        return sum(s.rows_duplicate for s in self.sheets)

    @property
    def rows_skipped(self) -> int:
        """Rows that are not data: totals and subtotals, the template's example rows."""
        return sum(s.rows_summary + s.rows_example for s in self.sheets)


@dataclass(frozen=True)
class Alert:
    """One anomaly as recorded in ml.anomalies: what, how bad, about whom, and why in words.

    `dedupe_key` stays the same while the situation lasts (a drop that goes on, the same stock
    count running down, the same silent customer), so the alerts are sent once per situation.
    """

    kind: str  # sales_drop | stock_risk | customer_churn
    severity: str  # info | warning | critical
    entity_type: str  # total | store | category | product | product_store | customer
    entity_id: str
    detected_on: date  # the day of data the detection looked at
    message: str  # one human sentence with the numbers
    numbers: dict  # the figures that triggered it (JSON-serialisable)
    dedupe_key: str


@dataclass(frozen=True)
class GeneratedReport:
    """One daily PDF report, as recorded in ops.generated_reports."""

    day: date
    scope: str  # all | store:<store_id> | category:<category>
    locale: str
    path: str
    pages: int
    bytes: int
    sha256: str
    headline: dict  # period -> kpi -> {value, previous, change}
    sent_to: tuple[str, ...] = ()
