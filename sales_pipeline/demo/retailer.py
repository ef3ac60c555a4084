"""A deterministic synthetic retailer that forecasting and alerting can find true things in.

`generate_retailer` builds the five template tables (products, stores, customers, sales, stock) from a
single seeded random generator, with a demand model that has a trend, weekly and yearly seasonality,
closed days, promotions, stock-outs and a Zipf-like product mix. Three anomalies are planted and
recorded in `Retailer.planted` so tests can check that the pipeline finds them:

* a store whose revenue drops by about 45% over the last 10 days;
* a fast seller in one store whose last stock count covers only 2-3 days of demand, less than its
  supplier lead time, with nothing on order;
* a handful of regular customers who stop buying about 90 days before the end.

`write_workbooks` and `write_sheets_workbook` write the tables as import-template workbooks (sheet names
and headers from `sales_pipeline.excel.layout`), byte-for-byte reproducible for the same input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
import xlsxwriter

from sales_pipeline.excel import layout

DEFAULT_END = date(2026, 11, 22)  # fixed so the same seed gives the same bytes whatever day it runs
EXCEL_MAX_ROWS = 1_048_576  # rows per worksheet, header included
MIN_DAYS = 28  # the planted anomalies need a few weeks of normal history to stand out from

HOLIDAYS = ((1, 1), (5, 1), (12, 25))  # (month, day): every store is closed
_WORKBOOK_CREATED = datetime(2026, 1, 1)  # document metadata; a fixed value keeps the bytes reproducible
_CONSTANT_MEMORY_ROWS = 50_000  # above this many rows stream rows to disk instead of keeping cells

# Demand model ------------------------------------------------------------------------------------
_BASE_LINES_PER_STORE_DAY = 36.0  # a little over 35: closed days bring the average down
_ORDER_SIZE_P = np.array([0.34, 0.26, 0.20, 0.12, 0.08])  # lines per order, 1..5
_QUANTITY_P = np.array([0.58, 0.25, 0.10, 0.04, 0.02, 0.01])  # units per line, 1..6
# Opening hours 8:00-20:00: a late-morning/lunch peak and an after-work peak.
_HOUR_WEIGHTS = np.array([0.45, 0.7, 0.85, 1.0, 1.35, 1.25, 0.85, 0.75, 0.85, 1.05, 1.15, 0.8])
_WEEKDAY_FACTOR = np.array([0.85, 0.86, 0.90, 0.95, 1.10, 1.24, 1.10])  # Monday..Sunday, mean 1
_TREND_PER_YEAR = 1.08
_ZIPF_EXPONENT = 1.05
_ZIPF_SHIFT = 2.0  # flattens the very top a little so the top 5 is clear but not the whole business
_ANONYMOUS_SHARE = 0.30
_DROP_DAYS = 10
_DROP_RATIO = 0.55  # the drop store's daily revenue over its last 10 days vs the 28 days before: -45%
_CHURN_DAYS = (88, 96)  # churned customers' last day is this many days before the end (randint range)
_GAP_GAMMA = (4.0, 6.7)  # shape, scale of each customer's mean days between visits (mean ~27)

# Catalogue ---------------------------------------------------------------------------------------
# category -> (price range of the smallest pack, suppliers with lead-time range, seasonality
# (amplitude, peak day of year), products as (base name, "variant|variant|...")).
_CATALOGUE: dict[str, dict[str, Any]] = {
    "Coffee": {
        "price": (4.5, 9.0),
        "suppliers": (("Roast & Co", 7, 12), ("Café Lumière Importers", 10, 18)),
        "season": (0.06, 15),
        "items": (
            ("Espresso beans", "250g|500g|1kg"),
            ("House blend beans", "250g|500g|1kg"),
            ("Colombian Supremo ground", "250g|500g|1kg"),
            ("Ethiopian Yirgacheffe beans", "250g|500g|1kg"),
            ("Brazil Santos beans", "250g|500g|1kg"),
            ("Guatemala Antigua beans", "250g|500g|1kg"),
            ("Decaf ground coffee", "250g|500g|1kg"),
            ("Italian roast beans", "250g|500g|1kg"),
            ("Sumatra Mandheling beans", "250g|500g|1kg"),
            ("Breakfast blend ground", "250g|500g|1kg"),
            ("Kenya AA beans", "250g|500g|1kg"),
            ("Peru organic ground", "250g|500g|1kg"),
            ("Espresso capsules", "x10|x30|x50"),
            ("Lungo capsules", "x10|x30|x50"),
            ("Cold brew concentrate", "500ml|1L"),
        ),
    },
    "Tea": {
        "price": (2.5, 6.0),
        "suppliers": (("Leaf & Kettle", 10, 21), ("Thé des Alpes", 8, 14)),
        "season": (0.15, 15),
        "items": (
            ("Earl Grey", "20 bags|50 bags|loose 250g"),
            ("English Breakfast", "20 bags|50 bags|loose 250g"),
            ("Sencha green tea", "20 bags|50 bags|loose 250g"),
            ("Jasmine green tea", "20 bags|50 bags|loose 250g"),
            ("Darjeeling first flush", "20 bags|50 bags|loose 250g"),
            ("Rooibos vanilla", "20 bags|50 bags|loose 250g"),
            ("Chamomile infusion", "20 bags|50 bags|loose 250g"),
            ("Peppermint infusion", "20 bags|50 bags|loose 250g"),
            ("Masala chai", "20 bags|50 bags|loose 250g"),
            ("Lapsang souchong", "20 bags|50 bags|loose 250g"),
            ("Milk oolong", "20 bags|50 bags|loose 250g"),
            ("Lemon ginger infusion", "20 bags|50 bags|loose 250g"),
        ),
    },
    "Bakery": {
        "price": (0.9, 3.5),
        "suppliers": (("Boulangerie Martin", 2, 3), ("Fournil du Rhône", 2, 4)),
        "season": (0.0, 1),
        "items": (
            ("Butter croissant", "single|pack of 4|pack of 8"),
            ("Pain au chocolat", "single|pack of 4|pack of 8"),
            ("Almond croissant", "single|pack of 4"),
            ("Baguette tradition", "single|pack of 3"),
            ("Sourdough loaf", "500g|1kg"),
            ("Brioche", "400g|800g"),
            ("Cinnamon roll", "single|pack of 4"),
            ("Rye bread", "500g|1kg"),
            ("Multigrain loaf", "500g|1kg"),
            ("Lemon tart", "individual|6 portions"),
            ("Madeleines", "pack of 6|pack of 12"),
            ("Chocolate chip cookie", "single|pack of 6"),
            ("Apple turnover", "single|pack of 4"),
            ("Fig & walnut bread", "400g|800g"),
        ),
    },
    "Dairy": {
        "price": (1.2, 6.0),
        "suppliers": (("Laiterie Beaumont", 2, 4), ("Fromagerie Vernet", 4, 8)),
        "season": (0.0, 1),
        "items": (
            ("Whole milk", "1L|6 x 1L"),
            ("Semi-skimmed milk", "1L|6 x 1L"),
            ("Oat drink", "1L|6 x 1L"),
            ("Almond drink", "1L|6 x 1L"),
            ("Greek yogurt", "4 x 125g|1kg"),
            ("Plain yogurt", "4 x 125g|12 x 125g"),
            ("Salted butter", "250g|500g"),
            ("Unsalted butter", "250g|500g"),
            ("Comté 18 months", "200g|500g"),
            ("Brie de Meaux", "250g|1kg"),
            ("Goat cheese log", "150g|300g"),
            ("Crème fraîche", "200ml|500ml"),
            ("Skyr vanilla", "150g|450g"),
        ),
    },
    "Snacks": {
        "price": (1.5, 4.5),
        "suppliers": (("Croc Snacks", 5, 9), ("Maison Biscuit", 6, 12)),
        "season": (0.10, 200),
        "items": (
            ("Sea salt crisps", "45g|150g"),
            ("Paprika crisps", "45g|150g"),
            ("Salted peanuts", "150g|400g"),
            ("Mixed nuts", "150g|500g"),
            ("Roasted almonds", "150g|500g"),
            ("Butter biscuits", "150g|400g"),
            ("Oat cookies", "150g|400g"),
            ("Granola bar", "single|pack of 6"),
            ("Dried apricots", "200g|500g"),
            ("Rice cakes", "100g|200g"),
            ("Pretzels", "150g|400g"),
            ("Trail mix", "150g|400g"),
            ("Cheese crackers", "100g|250g"),
        ),
    },
    "Beverages": {
        "price": (1.2, 4.0),
        "suppliers": (("Sources Claires", 4, 8), ("Jus du Verger", 5, 10)),
        "season": (0.35, 196),
        "items": (
            ("Still mineral water", "50cl|1.5L|6 x 1.5L"),
            ("Sparkling water", "50cl|1.5L|6 x 1.5L"),
            ("Orange juice", "25cl|1L"),
            ("Apple juice", "25cl|1L"),
            ("Lemonade", "33cl|1L"),
            ("Iced tea peach", "33cl|1.5L"),
            ("Cola", "33cl|1.5L|6 x 33cl"),
            ("Ginger beer", "33cl|4 x 33cl"),
            ("Kombucha", "33cl|4 x 33cl"),
            ("Hot chocolate mix", "250g|500g"),
            ("Coconut water", "33cl|1L"),
            ("Elderflower cordial", "50cl|1L"),
        ),
    },
    "Household": {
        "price": (2.0, 8.0),
        "suppliers": (("Nettoyage Pro", 7, 14), ("EcoMaison", 10, 21)),
        "season": (0.0, 1),
        "items": (
            ("Dish soap", "500ml|1L"),
            ("Paper towels", "2 rolls|6 rolls"),
            ("Compostable cups", "pack of 50|pack of 200"),
            ("Coffee filters", "pack of 80|pack of 200"),
            ("Descaler", "250ml|500ml"),
            ("Napkins", "pack of 100|pack of 500"),
            ("Reusable tumbler", "350ml|500ml"),
            ("Kitchen sponges", "pack of 3|pack of 10"),
            ("Glass cleaner", "500ml|1L"),
            ("Bin bags", "20 x 30L|50 x 30L"),
            ("Wooden stirrers", "pack of 500|pack of 1000"),
            ("Hand soap", "300ml|1L"),
        ),
    },
    "Chocolate": {
        "price": (1.8, 7.0),
        "suppliers": (("Chocolaterie Aubert", 6, 12), ("Cacao & Fils", 8, 16)),
        "season": (0.40, 350),
        "items": (
            ("Dark chocolate 70%", "100g|250g"),
            ("Milk chocolate", "100g|250g"),
            ("Hazelnut praline bar", "45g|pack of 5"),
            ("White chocolate", "100g|250g"),
            ("Chocolate truffles", "150g|300g"),
            ("Orangettes", "125g|250g"),
            ("Hazelnut spread", "400g|750g"),
            ("Cocoa powder", "250g|500g"),
            ("Salted caramel bar", "45g|pack of 5"),
            ("Chocolate-covered almonds", "150g|300g"),
        ),
    },
}
_CATEGORY_WEIGHT = {
    "Coffee": 0.16,
    "Tea": 0.12,
    "Bakery": 0.16,
    "Dairy": 0.13,
    "Snacks": 0.12,
    "Beverages": 0.12,
    "Household": 0.08,
    "Chocolate": 0.11,
}
_VARIANT_PRICE_FACTOR = (1.0, 1.8, 3.0)

# (name, city, region); the New York store is slotted in as S03 when there are at least 3 stores.
_FRENCH_SITES = (
    ("Paris Marais", "Paris", "Île-de-France"),
    ("Lyon Part-Dieu", "Lyon", "Auvergne-Rhône-Alpes"),
    ("Bordeaux Chartrons", "Bordeaux", "Nouvelle-Aquitaine"),
    ("Lille Vieux-Lille", "Lille", "Hauts-de-France"),
    ("Marseille Vieux-Port", "Marseille", "Provence-Alpes-Côte d'Azur"),
    ("Nantes Graslin", "Nantes", "Pays de la Loire"),
    ("Toulouse Capitole", "Toulouse", "Occitanie"),
    ("Strasbourg Petite France", "Strasbourg", "Grand Est"),
    ("Paris Montparnasse", "Paris", "Île-de-France"),
    ("Rennes Thabor", "Rennes", "Bretagne"),
    ("Nice Masséna", "Nice", "Provence-Alpes-Côte d'Azur"),
    ("Montpellier Comédie", "Montpellier", "Occitanie"),
    ("Grenoble Victor Hugo", "Grenoble", "Auvergne-Rhône-Alpes"),
    ("Dijon Darcy", "Dijon", "Bourgogne-Franche-Comté"),
    ("Paris Batignolles", "Paris", "Île-de-France"),
)
_NEW_YORK_SITE = ("New York SoHo", "New York", "North America")
_NEW_YORK_INDEX = 2


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST_NAMES_FR = _words(
    "Jeanne Louis Camille Hugo Léa Lucas Manon Jules Chloé Gabriel Inès Arthur Sarah Adam Emma "
    "Raphaël Alice Nathan Juliette Thomas Louise Paul Zoé Antoine Clara Maxime Anaïs Théo Margaux "
    "Victor Élise Julien Pauline Mathis Lucie Romain Sophie Nicolas Claire Olivier"
)
_LAST_NAMES_FR = _words(
    "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent Lefebvre "
    "Michel Garcia David Bertrand Roux Vincent Fournier Morel Girard André Mercier Dupont Lambert "
    "Bonnet François Martinez Legrand Garnier Faure Rousseau Blanc Guerin Muller Henry Roussel "
    "Nicolas Perrin"
)
_FIRST_NAMES_US = _words(
    "James Mary Michael Patricia Robert Jennifer David Linda William Elizabeth Daniel Susan Matthew "
    "Jessica Anthony Karen Mark Emily Steven Ashley Andrew Olivia Joshua Megan Ryan Rachel"
)
_LAST_NAMES_US = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Moore Jackson White "
    "Harris Clark Lewis Walker Hall Young King Wright Lopez Hill Scott Green Adams Baker Nelson "
    "Carter Rivera"
)
_COMPANY_SUFFIX_FR = ("SARL", "SAS", "& Associés", "Conseil", "Studio", "Architectes", "Avocats")
_COMPANY_SUFFIX_US = ("LLC", "Inc.", "& Partners", "Studio", "Design Co.", "Consulting")
_SEGMENTS = ("Consumer", "Corporate", "Home Office")
_SEGMENT_P = (0.65, 0.20, 0.15)


@dataclass(frozen=True)
class PlantedAnomalies:
    """What was planted in the data, so tests can check the pipeline finds it."""

    sales_drop_store_id: str  # daily revenue drops ~45% from sales_drop_start to the end
    sales_drop_start: date
    stockout_product_id: str  # a fast seller whose last count covers 2-3 days of demand, < lead time
    stockout_store_id: str
    churned_customer_ids: tuple[str, ...]  # regulars (>= 6 purchases) who stop ~90 days before the end

    def to_dict(self) -> dict:
        return {
            "sales_drop_store_id": self.sales_drop_store_id,
            "sales_drop_start": self.sales_drop_start.isoformat(),
            "stockout_product_id": self.stockout_product_id,
            "stockout_store_id": self.stockout_store_id,
            "churned_customer_ids": list(self.churned_customer_ids),
        }


# eq=False: the generated __eq__/__hash__ would try to compare and hash DataFrames, which pandas refuses.
@dataclass(frozen=True, eq=False)
class Retailer:
    """The template tables, columns named and ordered as in `layout`, plus what was planted."""

    products: pd.DataFrame
    stores: pd.DataFrame
    customers: pd.DataFrame
    sales: pd.DataFrame
    stock: pd.DataFrame
    planted: PlantedAnomalies
    calendar: pd.DataFrame  # the known closures: the Sunday-closed store and the chain's holidays
    promotions: pd.DataFrame  # the chain-wide promotion weeks of each product, known ahead

    def frames(self) -> dict[str, pd.DataFrame]:
        """Sheet name -> table, in load order."""
        return {
            layout.PRODUCTS.name: self.products,
            layout.STORES.name: self.stores,
            layout.CUSTOMERS.name: self.customers,
            layout.SALES.name: self.sales,
            layout.STOCK.name: self.stock,
            layout.CALENDAR.name: self.calendar,
            layout.PROMOTIONS.name: self.promotions,
        }


# ------------------------------------------------------------------------------------------------
# Generation
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    dates: np.ndarray  # datetime64[D], oldest first
    weekday: np.ndarray  # Monday = 0
    doy: np.ndarray
    holiday: np.ndarray  # bool: every store is closed


def _calendar(end: date, days: int) -> _Calendar:
    dates = np.datetime64(end, "D") - np.arange(days - 1, -1, -1)
    index = pd.DatetimeIndex(dates)
    month, dom = index.month.to_numpy(), index.day.to_numpy()
    holiday = np.zeros(days, dtype=bool)
    for m, d in HOLIDAYS:
        holiday |= (month == m) & (dom == d)
    return _Calendar(dates, index.weekday.to_numpy(), index.dayofyear.to_numpy(), holiday)


def _bump(doy: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A Gaussian bump over the day of the year, wrapping around New Year."""
    dist = np.abs(doy - centre)
    dist = np.minimum(dist, 365.25 - dist)
    return np.exp(-0.5 * (dist / width) ** 2)


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _make_products(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    pool: list[tuple[str, str, int, str]] = []  # category, base, variant index, variant
    for category, spec in _CATALOGUE.items():
        for base, variants in spec["items"]:
            for vi, variant in enumerate(variants.split("|")):
                pool.append((category, base, vi, variant))
    cat_size = {c: sum(1 for p in pool if p[0] == c) for c in _CATALOGUE}
    p = np.array([_CATEGORY_WEIGHT[c] / cat_size[c] for c, *_ in pool])
    picked = list(rng.choice(len(pool), size=min(n, len(pool)), replace=False, p=p / p.sum()))
    # Past the catalogue (scale > 9) reuse entries as regional editions rather than fail.
    entries = [(*pool[i], "") for i in picked]
    for k in range(n - len(picked)):
        if k % len(pool) == 0:
            again = rng.permutation(len(pool))
        entries.append((*pool[again[k % len(pool)]], f" edition {k // len(pool) + 2}"))
    order = sorted(range(n), key=lambda k: (list(_CATALOGUE).index(entries[k][0]), entries[k][1], entries[k][2]))
    entries = [entries[k] for k in order]

    base_price = {(c, b): rng.uniform(*_CATALOGUE[c]["price"]) for c in _CATALOGUE for b, _ in _CATALOGUE[c]["items"]}
    category = np.array([e[0] for e in entries], dtype=object)
    name = np.array([f"{b} {v}{suffix}" for _, b, _, v, suffix in entries], dtype=object)
    raw = np.array([base_price[(c, b)] * _VARIANT_PRICE_FACTOR[vi] for c, b, vi, _, _ in entries])
    price = np.maximum(np.round(raw, 1) - 0.01, 0.49).round(2)  # retail-looking x.x9 prices
    cost = (price * rng.uniform(0.35, 0.70, n)).round(2)
    cost[rng.choice(n, size=min(n, int(rng.integers(3, 7))), replace=False)] = np.nan  # unknown costs

    supplier = np.empty(n, dtype=object)
    lead = np.empty(n, dtype=np.int64)
    supplier_lead = {
        name: int(rng.integers(lo, hi + 1)) for c in _CATALOGUE for name, lo, hi in _CATALOGUE[c]["suppliers"]
    }
    for k, c in enumerate(category):
        sup_name = _CATALOGUE[c]["suppliers"][int(rng.integers(len(_CATALOGUE[c]["suppliers"])))][0]
        supplier[k] = sup_name
        lead[k] = supplier_lead[sup_name]
    lead = np.clip(lead + rng.integers(-1, 2, n), 2, 21)

    # Cheaper products tend to sell more; the noise keeps a pricey coffee or two among the top sellers.
    score = np.log(price) + rng.normal(0.0, 0.8, n)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(score, kind="stable")] = np.arange(n)
    weight = 1.0 / (rank + 1 + _ZIPF_SHIFT) ** _ZIPF_EXPONENT
    return {
        "product_id": _ids("P", n, 4),
        "sku": np.array([f"SKU-{s}" for s in rng.choice(90_000, n, replace=False) + 10_000], dtype=object),
        "name": name,
        "category": category,
        "unit_price": price,
        "unit_cost": cost,
        "lead_time_days": lead,
        "supplier": supplier,
        "weight": weight / weight.sum(),
        "rank": rank,
    }


