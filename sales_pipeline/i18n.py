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
        # The dashboard page (sales_pipeline/api/static): the page fills in the {fields} itself.
        "page.title": "Sales dashboard",
        "page.store": "Store",
        "page.all_stores": "All stores",
        "page.data_to": "Data up to {day}",
        "page.refreshed": "refreshed {when}",
        "page.no_data": "No dashboard yet: the pipeline has not built it (run `sales-pipeline demo` or `refresh`).",
        "page.last_day": "Last day",
        "page.last_7_days": "Last 7 days",
        "page.vs_last_week_day": "vs the same day a week before",
        "page.vs_week_before": "vs the 7 days before",
        "page.kpi.revenue": "Revenue",
        "page.kpi.orders": "Orders",
        "page.kpi.units": "Units",
        "page.kpi.average_order_value": "Average order",
        "page.kpi.gross_margin_rate": "Gross margin",
        "page.kpi.customers": "Customers",
        "page.chart.title": "Revenue, last 90 days, and the 7-day forecast",
        "page.chart.actual": "Revenue",
        "page.chart.forecast": "Forecast",
        "page.chart.band_80": "80% interval",
        "page.chart.band_95": "95% interval",
        "page.chart.no_forecast": "No forecast for this scope yet.",
        "page.top.title": "Top 5 products, last 7 days",
        "page.top.product": "Product",
        "page.top.revenue": "Revenue",
        "page.top.units": "Units",
        "page.top.share": "Share",
        "page.top.change": "Rank change",
        "page.top.new": "new",
        "page.top.none": "No sales in the last 7 days.",
        "page.stock.title": "Stock at risk",
        "page.stock.product": "Product",
        "page.stock.store": "Store",
        "page.stock.on_hand": "On hand",
        "page.stock.cover": "Days of cover",
        "page.stock.out_of_stock": "Out of stock",
        "page.stock.below_reorder_point": "At reorder point",
        "page.stock.none": "Every product is above its reorder point.",
        "page.alerts.title": "Open alerts",
        "page.alerts.none": "No open alert.",
        "page.alerts.ack": "Acknowledge",
        "page.alerts.acked": "Acknowledged by {by}",
        "page.alerts.new": "New critical alert",
        "page.alerts.resolved": "Resolved",
        "page.severity.critical": "Critical",
        "page.severity.warning": "Warning",
        "page.severity.info": "Info",
        "page.live": "Live",
        "page.reconnecting": "Reconnecting…",
        "page.login.title": "Sign in",
        "page.login.token": "API token",
        "page.login.submit": "Sign in",
        "page.login.refused": "This token was not accepted.",
        "page.error": "The server did not answer: {reason}",
    },
    "fr": {
        "days": "{days} jours",
        # La page du tableau de bord (sales_pipeline/api/static)
        "page.title": "Tableau de bord des ventes",
        "page.store": "Magasin",
        "page.all_stores": "Tous les magasins",
        "page.data_to": "Données jusqu'au {day}",
        "page.refreshed": "mises à jour {when}",
        "page.no_data": "Pas encore de tableau de bord : le pipeline ne l'a pas construit"
        " (lancez `sales-pipeline demo` ou `refresh`).",
        "page.last_day": "Dernier jour",
        "page.last_7_days": "7 derniers jours",
        "page.vs_last_week_day": "par rapport au même jour la semaine précédente",
        "page.vs_week_before": "par rapport aux 7 jours précédents",
        "page.kpi.revenue": "Chiffre d'affaires",
        "page.kpi.orders": "Commandes",
        "page.kpi.units": "Unités",
        "page.kpi.average_order_value": "Panier moyen",
        "page.kpi.gross_margin_rate": "Marge brute",
        "page.kpi.customers": "Clients",
        "page.chart.title": "Chiffre d'affaires des 90 derniers jours et prévision à 7 jours",
        "page.chart.actual": "Chiffre d'affaires",
        "page.chart.forecast": "Prévision",
        "page.chart.band_80": "Intervalle à 80 %",
        "page.chart.band_95": "Intervalle à 95 %",
        "page.chart.no_forecast": "Pas encore de prévision pour ce périmètre.",
        "page.top.title": "Top 5 des produits, 7 derniers jours",
        "page.top.product": "Produit",
        "page.top.revenue": "Chiffre d'affaires",
        "page.top.units": "Unités",
        "page.top.share": "Part",
        "page.top.change": "Évolution du rang",
        "page.top.new": "nouveau",
        "page.top.none": "Aucune vente ces 7 derniers jours.",
        "page.stock.title": "Stock à risque",
        "page.stock.product": "Produit",
        "page.stock.store": "Magasin",
        "page.stock.on_hand": "En stock",
        "page.stock.cover": "Jours de couverture",
        "page.stock.out_of_stock": "Rupture",
        "page.stock.below_reorder_point": "Au seuil de commande",
        "page.stock.none": "Tous les produits sont au-dessus de leur seuil de commande.",
        "page.alerts.title": "Alertes ouvertes",
        "page.alerts.none": "Aucune alerte ouverte.",
        "page.alerts.ack": "Prendre en charge",
        "page.alerts.acked": "Prise en charge par {by}",
        "page.alerts.new": "Nouvelle alerte critique",
        "page.alerts.resolved": "Résolue",
        "page.severity.critical": "Critique",
        "page.severity.warning": "Avertissement",
        "page.severity.info": "Info",
        "page.live": "En direct",
        "page.reconnecting": "Reconnexion…",
        "page.login.title": "Connexion",
        "page.login.token": "Jeton d'accès à l'API",
        "page.login.submit": "Se connecter",
        "page.login.refused": "Ce jeton n'a pas été accepté.",
        "page.error": "Le serveur n'a pas répondu : {reason}",
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

    def texts(self, prefix: str) -> dict[str, str]:
        """Every sentence whose key starts with `prefix`, unfilled (for a page that fills them itself)."""
        return {key: text for key, text in CATALOGUE[self.locale].items() if key.startswith(prefix)}

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
