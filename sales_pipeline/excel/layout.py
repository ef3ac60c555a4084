"""The import template: which sheets a workbook may carry and what each column holds.

This is the single description of the template. The template workbook, the importer's parser and
validation, the synthetic retailer and the feedback workbook all read it, so a column added here
appears everywhere at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

ColumnKind = Literal["text", "whole", "decimal", "rate", "date", "datetime", "flag"]


@dataclass(frozen=True)
class Column:
    """One column of a template sheet."""

    name: str  # canonical name: the warehouse column and the normalised header
    header: str  # what the template shows
    kind: ColumnKind
    description: str
    example: object
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    default: object = None

    # Above this a value is a typing slip, not a sale (10,000 units in one line): refused like one out of range.
    plausible_max: float | None = None

    @property
    def range_reason(self) -> str:
        """Why a value outside the column's bounds is refused (the import and the warehouse's checks say it alike)."""
        if self.minimum is not None and self.maximum is not None:
            return f"must be between {self.minimum:g} and {self.maximum:g}"
        if self.minimum is not None:
            return f"must be {self.minimum:g} or more"
        return f"must be {self.maximum:g} or less"

    @property
    def implausible_reason(self) -> str:
        return f"more than {self.plausible_max:,.0f}: surely a typing slip"


@dataclass(frozen=True)
class Sheet:
    """One sheet of the template, loaded into one core table."""

    name: str  # the sheet name in the template, and the target name in mappings
    table: str  # the core table it merges into
    key: tuple[str, ...]  # natural key: one row per key in the table
    columns: tuple[Column, ...]
    description: str = ""
    # A row is sent whole (an order line, a stock count): a column left out means its default (Discount 0).
    # Otherwise (master data) a sheet updates only the columns it has: a price list leaves Active alone.
    whole_rows: bool = False
    column_by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_by_name", {c.name: c for c in self.columns})

    @property
    def target(self) -> str:
        return self.name.lower()


def normalise_header(header: object) -> str:
    """'  Unit Price (EUR) ' -> 'unit_price_eur': how headers are matched to column names."""
    text = re.sub(r"[^0-9a-z]+", "_", str(header).strip().lower())
    return text.strip("_")


PRODUCTS = Sheet(
    name="Products",
    table="core.products",
    key=("product_id",),
    description="The catalogue: one row per product.",
    columns=(
        Column("product_id", "Product ID", "text", "Unique product code, e.g. P0001.", "P0001", required=True),
        Column("sku", "SKU", "text", "Stock keeping unit as printed on the label.", "SKU-10001"),
        Column("name", "Name", "text", "Product name shown in reports.", "Espresso beans 1kg", required=True),
        Column("category", "Category", "text", "Product category.", "Coffee", required=True),
        Column("unit_price", "Unit Price", "decimal", "Current selling price per unit.", 18.5, minimum=0),
        Column("unit_cost", "Unit Cost", "decimal", "Purchase cost per unit; blank if unknown.", 9.75, minimum=0),
        Column("reorder_point", "Reorder Point", "whole", "Reorder when on hand falls to this.", 20, minimum=0),
        Column(
            "lead_time_days",
            "Lead Time Days",
            "whole",
            "Supplier lead time in days.",
            7,
            minimum=0,
            maximum=365,
        ),
        Column("supplier", "Supplier", "text", "Supplier name.", "Roast & Co"),
        Column("active", "Active", "flag", "Still sold? yes/no (blank means yes).", "yes", default=True),
    ),
)

STORES = Sheet(
    name="Stores",
    table="core.stores",
    key=("store_id",),
    description="Shops and channels: one row per store.",
    columns=(
        Column("store_id", "Store ID", "text", "Unique store code, e.g. S01.", "S01", required=True),
        Column("name", "Name", "text", "Store name.", "Lyon Part-Dieu"),
        Column("city", "City", "text", "City.", "Lyon"),
        Column("region", "Region", "text", "Sales region.", "South-East"),
        Column("timezone", "Timezone", "text", "IANA time zone of the store, e.g. Europe/Paris.", "Europe/Paris"),
        Column("opened_on", "Opened On", "date", "Opening date.", "2019-03-01"),
        Column(
            "kind",
            "Kind",
            "text",
            "store: a shop with opening days; channel: a region, web shop or catalogue, never closed. Blank: store.",
            "store",
            choices=("store", "channel"),
        ),
    ),
)

CUSTOMERS = Sheet(
    name="Customers",
    table="core.customers",
    key=("customer_id",),
    description="Known customers: one row per customer.",
    columns=(
        Column("customer_id", "Customer ID", "text", "Unique customer code.", "C00001", required=True),
        Column("name", "Name", "text", "Customer name.", "Jeanne Martin"),
        Column(
            "segment",
            "Segment",
            "text",
            "Customer segment.",
            "Consumer",
            choices=("Consumer", "Corporate", "Home Office"),
        ),
        Column("city", "City", "text", "City.", "Lyon"),
        Column("joined_on", "Joined On", "date", "First purchase or sign-up date.", "2024-05-17"),
    ),
)

SALES = Sheet(
    name="Sales",
    table="core.sales",
    key=("order_id", "line_number"),
    description="Order lines: one row per product in an order.",
    whole_rows=True,
    columns=(
        Column("order_id", "Order ID", "text", "Order (ticket) number.", "O-000001", required=True),
        Column(
            "line_number",
            "Line",
            "whole",
            "Line number within the order, from 1.",
            1,
            required=True,
            minimum=1,
        ),
        Column(
            "sold_at",
            "Sold At",
            "datetime",
            "Date, or date and time, of the sale.",
            "2026-11-02 10:15",
            required=True,
        ),
        Column("store_id", "Store ID", "text", "Store code (see Stores).", "S01", required=True),
        Column("customer_id", "Customer ID", "text", "Customer code; blank for anonymous sales.", "C00001"),
        Column("product_id", "Product ID", "text", "Product code (see Products).", "P0001", required=True),
        Column(
            "quantity",
            "Quantity",
            "whole",
            "Units sold, 1 or more.",
            2,
            required=True,
            minimum=1,
            plausible_max=10_000,
        ),
        Column(
            "unit_price",
            "Unit Price",
            "decimal",
            "Price per unit before discount.",
            18.5,
            required=True,
            minimum=0,
            plausible_max=100_000,
        ),
        Column(
            "discount",
            "Discount",
            "rate",
            "Discount as a share of the line: 0.1 or 10%.",
            0.1,
            minimum=0,
            maximum=1,
            default=0,
        ),
        Column("promotion", "Promotion", "flag", "Sold under a promotion? yes/no.", "no", default=False),
        Column(
            "revenue",
            "Line Total",
            "decimal",
            "Net amount of the line after discount; blank: quantity x unit price x (1 - discount).",
            33.3,
            minimum=0,
        ),
        Column(
            "unit_cost",
            "Unit Cost",
            "decimal",
            "Purchase cost per unit of this line, when known; blank: the product's Unit Cost.",
            9.75,
            minimum=0,
        ),
    ),
)

STOCK = Sheet(
    name="Stock",
    table="core.stock",
    key=("product_id", "store_id", "as_of"),
    description="On-hand snapshots: one row per product, store and date.",
    whole_rows=True,
    columns=(
        Column("product_id", "Product ID", "text", "Product code (see Products).", "P0001", required=True),
        Column("store_id", "Store ID", "text", "Store code (see Stores).", "S01", required=True),
        Column("as_of", "As Of", "date", "Date of the count.", "2026-11-02", required=True),
        Column(
            "on_hand",
            "On Hand",
            "whole",
            "Units on the shelf and in the back room.",
            42,
            required=True,
            minimum=0,
        ),
        Column(
            "on_order",
            "On Order",
            "whole",
            "Units ordered from the supplier, not yet received.",
            0,
            minimum=0,
            default=0,
        ),
    ),
)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

CALENDAR = Sheet(
    name="Calendar",
    table="core.store_calendar",
    key=("store_id", "day", "weekday"),
    description="Known closures: a date, or every such weekday, a store is closed (or open by exception).",
    columns=(
        Column("store_id", "Store ID", "text", "Store code; blank: every store.", "S01"),
        Column("day", "Date", "date", "The date closed (or open); blank when a weekday is given.", "2026-12-25"),
        Column(
            "weekday",
            "Weekday",
            "text",
            "Closed every such weekday, e.g. Sunday; blank when a date is given.",
            "",
            choices=WEEKDAYS,
        ),
        Column("open", "Open", "flag", "yes: open by exception that day; blank or no: closed.", "no", default=False),
        Column("note", "Note", "text", "Why, e.g. Christmas.", "Christmas"),
    ),
)

PROMOTIONS = Sheet(
    name="Promotions",
    table="core.promotions",
    key=("product_id", "category", "store_id", "starts_on"),
    description="Promotions known ahead: a product, a category or everything, in a store or every store.",
    columns=(
        Column("product_id", "Product ID", "text", "On promotion; blank: see Category.", "P0001"),
        Column("category", "Category", "text", "All products of a category; blank with no product: all.", ""),
        Column("store_id", "Store ID", "text", "Store code; blank: every store.", ""),
        Column("starts_on", "From", "date", "First day of the promotion.", "2026-11-23", required=True),
        Column("ends_on", "To", "date", "Last day of the promotion (inclusive).", "2026-11-29", required=True),
        Column("name", "Name", "text", "What it is, e.g. Black Friday week.", "Black Friday week"),
    ),
)

# Load order: referenced tables before the tables that reference them.
SHEETS: tuple[Sheet, ...] = (PRODUCTS, STORES, CUSTOMERS, SALES, STOCK, CALENDAR, PROMOTIONS)
SHEET_BY_TARGET: dict[str, Sheet] = {s.target: s for s in SHEETS}