def _make_stores(rng: np.random.Generator, n: int, start: np.datetime64) -> dict[str, np.ndarray]:
    sites: list[tuple[str, str, str, str]] = []
    for k in range(n - (1 if n > _NEW_YORK_INDEX else 0)):
        site = _FRENCH_SITES[k % len(_FRENCH_SITES)]
        round_ = k // len(_FRENCH_SITES)
        label = site[0] if round_ == 0 else f"{site[0]} {round_ + 1}"
        sites.append((label, site[1], site[2], "Europe/Paris"))
    if n > _NEW_YORK_INDEX:
        sites.insert(_NEW_YORK_INDEX, (*_NEW_YORK_SITE, "America/New_York"))
    opened = start - rng.integers(1600, 5000, n)
    size = rng.uniform(0.8, 1.2, n)
    return {
        "store_id": _ids("S", n, 2),
        "name": np.array([s[0] for s in sites], dtype=object),
        "city": np.array([s[1] for s in sites], dtype=object),
        "region": np.array([s[2] for s in sites], dtype=object),
        "timezone": np.array([s[3] for s in sites], dtype=object),
        "opened_on": opened,
        "size": size / size.mean(),  # relative traffic, mean 1 so the chain averages the base rate
    }


def _make_customers(
    rng: np.random.Generator, n: int, stores: dict[str, np.ndarray], start: np.datetime64, days: int
) -> dict[str, np.ndarray]:
    size = stores["size"]
    home = rng.choice(len(size), size=n, p=size / size.sum())
    us = stores["timezone"][home] == "America/New_York"
    segment = np.array(_SEGMENTS, dtype=object)[rng.choice(3, size=n, p=_SEGMENT_P)]
    first_fr = rng.choice(np.array(_FIRST_NAMES_FR, dtype=object), n)
    last_fr = rng.choice(np.array(_LAST_NAMES_FR, dtype=object), n)
    first_us = rng.choice(np.array(_FIRST_NAMES_US, dtype=object), n)
    last_us = rng.choice(np.array(_LAST_NAMES_US, dtype=object), n)
    suffix_fr = rng.choice(np.array(_COMPANY_SUFFIX_FR, dtype=object), n)
    suffix_us = rng.choice(np.array(_COMPANY_SUFFIX_US, dtype=object), n)
    first, last = np.where(us, first_us, first_fr), np.where(us, last_us, last_fr)
    person = first + " " + last
    company = last + " " + np.where(us, suffix_us, suffix_fr)
    name = np.where(segment == "Corporate", company, person)
    # Most customers predate the window; the rest sign up during it (and only buy afterwards).
    joined_day = np.where(rng.random(n) < 0.85, -rng.integers(1, 1500, n), rng.integers(0, max(days - 30, 1), n))
    gap = np.clip(rng.gamma(_GAP_GAMMA[0], _GAP_GAMMA[1], n), 3.0, 60.0)  # own rhythm: mean days between
    return {
        "customer_id": _ids("C", n, 5),
        "name": name,
        "segment": segment,
        "city": stores["city"][home],
        "joined_on": start + joined_day,
        "home": home,
        "joined_day": np.maximum(joined_day, 0),
        "rate": 1.0 / gap,
    }


