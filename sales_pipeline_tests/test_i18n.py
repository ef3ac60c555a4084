"""Numbers, money and dates read the way each locale writes them."""

from __future__ import annotations

import datetime as dt

import pytest

from sales_pipeline.i18n import CATALOGUE, Formatter


def test_french_and_english_formats() -> None:
    fr, en = Formatter("fr", "EUR"), Formatter("en", "EUR")
    assert fr.money(1234.56) == "1\u202f234,56\xa0€"
    assert en.money(1234.56) == "€1,234.56"
    assert fr.text("days", days=fr.number(2.5, 1)) == "2,5 jours"
    assert fr.date(dt.date(2026, 3, 5)) == "jeudi 5 mars 2026"
    assert en.date(dt.date(2026, 3, 5)) == "Thursday, March 5, 2026"
    assert (en.percent(0.123), fr.percent(0.123)) == ("12.3%", "12,3\xa0%")


def test_every_key_in_every_locale() -> None:
    keys = {locale: set(texts) for locale, texts in CATALOGUE.items()}
    assert all(found == keys["en"] for found in keys.values())


def test_unknown_locale_named() -> None:
    with pytest.raises(ValueError, match="'de' is not one of en, fr"):
        Formatter("de")
