"""The back office's records, as pydantic models: the single description of what a record holds.

Field names are snake_case in Python and camelCase on the wire (as Spring/Jackson writes them), so
`SaleLine.model_validate(payload)` reads a record and `record.model_dump_json(by_alias=True)` writes one.
The client validates every page by these models (`read_page`; a sales page is first checked column by
column against `SaleLine`'s rules, and only a page that fails the check goes through the models, whose
message names what is wrong); the simulator serialises its data through the same models, so the two
cannot drift apart. `openapi.yaml` describes the same fields (a test keeps them equal).

Validation is strict where a lax reading would hide a broken record: whole numbers must be JSON
integers (not 2.0, "2" or true), text must be JSON strings, flags JSON booleans, instants ISO-8601 strings
with an offset. Unknown fields are ignored, so the back office may add fields without breaking a pull.

`parse_page` never lets a raw pydantic dump through: its `InvalidPage` names the endpoint, the page,
the record (its 0-based index in `content`) and the field, e.g.
``GET /api/v1/sales page 3, record 17: quantity: must be 1 or more (got 0)``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails, PydanticCustomError

API_PREFIX = "/api/v1/"
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _instant_text(value: Any) -> Any:
    """Instants arrive as ISO-8601 text; a number (epoch seconds?) or a bare date is a broken record."""
    if isinstance(value, dt.datetime) or (isinstance(value, str) and "T" in value):
        return value
    raise PydanticCustomError(
        "instant_text",
        "must be an ISO-8601 instant with an offset, e.g. 2026-11-02T10:15:00+01:00 (got {got})",
        {"got": _show(value)},
    )


def _date_text(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _DATE_TEXT.match(value):
        return value
    raise PydanticCustomError("date_text", "must be an ISO date, e.g. 2026-11-02 (got {got})", {"got": _show(value)})


Text = Annotated[str, StringConstraints(strict=True, min_length=1)]
Money = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True, ge=0)]
Instant = Annotated[AwareDatetime, BeforeValidator(_instant_text)]
IsoDate = Annotated[dt.date, BeforeValidator(_date_text)]


class ApiRecord(BaseModel):
    """A record of the back office's API: camelCase on the wire, snake_case in Python, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, frozen=True, extra="ignore"
    )
    KEY: ClassVar[tuple[str, ...]] = ()  # the natural key: one record per key in a full pull

    @property
    def key(self) -> tuple:
        return tuple(getattr(self, name) for name in self.KEY)

    @property
    def key_text(self) -> str:
        """The key as the wire names it, for messages: 'orderId O-17, lineNumber 2'."""
        return ", ".join(f"{to_camel(name)} {getattr(self, name)}" for name in self.KEY)


class Product(ApiRecord):
    """A catalogue entry, as `GET /api/v1/products` serves it (ordered by productId)."""

    KEY: ClassVar[tuple[str, ...]] = ("product_id",)

    product_id: Text
    sku: Text
    name: Text
    category: Text
    unit_price: Money  # current selling price per unit
    unit_cost: Money | None = None  # purchase cost per unit; null when unknown
    reorder_point: Count
    lead_time_days: Annotated[int, Field(strict=True, ge=0, le=365)]
    supplier: Text
    active: StrictBool  # still sold
    updated_at: Instant  # last change in the back office: the cursor of incremental pulls

    @field_serializer("updated_at", when_used="json")
    def _instant_millis(self, value: dt.datetime) -> str:
        """As java.time.Instant prints: UTC, milliseconds, 'Z'."""
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SaleLine(ApiRecord):
    """One product in an order, as `GET /api/v1/sales` serves it (ordered by soldAt, orderId, lineNumber)."""

    KEY: ClassVar[tuple[str, ...]] = ("order_id", "line_number")

    order_id: Text
    line_number: Annotated[int, Field(strict=True, ge=1)]
    sold_at: Instant  # the instant of the sale, with the store's UTC offset at that moment
    store_id: Text
    customer_id: Text | None = None  # null (or absent) for anonymous sales
    product_id: Text
    quantity: Annotated[int, Field(strict=True, ge=1)]
    unit_price: Money  # price per unit before discount
    discount: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]  # share of the line, 0..1
    promotion: StrictBool
    line_total: Money  # net amount: quantity x unitPrice x (1 - discount), rounded half up to the cent