def _promotions(rng: np.random.Generator, cal: _Calendar, n_products: int) -> tuple[np.ndarray, np.ndarray]:
    """Chain-wide promo weeks: (days, products) discount (0 when none) and demand lift."""
    days = len(cal.dates)
    discount = np.zeros((days, n_products))
    first_monday = int((7 - cal.weekday[0]) % 7)
    week_starts = np.arange(first_monday, days, 7)
    for p in range(n_products):
        n_promos = min(round(int(rng.integers(1, 5)) * days / 365.25), len(week_starts))
        for s in rng.choice(week_starts, size=n_promos, replace=False):
            discount[s : s + 7, p] = rng.choice([0.10, 0.15, 0.20, 0.25, 0.30])
    lift = np.where(discount > 0, 1.25 + 2.5 * discount, 1.0)  # 10% off -> x1.5, 30% off -> x2
    return discount, lift


def _stockout_days(rng: np.random.Generator, days: int, n_products: int, protect: int | None) -> np.ndarray:
    """(days, products) mask of random supply stock-outs: a few 1-3 day gaps per product a year."""
    out = np.zeros((days, n_products), dtype=bool)
    n = int(rng.poisson(1.5 * n_products * days / 365.25))
    product = rng.integers(0, n_products, n)
    start = rng.integers(0, max(days - 7, 1), n)  # none in the last week: keeps the final count clean
    length = rng.integers(1, 4, n)
    if protect is not None:  # the planted product needs a normal recent demand history
        keep = ~((product == protect) & (start >= days - 45))
        product, start, length = product[keep], start[keep], length[keep]
    for k in range(3):
        sel = length > k
        out[np.minimum(start[sel] + k, days - 1), product[sel]] = True
    return out


