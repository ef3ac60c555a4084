"""The words and numbers people read, in their language: one catalogue for emails, webhooks, reports
and the dashboard page.

Every sentence a person reads is a key in `CATALOGUE` with one text per locale (str.format fields
for the values), and every number, amount and date goes through a `Formatter` (Babel), never through
string concatenation or hand-written formats. Add a key to every locale at once.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

LOCALES = ("en", "fr")

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "days": "{days} days",
    },
    "fr": {
        "days": "{days} jours",
    },
}


@dataclass(frozen=True)
class Formatter:
    """Formats for one locale and currency: `Formatter("fr", "EUR").money(1234.56)` is '1 234,56 €'."""

    locale: str = "en"
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.locale not in LOCALES:
            raise ValueError(f"locale {self.locale!r} is not one of {', '.join(LOCALES)}")

    def text(self, key: str, **values: object) -> str:
        """The catalogue's sentence `key` in this locale, with its fields filled in (already formatted)."""
        return CATALOGUE[self.locale][key].format(**values)

    def money(self, amount: float | Decimal) -> str:
        return format_currency(amount, self.currency, locale=self.locale)

    def number(self, value: float | Decimal, digits: int = 0) -> str:
        """A number with the locale's separators and `digits` decimals (at most)."""
        pattern = "#,##0" + ("." + "#" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def percent(self, ratio: float, digits: int = 1) -> str:
        """0.123 is '12.3%' in en, '12,3 %' in fr (the locale's own pattern, `digits` decimals)."""
        pattern = copy.copy(Locale.parse(self.locale).percent_formats[None])  # Babel's own is shared
        pattern.frac_prec = (digits, digits)
        return pattern.apply(ratio, self.locale)

    def date(self, day: dt.date, style: str = "full") -> str:
        """'jeudi 5 mars 2026' / 'Thursday, March 5, 2026' (style full); medium, short as Babel has them."""
        return format_date(day, style, locale=self.locale)

    def datetime(self, instant: dt.datetime, style: str = "medium") -> str:
        return format_datetime(instant, style, locale=self.locale)