class StockLevel(ApiRecord):
    """The latest on-hand count of a product in a store (`GET /api/v1/stock`, ordered by storeId, productId)."""

    KEY: ClassVar[tuple[str, ...]] = ("store_id", "product_id")

    store_id: Text
    product_id: Text
    on_hand: Count
    on_order: Count  # ordered from the supplier, not yet received
    as_of: IsoDate  # the day of the count


WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")  # java.time.DayOfWeek


class StoreClosure(ApiRecord):
    """A day a store is closed, or open by exception (`GET /api/v1/store-calendar`, ordered by storeId, date,
    dayOfWeek): a date, or every such weekday; storeId null for every store."""

    KEY: ClassVar[tuple[str, ...]] = ("store_id", "date", "day_of_week")

    store_id: Text | None = None
    date: IsoDate | None = None
    day_of_week: Literal[WEEKDAYS] | None = None  # type: ignore[valid-type]
    open: StrictBool  # true: open that day (a Sunday opening of a store closed on Sundays)
    note: Text | None = None

    @model_validator(mode="after")
    def _a_date_or_a_weekday(self) -> StoreClosure:
        if (self.date is None) == (self.day_of_week is None):
            raise PydanticCustomError("closure_day", "needs a date or a dayOfWeek, not both and not neither")
        return self


class Promotion(ApiRecord):
    """A promotion planned in the back office (`GET /api/v1/promotions`, ordered by startsOn, promotionId): a
    product, every product of a category, or every product (both null), in a store or every store."""

    KEY: ClassVar[tuple[str, ...]] = ("promotion_id",)

    promotion_id: Text
    name: Text | None = None
    product_id: Text | None = None
    category: Text | None = None
    store_id: Text | None = None
    starts_on: IsoDate
    ends_on: IsoDate  # the last day, inclusive

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Promotion:
        if self.ends_on < self.starts_on:
            raise PydanticCustomError(
                "promotion_days", "endsOn {ends} is before startsOn {starts}",
                {"ends": self.ends_on.isoformat(), "starts": self.starts_on.isoformat()},
            )  # fmt: skip
        return self


class PageInfo(BaseModel):
    """The `page` object of a Spring `PagedModel`: 0-based page number, page size, totals."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, frozen=True)

    size: Annotated[int, Field(strict=True, ge=1)]
    number: Count
    total_elements: Count
    total_pages: Count


# endpoint name -> record model; the path is API_PREFIX + name.
RECORD_MODELS: dict[str, type[ApiRecord]] = {
    "products": Product,
    "sales": SaleLine,
    "stock": StockLevel,
    "store-calendar": StoreClosure,
    "promotions": Promotion,
}
_LIST_ADAPTERS = {name: TypeAdapter(list[model]) for name, model in RECORD_MODELS.items()}
Record = TypeVar("Record", bound=ApiRecord)


class _Page(BaseModel, Generic[Record]):
    """A whole page as served, read in one pass by pydantic's JSON parser (see `read_page`)."""

    content: list[Record]
    page: PageInfo


_PAGE_ADAPTERS = {name: TypeAdapter(_Page[model]) for name, model in RECORD_MODELS.items()}