def _simulate_stock(
    units: np.ndarray,
    lead: np.ndarray,
    active_days: np.ndarray,
    snapshot_days: np.ndarray,
    planted: tuple[int, int] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Replay one store's sales against an (s, S) replenishment policy; returns on hand, on order.

    The reorder trigger covers twice the lead time plus a week, so on hand rarely falls under one lead
    time of demand: only the planted product ends short. `planted` is (product, on hand at the end).
    """
    days, n = units.shape
    mean = units.mean(axis=0)
    padded = np.vstack([np.repeat(mean[None, :], 28, axis=0), units])
    csum = np.vstack([np.zeros((1, n)), np.cumsum(padded, axis=0)])
    arrivals = np.zeros((days + 22, n))
    on_hand = np.ceil(mean * (2 * lead + 21)) + 2
    on_order = np.zeros(n)
    snap_index = {int(d): k for k, d in enumerate(snapshot_days)}
    hand_out = np.zeros((len(snapshot_days), n), dtype=np.int64)
    order_out = np.zeros((len(snapshot_days), n), dtype=np.int64)
    freeze_from = days
    if planted is not None:
        freeze_from = max(days - 15, 0)
    cols = np.arange(n)
    for d in range(days):
        on_hand += arrivals[d]
        on_order -= arrivals[d]
        on_hand = np.maximum(on_hand - units[d], 0.0)
        rate = (csum[d + 29] - csum[d + 1]) / 28.0
        # Safety of a week plus a lead time, and two Poisson standard deviations for slow sellers.
        trigger = np.ceil(rate * (2 * lead + 7) + 2 * np.sqrt(rate * lead)) + 1
        up_to = trigger + np.ceil(rate * 14) + 1
        position = on_hand + on_order
        qty = np.where((position <= trigger) & active_days[d], up_to - position, 0.0)
        if planted is not None and d >= freeze_from:
            p, final = planted
            qty[p] = 0.0
            if d == freeze_from:  # cancel what is on its way and leave just enough for `final` at the end
                arrivals[d + 1 :, p] = 0.0
                on_order[p] = 0.0
                on_hand[p] = final + units[d + 1 :, p].sum()
        arrivals[d + lead, cols] += qty
        on_order += qty
        k = snap_index.get(d)
        if k is not None:
            hand_out[k] = np.rint(on_hand).astype(np.int64)
            order_out[k] = np.rint(on_order).astype(np.int64)
    return hand_out, order_out


@dataclass(frozen=True)
class _Planted:
    """Where the anomalies go, chosen before the demand model because it has to know about them."""

    drop_store: int
    stock_store: int
    stock_product: int


class _Columns:
    """Parallel arrays, one entry per row, that are filtered together."""

    def take(self, keep: np.ndarray) -> Self:
        """The rows selected (or reordered) by `keep`; columns not filled in yet stay None."""
        columns = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{name: v[keep] for name, v in columns.items() if v is not None})


@dataclass(frozen=True)
class _Orders(_Columns):
    """One row per order (till receipt); indexes into the store, day and customer tables."""

    store: np.ndarray
    day: np.ndarray
    customer: np.ndarray  # -1: an anonymous walk-in
    minute: np.ndarray | None = None  # minutes after midnight, once the orders are given a time of day


@dataclass(frozen=True)
class _Lines(_Columns):
    """One row per order line; `order` indexes into `_Orders`."""

    order: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    line_number: np.ndarray | None = None  # 1..k within the order, once repeated products are merged
    discount: np.ndarray | None = None
    promotion: np.ndarray | None = None


def generate_retailer(scale: int = 1, seed: int = 42, days: int = 730, end: date = DEFAULT_END) -> Retailer:
    """Build a synthetic retailer with `scale` stores and `days` days of sales ending at `end` (inclusive).

    Everything comes from `numpy.random.default_rng(seed)`, so the same arguments give identical frames.
    Each step below draws from the generator in turn: their order is part of the output.
    """
    if scale < 1:
        raise ValueError(f"scale must be at least 1 (the number of stores), got {scale}")
    if days < MIN_DAYS:
        raise ValueError(f"days must be at least {MIN_DAYS} so the planted anomalies have a history")
    rng = np.random.default_rng(seed)
    cal = _calendar(end, days)
    n_stores, n_products, n_customers = scale, 40 + 20 * scale, 250 * scale

    prod = _make_products(rng, n_products)
    stores = _make_stores(rng, n_stores, cal.dates[0])
    cust = _make_customers(rng, n_customers, stores, cal.dates[0], days)
    planted = _plant_choices(rng, prod, n_stores)
    active_days = _discontinue_tail_products(rng, prod, days)
    prod["active"] = active_days[-1].copy()

    traffic = _store_traffic(rng, cal, n_stores)
    promo_discount, mix = _product_mix(rng, cal, prod, active_days)
    orders = _customer_visits(rng, cust, stores, traffic)
    orders, churned = _churn_regulars(rng, orders, n_customers, days)
    orders, basket_size = _time_orders(rng, orders)
    lines, availability = _fill_baskets(rng, orders, basket_size, mix, cust, planted, n_stores)
    lines = _one_line_per_product(rng, lines)
    lines = _apply_discounts(rng, orders, lines, promo_discount)
    orders, lines = _plant_sales_drop(rng, orders, lines, prod["unit_price"], planted.drop_store, days)

    units = _units_sold(orders, lines, n_stores, days, n_products)
    stock = _stock_counts(rng, cal, units, prod, stores["store_id"], active_days, availability, planted)
    planted_anomalies = PlantedAnomalies(
        sales_drop_store_id=str(stores["store_id"][planted.drop_store]),
        sales_drop_start=end - timedelta(days=_DROP_DAYS - 1),
        stockout_product_id=str(prod["product_id"][planted.stock_product]),
        stockout_store_id=str(stores["store_id"][planted.stock_store]),
        churned_customer_ids=tuple(str(c) for c in cust["customer_id"][churned]),
    )
    sales = _sales_frame(cal, orders, lines, prod, stores, cust)
    frames = _products_frame(prod, units), _stores_frame(stores), _customers_frame(cust)
    calendar, promotions = _calendar_frame(cal, stores["store_id"]), _promotions_frame(cal, prod, promo_discount)
    return Retailer(*frames, sales, stock, planted_anomalies, calendar, promotions)


def _plant_choices(rng: np.random.Generator, prod: dict[str, np.ndarray], n_stores: int) -> _Planted:
    """Pick the store whose sales drop, and the fast seller that runs short in another store."""
    drop_store = int(rng.integers(n_stores))
    stock_store = int((drop_store + 1 + rng.integers(n_stores - 1)) % n_stores) if n_stores > 1 else 0
    top = np.argsort(prod["rank"])[:6]  # top 6 by popularity: comfortably inside the realised top 10
    long_lead = top[prod["lead_time_days"][top] >= 7]
    stock_product = int(rng.choice(long_lead if len(long_lead) else top))
    if prod["lead_time_days"][stock_product] < 7:  # a short lead time would make the shortage harmless
        prod["lead_time_days"][stock_product] = int(rng.integers(7, 12))
    return _Planted(drop_store, stock_store, stock_product)


def _discontinue_tail_products(rng: np.random.Generator, prod: dict[str, np.ndarray], days: int) -> np.ndarray:
    """(days, products) mask of listed days: a few products from the long tail stop selling part-way through."""
    n_products = len(prod["rank"])
    n_inactive = max(2, round(0.04 * n_products))
    tail = np.flatnonzero(prod["rank"] >= n_products // 2)
    inactive = np.sort(rng.choice(tail, size=n_inactive, replace=False))
    active_days = np.ones((days, n_products), dtype=bool)
    for p in inactive:
        active_days[int(rng.integers(int(0.3 * days), int(0.85 * days))) :, p] = False
    return active_days


def _store_traffic(rng: np.random.Generator, cal: _Calendar, n_stores: int) -> np.ndarray:
    """Traffic multiplier per store and day (1 = an average weekday in mid-window)."""
    days = len(cal.dates)
    t = np.arange(days)
    yearly = 1.0 + 0.35 * _bump(cal.doy, 352, 11) - 0.22 * _bump(cal.doy, 222, 13)  # Dec peak, Aug dip
    trend = _TREND_PER_YEAR ** ((t - (days - 1) / 2) / 365.25)
    base = trend * _WEEKDAY_FACTOR[cal.weekday] * yearly * ~cal.holiday
    traffic = base[None, :] * np.exp(rng.normal(0.0, 0.07, (n_stores, days)))
    sunday_closed = 1 if n_stores > 1 else 0
    traffic[sunday_closed, cal.weekday == 6] = 0.0
    return traffic


def _product_mix(
    rng: np.random.Generator, cal: _Calendar, prod: dict[str, np.ndarray], active_days: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Promotion discounts and product mix per day, before store-level stock-outs.

    The mix is popularity x category season x promotion lift, zero once a product is discontinued.
    """
    discount, lift = _promotions(rng, cal, len(prod["rank"]))
    season = np.ones(active_days.shape)
    for c, spec in _CATALOGUE.items():
        amp, peak = spec["season"]
        if amp:
            cols = prod["category"] == c
            season[:, cols] = (1 + amp * np.cos(2 * np.pi * (cal.doy - peak) / 365.25))[:, None]
    return discount, prod["weight"][None, :] * season * lift * active_days


def _customer_visits(
    rng: np.random.Generator, cust: dict[str, np.ndarray], stores: dict[str, np.ndarray], traffic: np.ndarray
) -> _Orders:
    """Customers visit their home store at their own rhythm; anonymous walk-ins top up its traffic.

    Walk-ins bring each store to the base rate of lines a day, and are at least _ANONYMOUS_SHARE of it.
    Mean lines per order is ~2.3, a little less after merging repeated products.
    """
    n_stores, days = traffic.shape
    t = np.arange(days)
    lines_per_order = float((_ORDER_SIZE_P * np.arange(1, 6)).sum()) * 0.958
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for s in range(n_stores):
        members = np.flatnonzero(cust["home"] == s)
        joined = cust["joined_day"][members]
        rate = cust["rate"][members]
        active_frac = (days - joined) / days
        target = _BASE_LINES_PER_STORE_DAY * stores["size"][s] / lines_per_order
        anonymous = max(target - float((rate * active_frac).sum()), _ANONYMOUS_SHARE * target)
        visits = rng.poisson(rate[:, None] * traffic[s][None, :] * (t[None, :] >= joined[:, None]))
        who, when = np.nonzero(visits)
        reps = visits[who, when]
        walk_in = rng.poisson(anonymous * traffic[s])
        parts.append(
            (
                np.full(int(reps.sum() + walk_in.sum()), s),
                np.concatenate([np.repeat(when, reps), np.repeat(t, walk_in)]),
                np.concatenate([np.repeat(members[who], reps), np.full(int(walk_in.sum()), -1)]),
            )
        )
    return _Orders(*(np.concatenate([p[k] for p in parts]) for k in range(3)))


def _churn_regulars(
    rng: np.random.Generator, orders: _Orders, n_customers: int, days: int
) -> tuple[_Orders, np.ndarray]:
    """Regulars who were still buying lose interest ~90 days before the end; returns their indexes too."""
    o_cust, o_day = orders.customer, orders.day
    known = o_cust >= 0
    early = np.bincount(o_cust[known & (o_day < days - _CHURN_DAYS[1])], minlength=n_customers)
    lately = np.bincount(
        o_cust[known & (o_day >= days - _CHURN_DAYS[1] - 30) & (o_day < days - _CHURN_DAYS[1])],
        minlength=n_customers,
    )
    late = np.bincount(o_cust[known & (o_day >= days - _CHURN_DAYS[0])], minlength=n_customers)
    # Still buying right up to the cut-off, and would have gone on: the stop is the change to detect.
    candidates = np.flatnonzero((early >= 6) & (lately >= 1) & (late >= 2))
    n_churn = min(int(rng.integers(5, 11)), len(candidates))
    churned = np.sort(rng.choice(candidates, size=n_churn, replace=False))
    last_day = np.full(n_customers, days, dtype=np.int64)
    last_day[churned] = days - rng.integers(*_CHURN_DAYS, n_churn)
    return orders.take(~known | (o_day < last_day[np.maximum(o_cust, 0)])), churned


def _time_orders(rng: np.random.Generator, orders: _Orders) -> tuple[_Orders, np.ndarray]:
    """Give each order a time within opening hours and sort them chronologically; returns lines per order too."""
    n_orders = len(orders.day)
    hour = 8 + rng.choice(12, size=n_orders, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    minute = hour * 60 + rng.integers(0, 60, n_orders)
    chronological = np.lexsort((rng.random(n_orders), orders.store, minute, orders.day))
    basket_size = 1 + rng.choice(5, size=n_orders, p=_ORDER_SIZE_P)
    return replace(orders, minute=minute).take(chronological), basket_size


def _fill_baskets(
    rng: np.random.Generator,
    orders: _Orders,
    basket_size: np.ndarray,
    mix: np.ndarray,
    cust: dict[str, np.ndarray],
    planted: _Planted,
    n_stores: int,
) -> tuple[_Lines, list[np.ndarray]]:
    """Each line picks a product from its store's mix of the day, less that store's stock-outs, and a quantity.

    Products by inverse CDF, all of a store's lines at once. Returns the lines and, per store, the
    (days, products) mask of the days each product was on the shelf.
    """
    days, n_products = mix.shape
    t = np.arange(days)
    l_order = np.repeat(np.arange(len(orders.day)), basket_size)
    l_store, l_day = orders.store[l_order], orders.day[l_order]
    l_product = np.empty(len(l_order), dtype=np.int64)
    u = rng.random(len(l_order)) * (1 - 1e-9)
    availability: list[np.ndarray] = []
    for s in range(n_stores):
        gaps = _stockout_days(rng, days, n_products, planted.stock_product if s == planted.stock_store else None)
        availability.append(~gaps)
        cdf = np.cumsum(mix * ~gaps, axis=1)
        cdf = cdf / cdf[:, -1:] + t[:, None]  # row d spans [d, d + 1]
        sel = np.flatnonzero(l_store == s)
        found = np.searchsorted(cdf.ravel(), l_day[sel] + u[sel], side="right")
        l_product[sel] = np.minimum(found - l_day[sel] * n_products, n_products - 1)
    corporate = np.zeros(len(l_order), dtype=bool)
    l_cust = orders.customer[l_order]
    corporate[l_cust >= 0] = cust["segment"][l_cust[l_cust >= 0]] == "Corporate"
    l_qty = 1 + rng.choice(len(_QUANTITY_P), size=len(l_order), p=_QUANTITY_P)
    l_qty += np.where(corporate, rng.poisson(1.0, len(l_order)), 0)  # offices buy for the team
    return _Lines(l_order, l_product, l_qty), availability


def _one_line_per_product(rng: np.random.Generator, lines: _Lines) -> _Lines:
    """The same product twice in one order becomes one line with the summed quantity.

    The lines are then shuffled within each order and numbered 1..k.
    """
    lines = lines.take(np.lexsort((lines.product, lines.order)))
    first = np.ones(len(lines.order), dtype=bool)
    first[1:] = (lines.order[1:] != lines.order[:-1]) | (lines.product[1:] != lines.product[:-1])
    starts = np.flatnonzero(first)
    merged = _Lines(lines.order[starts], lines.product[starts], np.add.reduceat(lines.quantity, starts))
    merged = merged.take(np.lexsort((rng.random(len(merged.order)), merged.order)))
    new_order = np.ones(len(merged.order), dtype=bool)
    new_order[1:] = merged.order[1:] != merged.order[:-1]
    order_start = np.flatnonzero(new_order)
    n_lines = len(merged.order)
    line_number = np.arange(n_lines) - np.repeat(order_start, np.diff(np.append(order_start, n_lines)))
    return replace(merged, line_number=line_number + 1)


def _apply_discounts(rng: np.random.Generator, orders: _Orders, lines: _Lines, promo_discount: np.ndarray) -> _Lines:
    """The day's promotion discount, else now and then a 5% loyalty discount for a known customer."""
    l_discount = promo_discount[orders.day[lines.order], lines.product]
    promotion = l_discount > 0
    loyalty = (orders.customer[lines.order] >= 0) & ~promotion & (rng.random(len(lines.order)) < 0.03)
    return replace(lines, discount=np.where(loyalty, 0.05, l_discount), promotion=promotion)


def _plant_sales_drop(
    rng: np.random.Generator, orders: _Orders, lines: _Lines, unit_price: np.ndarray, drop_store: int, days: int
) -> tuple[_Orders, _Lines]:
    """Lose whole orders, picked at random, from the drop store's last 10 days.

    Orders go until that revenue is _DROP_RATIO of the 28 days before. Thinning to a revenue target
    (rather than scaling the traffic) makes the size of the drop exact instead of at the mercy of ~10%
    Poisson noise.
    """
    revenue = np.bincount(lines.order, weights=lines.quantity * unit_price[lines.product] * (1 - lines.discount))
    in_store = orders.store == drop_store
    tail_days = orders.day >= days - _DROP_DAYS
    before = in_store & ~tail_days & (orders.day >= days - _DROP_DAYS - 28)
    n_before = min(28, days - _DROP_DAYS)
    budget = _DROP_RATIO * revenue[before].sum() / n_before * _DROP_DAYS
    candidates = rng.permutation(np.flatnonzero(in_store & tail_days))
    keep_order = np.ones(len(orders.day), dtype=bool)
    keep_order[candidates[np.cumsum(revenue[candidates]) > budget]] = False
    renumber = np.cumsum(keep_order) - 1
    kept = lines.take(keep_order[lines.order])
    return orders.take(keep_order), replace(kept, order=renumber[kept.order])


def _units_sold(orders: _Orders, lines: _Lines, n_stores: int, days: int, n_products: int) -> np.ndarray:
    """Units sold per (store, day, product)."""
    cell = (orders.store[lines.order] * days + orders.day[lines.order]) * n_products + lines.product
    return np.bincount(cell, weights=lines.quantity, minlength=n_stores * days * n_products).reshape(
        n_stores, days, n_products
    )


def _stock_counts(
    rng: np.random.Generator,
    cal: _Calendar,
    units: np.ndarray,
    prod: dict[str, np.ndarray],
    store_ids: np.ndarray,
    active_days: np.ndarray,
    availability: list[np.ndarray],
    planted: _Planted,
) -> pd.DataFrame:
    """Weekly stock counts from the first day, plus the last day, replayed from the sales.

    The planted product ends its store with 2-3 days of its recent demand on hand and nothing on order.
    """
    n_stores, days, n_products = units.shape
    snapshot_days = np.unique(np.append(np.arange(0, days, 7), days - 1))
    recent = units[planted.stock_store, -28:, planted.stock_product].mean()
    final_on_hand = max(1, round(float(rng.uniform(2.0, 3.0)) * recent))
    parts = []
    for s in range(n_stores):
        short = (planted.stock_product, final_on_hand) if s == planted.stock_store else None
        hand, on_order = _simulate_stock(units[s], prod["lead_time_days"], active_days, snapshot_days, short)
        gone = ~active_days[snapshot_days]  # delisted products are cleared from the shelves
        hand[gone | ~availability[s][snapshot_days]] = 0  # a count on a stock-out day finds nothing
        on_order[gone] = 0
        parts.append(
            pd.DataFrame(
                {
                    "product_id": np.tile(prod["product_id"], len(snapshot_days)),
                    "store_id": store_ids[s],
                    "as_of": np.repeat(cal.dates[snapshot_days], n_products).astype("datetime64[us]"),
                    "on_hand": hand.ravel(),
                    "on_order": on_order.ravel(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).sort_values(
        ["as_of", "store_id", "product_id"], ignore_index=True, kind="stable"
    )


def _sales_frame(
    cal: _Calendar,
    orders: _Orders,
    lines: _Lines,
    prod: dict[str, np.ndarray],
    stores: dict[str, np.ndarray],
    cust: dict[str, np.ndarray],
) -> pd.DataFrame:
    """The Sales table: one row per order line."""
    order_ids = _ids("O-", len(orders.day), 7)
    customer_ids = np.append(cust["customer_id"], None)  # index -1 -> anonymous
    l_store, l_day, l_cust = orders.store[lines.order], orders.day[lines.order], orders.customer[lines.order]
    sold_at = (cal.dates[l_day].astype("datetime64[m]") + orders.minute[lines.order]).astype("datetime64[us]")
    unit_price = prod["unit_price"][lines.product]
    return pd.DataFrame(
        {
            "order_id": order_ids[lines.order],
            "line_number": lines.line_number.astype(np.int64),
            "sold_at": sold_at,
            "store_id": stores["store_id"][l_store],
            "customer_id": customer_ids[l_cust],
            "product_id": prod["product_id"][lines.product],
            "quantity": lines.quantity.astype(np.int64),
            "unit_price": unit_price,
            "discount": lines.discount,
            "promotion": lines.promotion,
            "revenue": line_revenue(lines.quantity, unit_price, lines.discount),
            "unit_cost": None,  # blank: the lines cost what their product costs (Products sheet)
        }
    )


def line_revenue(quantity: np.ndarray, unit_price: np.ndarray, discount: np.ndarray) -> np.ndarray:
    """A line's net amount: half a cent rounds up, as the till does (the epsilon undoes binary float error)."""
    return np.floor(quantity * unit_price * (1 - discount) * 100 + 0.5 + 1e-9) / 100


def _products_frame(prod: dict[str, np.ndarray], units: np.ndarray) -> pd.DataFrame:
    """The Products table; the reorder point is a lead time plus three days of an average store's demand."""
    n_stores, days, _ = units.shape
    daily = units.sum(axis=(0, 1)) / (n_stores * days)
    return pd.DataFrame(
        {
            "product_id": prod["product_id"],
            "sku": prod["sku"],
            "name": prod["name"],
            "category": prod["category"],
            "unit_price": prod["unit_price"],
            "unit_cost": prod["unit_cost"],
            "reorder_point": np.ceil(daily * (prod["lead_time_days"] + 3)).astype(np.int64),
            "lead_time_days": prod["lead_time_days"].astype(np.int64),
            "supplier": prod["supplier"],
            "active": prod["active"],
        }
    )


def _stores_frame(stores: dict[str, np.ndarray]) -> pd.DataFrame:
    columns = ("store_id", "name", "city", "region", "timezone")
    frame = {**{c: stores[c] for c in columns}, "opened_on": stores["opened_on"].astype("datetime64[us]")}
    return pd.DataFrame({**frame, "kind": "store"})  # shops: a day without a sale may be a closure


def _calendar_frame(cal: _Calendar, store_ids: np.ndarray) -> pd.DataFrame:
    """What the retailer knows of its closures: the chain's holidays, and the second store's Sundays."""
    holidays = pd.DatetimeIndex(cal.dates[cal.holiday]).astype("datetime64[us]")
    rows = [{"store_id": None, "day": day, "weekday": None, "open": False, "note": "holiday"} for day in holidays]
    if len(store_ids) > 1:  # _store_traffic shuts the second store on Sundays
        rows.append({"store_id": str(store_ids[1]), "day": pd.NaT, "weekday": "Sunday", "open": False, "note": None})
    columns = [column.name for column in layout.CALENDAR.columns]
    return pd.DataFrame(rows, columns=columns).astype({"day": "datetime64[us]"})


def _promotions_frame(cal: _Calendar, prod: dict[str, np.ndarray], discount: np.ndarray) -> pd.DataFrame:
    """Each product's promotion weeks as the retailer plans them: every store, first to last day, the discount."""
    rows = []
    for p in range(discount.shape[1]):
        on = np.concatenate([[0.0], discount[:, p], [0.0]])
        starts, ends = np.flatnonzero((on[1:] > 0) & (on[:-1] == 0)), np.flatnonzero((on[:-1] > 0) & (on[1:] == 0))
        for first, last in zip(starts, ends - 1, strict=True):
            rows.append({
                "product_id": str(prod["product_id"][p]), "category": None, "store_id": None,
                "starts_on": cal.dates[first], "ends_on": cal.dates[last], "name": f"{discount[first, p]:.0%} off",
            })  # fmt: skip
    columns = [column.name for column in layout.PROMOTIONS.columns]
    frame = pd.DataFrame(rows, columns=columns).sort_values(["starts_on", "product_id"], ignore_index=True)
    return frame.astype({"starts_on": "datetime64[us]", "ends_on": "datetime64[us]"})


def _customers_frame(cust: dict[str, np.ndarray]) -> pd.DataFrame:
    columns = ("customer_id", "name", "segment", "city")
    return pd.DataFrame({**{c: cust[c] for c in columns}, "joined_on": cust["joined_on"].astype("datetime64[us]")})


# ------------------------------------------------------------------------------------------------
# Workbooks
# ------------------------------------------------------------------------------------------------

_EXCEL_EPOCH = np.datetime64("1899-12-30T00:00:00", "us")
_NUMBER_FORMATS = {
    "whole": "0",
    "decimal": "#,##0.00",
    "rate": "0%",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
}
_MIN_WIDTH = {"text": 10, "whole": 8, "decimal": 11, "rate": 9, "date": 12, "datetime": 17, "flag": 8}


def _excel_serials(values: pd.Series) -> list[float | None]:
    """Dates and datetimes -> Excel serial day numbers (naive local time), None for missing."""
    stamps = pd.to_datetime(values)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_localize(None)
    micros = (stamps.to_numpy(dtype="datetime64[us]") - _EXCEL_EPOCH).astype(np.int64)
    serial = micros / 86_400_000_000
    out = serial.astype(object)
    out[stamps.isna().to_numpy()] = None
    return out.tolist()


def _numbers(values: pd.Series) -> list[float | int | None]:
    if values.dtype.kind in "iu" and not values.hasnans:
        return values.to_numpy(dtype=np.int64).tolist()
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    out = arr.astype(object)
    out[np.isnan(arr)] = None
    return out.tolist()


def _cell_values(column: layout.Column, values: pd.Series) -> tuple[list[Any], bool]:
    """One column as Python cell values; the flag says they are all of the column's kind.

    Typed columns (numbers, datetimes, booleans) convert in one go. Anything else, e.g. a benchmark
    writing deliberately messy cells, is passed on as-is and written cell by cell by its type.
    """
    kind, dtype = column.kind, values.dtype
    if kind in ("date", "datetime") and pd.api.types.is_datetime64_any_dtype(dtype):
        return _excel_serials(values), True
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind in ("whole", "decimal", "rate") and numeric:
        return _numbers(values), True
    if kind == "flag" and pd.api.types.is_bool_dtype(dtype) and not values.hasnans:
        return np.where(values.to_numpy(dtype=bool), "yes", "no").tolist(), True
    if kind == "text" and pd.api.types.is_string_dtype(dtype):  # str, or object holding text
        cells = values.astype(object).where(values.notna(), None).tolist()
        if all(c is None or isinstance(c, str) for c in cells):
            return [c if c else None for c in cells], True
        return cells, False
    return values.astype(object).where(values.notna(), None).tolist(), False


def _write_any(ws: Any, row: int, col: int, value: Any, kind: str, formats: dict[str, Any]) -> None:
    """Write one cell of unknown Python type as what it is (used for untyped columns only)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return
    if isinstance(value, (bool, np.bool_)):
        ws.write_string(row, col, "yes" if value else "no")
    elif isinstance(value, (int, float, np.integer, np.floating)):
        ws.write_number(row, col, float(value), formats.get(kind))
    elif isinstance(value, (datetime, date, pd.Timestamp, np.datetime64)):
        serial = _excel_serials(pd.Series([value]))[0]
        fmt = formats["date"] if kind == "date" else formats["datetime"]
        ws.write_number(row, col, serial, fmt)
    elif str(value) != "":
        ws.write_string(row, col, str(value))


def _width(column: layout.Column, values: pd.Series) -> float:
    width = max(len(column.header) + 3, _MIN_WIDTH[column.kind])
    if column.kind == "text" and len(values):
        longest = values.dropna().astype(str).str.len().max()
        if longest == longest:  # not NaN (all blank)
            width = max(width, int(longest) + 2)
    return min(width, 50)


def _write_sheet(workbook: Any, sheet: layout.Sheet, frame: pd.DataFrame, formats: dict[str, Any]) -> None:
    ws = workbook.add_worksheet(sheet.name)
    ncols = len(sheet.columns)
    plan = []
    for c, column in enumerate(sheet.columns):
        values = frame[column.name]
        ws.set_column(c, c, _width(column, values))
        cells, typed = _cell_values(column, values)
        plan.append((c, column.kind, cells, typed))
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(len(frame), 1), ncols - 1)
    for c, column in enumerate(sheet.columns):
        ws.write_string(0, c, column.header, formats["header"])

    # Rows must go in order (constant_memory streams them), so write row by row. xlsxwriter's undecorated
    # writers skip the A1-notation check on every cell, a good part of the time on big sheets.
    write_string = getattr(ws, "_write_string", ws.write_string)
    write_number = getattr(ws, "_write_number", ws.write_number)
    methods: list[Any] = []
    cell_formats: list[Any] = []
    for _c, kind, _cells, typed in plan:
        if not typed:
            methods.append(lambda r, c, v, k, ws=ws: _write_any(ws, r, c, v, k, formats))
            cell_formats.append(kind)
        elif kind in ("text", "flag"):
            methods.append(write_string)
            cell_formats.append(None)
        else:
            methods.append(write_number)
            cell_formats.append(formats[kind])
    for r, row in enumerate(zip(*(p[2] for p in plan), strict=True), start=1):
        for c, value in enumerate(row):
            if value is not None:
                methods[c](r, c, value, cell_formats[c])


def write_sheets_workbook(path: Path, sheets: dict[str, pd.DataFrame]) -> Path:
    """Write template sheets (sheet name -> frame with the canonical columns) to one workbook.

    Headers, sheet names and column order come from `layout`; sheets are written in layout order.
    The same frames always give the same bytes.
    """
    path = Path(path)
    by_name = {s.name: s for s in layout.SHEETS}
    unknown = sorted(set(sheets) - set(by_name))
    if unknown:
        raise ValueError(f"unknown sheet(s) {unknown}; the template has {list(by_name)}")
    todo: list[tuple[layout.Sheet, pd.DataFrame]] = []
    for sheet in layout.SHEETS:
        if sheet.name not in sheets:
            continue
        frame = sheets[sheet.name]
        expected = [c.name for c in sheet.columns]
        missing = [c for c in expected if c not in frame.columns]
        extra = [c for c in frame.columns if c not in expected]
        if missing or extra:
            raise ValueError(f"sheet {sheet.name}: missing columns {missing}, unexpected columns {extra}")
        if len(frame) + 1 > EXCEL_MAX_ROWS:
            raise ValueError(
                f"sheet {sheet.name} has {len(frame):,} rows but an Excel sheet holds at most "
                f"{EXCEL_MAX_ROWS - 1:,} below its header; split it across workbooks (e.g. split='monthly')"
            )
        todo.append((sheet, frame))
    if not todo:
        raise ValueError("no sheets to write")

    path.parent.mkdir(parents=True, exist_ok=True)
    big = sum(len(f) for _, f in todo) > _CONSTANT_MEMORY_ROWS
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": big})
    try:
        workbook.set_properties({"created": _WORKBOOK_CREATED, "title": path.stem})
        formats: dict[str, Any] = {
            kind: workbook.add_format({"num_format": fmt}) for kind, fmt in _NUMBER_FORMATS.items()
        }
        formats["header"] = workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "bottom": 1, "text_wrap": False})
        for sheet, frame in todo:
            _write_sheet(workbook, sheet, frame, formats)
    finally:
        workbook.close()
    return path


def write_workbooks(retailer: Retailer, out_dir: Path, split: Literal["single", "monthly"] = "monthly") -> list[Path]:
    """Write the retailer as import workbooks in `out_dir`; returns the paths in a stable order.

    single:  retailer.xlsx with all five sheets.
    monthly: master_data.xlsx (Products, Stores, Customers), sales_YYYY-MM.xlsx per calendar month,
             stock.xlsx with every snapshot.
    """
    out_dir = Path(out_dir)
    if split == "single":
        return [write_sheets_workbook(out_dir / "retailer.xlsx", retailer.frames())]
    if split != "monthly":
        raise ValueError(f"split must be 'single' or 'monthly', got {split!r}")
    paths = [
        write_sheets_workbook(
            out_dir / "master_data.xlsx",
            {
                layout.PRODUCTS.name: retailer.products,
                layout.STORES.name: retailer.stores,
                layout.CUSTOMERS.name: retailer.customers,
                layout.CALENDAR.name: retailer.calendar,
                layout.PROMOTIONS.name: retailer.promotions,
            },
        )
    ]
    sold_at = retailer.sales["sold_at"]
    month_key = (sold_at.dt.year * 100 + sold_at.dt.month).to_numpy()
    for key in np.unique(month_key):
        part = retailer.sales[month_key == key].reset_index(drop=True)
        name = f"sales_{key // 100:04d}-{key % 100:02d}.xlsx"
        paths.append(write_sheets_workbook(out_dir / name, {layout.SALES.name: part}))
    paths.append(write_sheets_workbook(out_dir / "stock.xlsx", {layout.STOCK.name: retailer.stock}))
    return paths
