"""Who gets which alert: the routing file (ALERT_ROUTING), or everything to MANAGER_EMAILS.

A routing file is a list of routes; an alert goes to the addresses of every route it matches::

    routes:
      - name: Lyon store manager          # optional: errors and the UI name it
        to: [manager.lyon@example.com]    # one address or a list
        stores: [S02]                     # alerts about these stores: their drops, their stock, their customers
        kinds: [sales_drop, stock_risk, customer_churn]   # optional: every kind
        min_severity: warning             # optional (default warning; info stays on the dashboard)
      - name: Coffee buyer
        to: coffee.buyer@example.com
        categories: [Coffee]              # a category's drops, its products' drops and stock risks
      - name: Head office
        to: [ceo@example.com, finance@example.com]
        chain: true                       # chain-wide alerts: the total's, categories' and products' drops

A route's conditions all hold for an alert it matches; a condition left out matches everything.
The daily reports follow the same routes (reporting/mailing.py): a route with stores gets those stores'
reports, a chain route or one without stores and categories the chain's. An
alert's store is the store it is about (a stock position's store, a churned customer's usual store),
its category that of its product or category (see store.py). The webhook, when set, gets every critical
alert: it is the chain's channel, not a person's.

A malformed file fails with its path, the line and what is wrong; a store or category the warehouse
does not know fails the same way when the delivery run checks the file against the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from psycopg2.extensions import cursor as Cursor

from sales_pipeline.alerts.store import SEVERITY_RANK
from sales_pipeline.settings import EMAIL_ADDRESS

KINDS = ("sales_drop", "stock_risk", "customer_churn")
ROUTE_KEYS = ("name", "to", "stores", "categories", "kinds", "min_severity", "chain")


class RoutingError(ValueError):
    """A routing file that cannot be used: the message names the file, the line and what is wrong."""


@dataclass(frozen=True)
class Route:
    to: tuple[str, ...]
    name: str = ""
    stores: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    min_severity: str = "warning"
    chain: bool = False
    line: int = 0  # where it starts in its file (1-based), for messages

    def matches(self, alerts: pd.DataFrame) -> pd.Series:
        """Which of `alerts` (columns kind, severity or its rank, store_id, category) this route takes."""
        rank = alerts["rank"] if "rank" in alerts else alerts["severity"].map(SEVERITY_RANK)
        mask = rank >= SEVERITY_RANK[self.min_severity]
        if self.kinds is not None:
            mask &= alerts["kind"].isin(self.kinds)
        if self.stores is not None:
            mask &= alerts["store_id"].isin(self.stores)
        if self.categories is not None:
            mask &= alerts["category"].isin(self.categories)
        if self.chain:
            mask &= alerts["store_id"].isna()
        return mask


@dataclass(frozen=True)
class Routing:
    routes: tuple[Route, ...]
    source: str = "MANAGER_EMAILS"  # the file, for messages

    @classmethod
    def everything_to(cls, addresses: tuple[str, ...]) -> Routing:
        """The default: every alert to these addresses (MANAGER_EMAILS); none when there are none."""
        return cls((Route(to=addresses, name="MANAGER_EMAILS"),) if addresses else ())

    def recipients(self, alerts: pd.DataFrame) -> dict[int, set[str]]:
        """alert_id -> the addresses it goes to (alerts no route takes are left out)."""
        found: dict[int, set[str]] = {}
        ranked = alerts.assign(rank=alerts["severity"].map(SEVERITY_RANK).astype(int))
        for route in self.routes:
            for alert_id in ranked["alert_id"].to_numpy()[route.matches(ranked).to_numpy()]:
                found.setdefault(int(alert_id), set()).update(route.to)
        return found

    def check_known(self, cursor: Cursor) -> None:
        """Fail naming the file and line of a store or category the warehouse does not know (when it knows any)."""
        for table, column, attribute in (("stores", "store_id", "stores"), ("products", "category", "categories")):
            cursor.execute(f"SELECT DISTINCT {column} FROM core.{table} WHERE {column} IS NOT NULL")
            known = {row[0] for row in cursor.fetchall()}
            if not known:
                continue
            for route in self.routes:
                unknown = sorted((getattr(route, attribute) or set()) - known)
                if unknown:
                    raise RoutingError(
                        f"{self.source}, line {route.line}: {attribute} {', '.join(unknown)} unknown to the warehouse"
                        f" (core.{table} has {', '.join(sorted(known)[:10])}{', ...' if len(known) > 10 else ''})"
                    )


def load_routing(path: Path) -> Routing:
    """Read and check a routing file (structure, kinds, severities, addresses); see the module docstring."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise RoutingError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    except OSError as error:
        raise RoutingError(f"{path}: cannot be read ({error.strerror})") from None
    reader = _Reader(str(path))
    if root is None:
        raise RoutingError(f"{path}: empty; it needs a `routes:` list")
    top = reader.mapping(root, ("routes",))
    if "routes" not in top:
        raise reader.error(root, "it needs a `routes:` list")
    routes = reader.sequence(top["routes"])
    return Routing(tuple(reader.route(node) for node in routes), source=str(path))