def window_check(endpoint: str, params: dict[str, Any]) -> Callable[[Sequence[Any]], tuple[int, str] | None]:
    """What finds, in a page's records, the first that a request with `params` did not ask for: (its index,
    why), or None when every record is in the window.

    Sales: `from` 00:00Z <= soldAt < `to` 00:00Z (UTC days, `to` exclusive). Products: updatedAt >=
    `updatedSince`. Stock has no window. A record outside the window is a page that lies: trusting it
    would replace the window's lines with others. The bounds are read once, for every page of a pull.
    """
    name = endpoint_name(endpoint)
    if name == "sales" and "from" in params and "to" in params:
        start, end = (_utc_midnight(params[bound]) for bound in ("from", "to"))

        def outside_days(records: Sequence[Any]) -> tuple[int, str] | None:
            sold = records.sold_at if isinstance(records, SalesLines) else [record.sold_at for record in records]
            if not sold or (start <= min(sold) and max(sold) < end):  # the whole page at once: the common case
                return None
            index = next(index for index, at in enumerate(sold) if not start <= at < end)
            return index, (
                f"soldAt {sold[index].isoformat()} is outside the requested window"
                f" {start:%Y-%m-%d} .. {end:%Y-%m-%d} (UTC days, to exclusive)"
            )

        return outside_days
    if name == "products" and params.get("updatedSince"):
        since = dt.datetime.fromisoformat(str(params["updatedSince"]).replace("Z", "+00:00"))
        since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)

        def before_since(records: Sequence[Any]) -> tuple[int, str] | None:
            for index, record in enumerate(records):
                if record.updated_at < since:
                    return index, (
                        f"updatedAt {record.updated_at.isoformat()} is before the requested updatedSince"
                        f" {since.isoformat()}"
                    )
            return None

        return before_since
    return lambda records: None


def _utc_midnight(day: str | dt.date) -> dt.datetime:
    day = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


