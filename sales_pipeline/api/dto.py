"""The records the API answers with (pydantic), named as in the original service design.

Money is a JSON number rounded to the cent in the currency of `REPORT_CURRENCY` (the warehouse records
none); rates are fractions (0.123 = 12.3%); days are ISO dates in the pipeline's time zone.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field


class ErrorDTO(BaseModel):
    detail: str = Field(description="What is wrong, in a sentence.")


class ChangeDTO(BaseModel):
    value: float | int | None
    previous: float | int | None
    change: float | None = Field(description="value / previous - 1, null when previous is 0 or null")


class HeadlineDTO(BaseModel):
    revenue: ChangeDTO
    orders: ChangeDTO
    units: ChangeDTO
    average_order_value: ChangeDTO
    gross_margin_rate: ChangeDTO
    customers: ChangeDTO = Field(description="distinct known customers over the period")


class RevenuePointDTO(BaseModel):
    day: dt.date
    revenue: float


class StockHealthDTO(BaseModel):
    out_of_stock: int
    below_reorder_point: int
    healthy: int
    overstock: int


class StockAtRiskDTO(BaseModel):
    product_id: str
    name: str | None
    store_id: str
    on_hand: int
    on_order: int
    reorder_point: int | None
    days_of_cover: float | None
    status: Literal["out_of_stock", "below_reorder_point"]


class ProductPerformanceDTO(BaseModel):
    rank: int = Field(description="1 = most revenue; ties share a rank")
    product_id: str
    name: str | None
    category: str | None = None
    units: int
    revenue: float
    share: float | None = Field(description="of the period's revenue in this scope")
    previous_rank: int | None = None
    rank_change: int | None = Field(description="previous rank - rank: positive = climbed; null when new")


class DashboardAlertDTO(BaseModel):
    model_config = {"extra": "allow"}


class DashboardDTO(BaseModel):
    """The Dashboard record of marts.dashboard for the business or a store, as the pipeline last built it."""

    as_of: dt.date = Field(description="the data's last day: the last complete day the marts cover")
    refreshed_at: dt.datetime
    computed_at: dt.datetime = Field(description="when the pipeline wrote this record")
    currency: str
    scope: Literal["all", "store"]
    scope_id: str
    scope_name: str | None
    headline: HeadlineDTO = Field(description="the 7 days ending at as_of against the 7 days before")
    headline_day: HeadlineDTO = Field(description="as_of against the same weekday a week before")
    revenue_30d: list[RevenuePointDTO]
    stock_health: StockHealthDTO
    stock_at_risk: list[StockAtRiskDTO]
    top_products: list[ProductPerformanceDTO] = Field(description="the last 7 days' top 5")
    alerts: list[DashboardAlertDTO]


class StoreDTO(BaseModel):
    store_id: str
    name: str | None
    city: str | None
    region: str | None


class TopProductsDTO(BaseModel):
    as_of: dt.date
    period: Literal["yesterday", "7d", "30d", "mtd"]
    first_day: dt.date
    scope: Literal["all", "store", "category"]
    scope_id: str
    products: list[ProductPerformanceDTO]


class KpiRowDTO(BaseModel):
    day: dt.date
    scope: Literal["all", "store", "category", "product"]
    scope_id: str
    revenue: float
    units: int
    orders: int
    customers: int
    average_order_value: float | None
    gross_margin: float | None
    margin_rate: float | None
    discount_given: float


class KpiPageDTO(BaseModel):
    rows: list[KpiRowDTO]
    next: str | None = Field(description="the URL of the next page, null on the last one")


class ForecastDayDTO(BaseModel):
    day: dt.date
    yhat: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float
    closed: bool = Field(description="expected closed (the store shut that weekday lately)")


class AccuracyDTO(BaseModel):
    model: str
    origins: int
    mase: float | None
    smape: float | None
    mae: float
    rmse: float


class ForecastResultDTO(BaseModel):
    """A series' published 7-day revenue forecast, with its bands, model and backtest accuracy."""

    scope: Literal["all", "store", "category", "product"]
    scope_id: str
    origin: dt.date = Field(description="the last day of history it was made from")
    status: Literal["forecast", "fallback"]
    model: str
    reason: str = Field(description="why this model, in words")
    updated_at: dt.datetime
    days: list[ForecastDayDTO]
    accuracy: AccuracyDTO | None


class ForecastRequestDTO(BaseModel):
    scope: Literal["all", "store", "category", "product"] = "all"
    id: str = Field(default="", max_length=200, description="the store, category or product id; '' for all")


class ForecastRunDTO(BaseModel):
    run_id: str
    status: str = Field(description="Dagster's run status: QUEUED, STARTED, SUCCESS, FAILURE, ...")
    status_url: str


class SheetResultDTO(BaseModel):
    sheet: str
    target: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int
    rows_summary: int = Field(default=0, description="rows of totals and subtotals, skipped")
    rows_example: int = Field(default=0, description="the template's example rows, skipped")


class ImportAcceptedDTO(BaseModel):
    content_hash: str = Field(description="sha256 of the bytes received")
    file_name: str = Field(description="the name the file was given in the inbox")
    bytes: int
    status_url: str


class ImportResultDTO(BaseModel):
    """The outcome of an uploaded workbook: `waiting` until the inbox sensor's run has imported it."""

    content_hash: str
    file_name: str
    status: Literal["waiting", "loaded", "loaded_with_rejects", "rejected", "duplicate", "failed"]
    reason: str | None = None
    mapping: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    sheets: list[SheetResultDTO] = []
    ignored_sheets: dict[str, str] = Field(default={}, description="sheets of the workbook not read, and why")
    feedback_url: str | None = Field(default=None, description="the feedback workbook of the rejected rows")
    run_id: str | None = None
    finished_at: dt.datetime | None = None


class AlertDTO(BaseModel):
    id: int
    kind: str
    severity: Literal["info", "warning", "critical"]
    status: Literal["open", "acknowledged", "snoozed", "resolved"]
    entity_type: str
    entity_id: str
    store_id: str | None
    category: str | None
    message: str
    numbers: dict
    detected_on: dt.date
    since: dt.datetime = Field(description="first seen")
    last_seen_at: dt.datetime
    resolved_at: dt.datetime | None
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None


class AcknowledgementDTO(BaseModel):
    by: str | None = Field(default=None, max_length=100, description="who is on it; default: the token's id")


class NotificationDTO(BaseModel):
    """One event pushed over WS /ws/notifications: an alert opened (or reopened), escalated or resolved."""

    type: Literal["notification"] = "notification"
    id: int = Field(description="the event's id: reconnect with ?after=<id> to get what followed")
    event: Literal["opened", "escalated", "resolved"]
    at: dt.datetime
    alert: AlertDTO


class HealthDTO(BaseModel):
    status: Literal["ok", "unavailable"]
    warehouse: bool
    schema_version: int | None
    last_import_age_s: float | None = Field(description="seconds since the last workbook loaded")
    last_pull_age_s: float | None = Field(description="seconds since the last Java API pull")
    last_forecast_age_s: float | None = Field(description="seconds since a forecast was last published")