class _Reader:
    """Turns YAML nodes into routes, naming the file and line of anything wrong."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, node: yaml.Node, what: str) -> RoutingError:
        return RoutingError(f"{self.source}, line {node.start_mark.line + 1}: {what}")

    def mapping(self, node: yaml.Node, keys: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, "expected a mapping (key: value)")
        found = {}
        for key, value in node.value:
            if key.value not in keys:
                raise self.error(key, f"unknown key {key.value!r} (expected one of {', '.join(keys)})")
            found[key.value] = value
        return found

    def sequence(self, node: yaml.Node) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, "expected a list")
        return list(node.value)

    def strings(self, node: yaml.Node) -> list[tuple[str, yaml.Node]]:
        """One value or a list of them, as text."""
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        values = []
        for item in items:
            if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
                raise self.error(item, "expected a value")
            values.append((str(item.value).strip(), item))
        return values

    def route(self, node: yaml.Node) -> Route:
        fields = self.mapping(node, ROUTE_KEYS)
        if "to" not in fields:
            raise self.error(node, "a route needs `to:` (one address or a list)")
        to = []
        for address, item in self.strings(fields["to"]):
            if not EMAIL_ADDRESS.fullmatch(address):
                raise self.error(item, f"{address!r} is not an email address (name@example.com)")
            to.append(address)
        kinds = self.choices(fields, "kinds", KINDS)
        severity = self.choices(fields, "min_severity", tuple(SEVERITY_RANK))
        chain = fields.get("chain")
        if chain is not None and chain.value not in ("true", "false"):
            raise self.error(chain, f"chain: {chain.value!r} is not true or false")
        return Route(
            to=tuple(to),
            name=self.strings(fields["name"])[0][0] if "name" in fields else "",
            stores=self.set_of(fields, "stores"),
            categories=self.set_of(fields, "categories"),
            kinds=kinds,
            min_severity=next(iter(severity)) if severity else "warning",
            chain=chain is not None and chain.value == "true",
            line=node.start_mark.line + 1,
        )

    def set_of(self, fields: dict[str, yaml.Node], key: str) -> frozenset[str] | None:
        return frozenset(value for value, _ in self.strings(fields[key])) if key in fields else None

    def choices(self, fields: dict[str, yaml.Node], key: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
        if key not in fields:
            return None
        values = self.strings(fields[key])
        for value, item in values:
            if value not in allowed:
                raise self.error(item, f"{key}: {value!r} is not one of {', '.join(allowed)}")
        if key == "min_severity" and len(values) != 1:
            raise self.error(fields[key], "min_severity takes one value")
        return frozenset(value for value, _ in values)