class InvalidPage(ValueError):
    """A page that is not what the contract promises; the message says where and what, never a raw dump."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        page: int | None = None,
        index: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint, self.page, self.index, self.field = endpoint, page, index, field


def endpoint_name(endpoint: str) -> str:
    """'sales', '/api/v1/sales' or 'GET /api/v1/sales' -> 'sales'."""
    name = endpoint.removeprefix("GET ").strip().removeprefix(API_PREFIX).strip("/")
    if name not in RECORD_MODELS:
        raise ValueError(f"unknown endpoint {endpoint!r}; the API has {sorted(RECORD_MODELS)}")
    return name


def parse_page(endpoint: str, page_number: int, payload: object) -> tuple[list[Any], PageInfo]:
    """Validate one page's JSON (already decoded) -> (records, page info), or raise `InvalidPage`.

    `endpoint` is 'sales', '/api/v1/sales' or 'GET /api/v1/sales'; `page_number` is the page asked for.
    Records come back as `Product`, `SaleLine` or `StockLevel` models, in the order the page had them.
    """
    name = endpoint_name(endpoint)
    where = f"GET {API_PREFIX}{name} page {page_number}"

    def fail(problem: str, index: int | None = None, field: str | None = None) -> InvalidPage:
        path = API_PREFIX + name
        return InvalidPage(f"{where}: {problem}", endpoint=path, page=page_number, index=index, field=field)

    if not isinstance(payload, dict):
        raise fail(f"the body must be a Spring Page JSON object with content and page (got {_kind(payload)})")
    if "content" not in payload:
        raise fail("content: required but missing", field="content")
    content = payload["content"]
    if not isinstance(content, list):
        raise fail(f"content: must be a JSON array (got {_kind(content)})", field="content")
    if "page" not in payload:
        raise fail("page: required but missing", field="page")
    try:
        info = PageInfo.model_validate(payload["page"], by_alias=True, by_name=False)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(["page", *(str(part) for part in first["loc"])])
        raise fail(f"{field}: {describe_error(first)}", field=field) from None
    if info.number != page_number:
        raise fail(f"page.number is {info.number}, but page {page_number} was asked for", field="page.number")
    if len(content) > info.size:
        raise fail(f"content has {len(content)} records, more than page.size {info.size}", field="content")
    try:
        records = _LIST_ADAPTERS[name].validate_python(content, by_alias=True, by_name=False)
    except ValidationError as error:
        problems = error.errors()
        first = problems[0]
        index = first["loc"][0] if first["loc"] and isinstance(first["loc"][0], int) else None
        field = ".".join(str(part) for part in first["loc"][1:]) or None
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''} on this page)"
        message = (f"{field}: " if field else "") + describe_error(first) + (more if len(problems) > 1 else "")
        raise InvalidPage(
            f"{where}, record {index}: {message}",
            endpoint=API_PREFIX + name,
            page=page_number,
            index=index,
            field=field,
        ) from None
    return records, info


def read_page(endpoint: str, page_number: int, body: bytes) -> tuple[Sequence[Any], PageInfo]:
    """`parse_page` for a body as served: the same records (sales: as `SalesLines`), or the same `InvalidPage`.

    A sound page is read in one pass (pydantic's JSON parser straight into the models, about twice as fast
    as `json.loads` and then the models; sales: orjson and a check column by column, see `SalesLines`); a
    page that fails that pass is read again by `parse_page`, whose message names what is wrong. A body that
    is not JSON raises `ValueError`.
    """
    name = endpoint_name(endpoint)
    if name == "sales":
        return _read_sales_page(page_number, body)
    try:
        page = _PAGE_ADAPTERS[name].validate_json(body, by_alias=True, by_name=False)
    except ValidationError:
        page = None
    if page is not None and page.page.number == page_number and len(page.content) <= page.page.size:
        return page.content, page.page
    return parse_page(endpoint, page_number, json.loads(body))


class SalesLines(Sequence[SaleLine]):
    """A page of sale lines, checked against `SaleLine`'s rules column by column rather than record by record.

    `columns` maps each field (snake_case) to its values in page order, as the JSON had them (soldAt as its
    text); `sold_at` holds the instants read; `texts` each record's JSON, as orjson writes it again (every
    field the API sent, in its order). An item is the line as a `SaleLine` (built on demand, for messages
    and `fetch_all`).
    """

    def __init__(self, columns: dict[str, list], sold_at: list[dt.datetime], texts: list[str]) -> None:
        self.columns, self.sold_at, self.texts = columns, sold_at, texts

    @classmethod
    def from_models(cls, records: list[SaleLine], content: list, page_number: int) -> SalesLines:
        """The lines pydantic read (a page the column check was too strict for, e.g. another instant format, or
        one orjson could not read); their records' text by the standard library, which keeps integers of any size
        and refuses NaN and Infinity, which JSON does not have (pydantic ignores them in a field it does not know)."""
        columns = {name: [getattr(record, name) for record in records] for name in SaleLine.model_fields}
        sold_at = columns["sold_at"]
        columns["sold_at"] = [at.isoformat() for at in sold_at]
        texts = []
        for index, record in enumerate(content):
            try:
                texts.append(json.dumps(record, allow_nan=False, ensure_ascii=False, separators=(",", ":")))
            except ValueError:
                raise InvalidPage(
                    f"GET {API_PREFIX}sales page {page_number}, record {index}: a number that is not finite (NaN "
                    "or Infinity), which JSON does not allow",
                    endpoint=API_PREFIX + "sales",
                    page=page_number,
                    index=index,
                ) from None
        return cls(columns, sold_at, texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> SaleLine:  # type: ignore[override]
        fields = {name: values[index] for name, values in self.columns.items()}
        for name in ("unit_price", "discount", "line_total"):
            fields[name] = float(fields[name])
        return SaleLine.model_construct(**fields | {"sold_at": self.sold_at[index]})


_INSTANT_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_NONE = type(None)
_SALE_WIRE_NAMES = {name: to_camel(name) for name in SaleLine.model_fields}


def _read_sales_page(page_number: int, body: bytes) -> tuple[SalesLines, PageInfo]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        # NaN, Infinity or a number past 64 bits: pydantic reads the page (never the column check, which counts
        # on orjson's finite numbers) and names a bad amount; a body that is not JSON at all raises ValueError.
        payload = json.loads(body)
        records, info = parse_page("sales", page_number, payload)
        return SalesLines.from_models(records, payload["content"], page_number), info
    if isinstance(payload, dict) and type(payload.get("content")) is list and isinstance(payload.get("page"), dict):
        content = payload["content"]
        try:
            info = PageInfo.model_validate(payload["page"], by_alias=True, by_name=False)
        except ValidationError:
            info = None
        lines = _checked_sales(content) if info and info.number == page_number and len(content) <= info.size else None
        if lines is not None:
            return lines, info
    records, info = parse_page("sales", page_number, payload)  # raises InvalidPage, naming what is wrong
    return SalesLines.from_models(records, payload["content"], page_number), info


def _checked_sales(content: list) -> SalesLines | None:
    """The page's lines if every one keeps `SaleLine`'s rules, else None (then pydantic reads the page and
    says what is wrong). Each rule is one pass over a column in C (types, bounds); never laxer than the model.
    orjson reads no NaN or Infinity, so the numbers are finite.
    """
    if set(map(type, content)) - {dict}:
        return None
    missing = object()
    column = {name: [record.get(wire, missing) for record in content] for name, wire in _SALE_WIRE_NAMES.items()}
    column["customer_id"] = [None if value is missing else value for value in column["customer_id"]]

    def kinds(name: str) -> set[type]:
        return set(map(type, column[name]))

    texts_ok = all(kinds(name) <= {str} and "" not in column[name] for name in ("order_id", "store_id", "product_id"))
    customers_ok = kinds("customer_id") <= {str, _NONE} and "" not in column["customer_id"]
    counts_ok = all(kinds(name) <= {int} and min(column[name], default=1) >= 1 for name in ("line_number", "quantity"))
    amounts = ("unit_price", "discount", "line_total")
    money_ok = all(kinds(name) <= {int, float} and min(column[name], default=0) >= 0 for name in amounts)
    money_ok = money_ok and max(column["discount"], default=0) <= 1
    flags_ok = kinds("promotion") <= {bool}
    instants_ok = kinds("sold_at") <= {str} and all(map(_INSTANT_TEXT.fullmatch, column["sold_at"]))
    if not (texts_ok and customers_ok and counts_ok and money_ok and flags_ok and instants_ok):
        return None
    try:
        sold_at = list(map(dt.datetime.fromisoformat, column["sold_at"]))
    except ValueError:  # e.g. a 13th month
        return None
    return SalesLines(column, sold_at, [orjson.dumps(record).decode() for record in content])


def describe_error(error: ErrorDetails) -> str:
    """One pydantic error -> 'must be 1 or more (got 0)': what the value must be and what it was."""
    kind, ctx = error["type"], error.get("ctx") or {}
    got = f" (got {_show(error.get('input'))})"
    if kind in ("instant_text", "date_text", "closure_day", "promotion_days"):
        return error["msg"]  # our own messages, already in these words
    if kind == "missing":
        return "required but missing"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}[kind]
        words = {"ge": "{} or more", "gt": "more than {}", "le": "{} or less", "lt": "less than {}"}[bound]
        return "must be " + words.format(_show(ctx.get(bound))) + got
    if kind in ("int_type", "int_parsing", "int_from_float", "int_parsing_size"):
        return "must be a whole number" + got
    if kind in ("float_type", "float_parsing", "finite_number"):
        return "must be a finite number" + got
    if kind == "string_type":
        return "must be a string" + got
    if kind == "string_too_short":
        return "must not be empty"
    if kind.startswith("bool"):
        return "must be true or false" + got
    if kind == "timezone_aware" or kind.startswith("datetime"):
        return "must be an ISO-8601 instant with an offset, e.g. 2026-11-02T10:15:00+01:00" + got
    if kind.startswith("date"):
        return "must be an ISO date, e.g. 2026-11-02" + got
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object" + got
    if kind == "list_type":
        return "must be a JSON array" + got
    return error["msg"][:1].lower() + error["msg"][1:] + got


def _show(value: object, limit: int = 60) -> str:
    """A value as the JSON it came in, cut short: 0, "abc", null, {...}."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # circular
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {_show(value)}"
