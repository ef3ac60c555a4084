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
from functools import cache

from babel import Locale
from babel.dates import format_date, format_datetime, format_skeleton
from babel.numbers import format_compact_currency, format_currency, format_decimal

LOCALES = ("en", "fr")

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "days": "{days} days",
        # the daily report (sales_pipeline/reporting/)
        "report_title": "Daily sales report",
        "report_subject": "{title}: {scope}, {day}",
        "report_email_intro": "The daily report of {scope} for {day} is attached. The day's figures:",
        "scope_all": "Whole chain",
        "scope_store": "Store {name}",
        "scope_category": "Category {name}",
        "page_of": "Page {page} of {pages}",
        "built_at": "Built {when}",
        "kpi_revenue": "Revenue",
        "kpi_orders": "Orders",
        "kpi_units": "Units sold",
        "kpi_average_order_value": "Average order value",
        "kpi_gross_margin": "Gross margin",
        "period_day": "The day",
        "period_week": "Week to date",
        "period_month": "Month to date",
        "cover_note": "Changes: the day against the same weekday a week before; the week (from Monday) and the"
        " month to date against the same days of the week and month before. Gross margin covers the sales"
        " whose cost is known.",
        "not_comparable": "n/a",
        "section_cover": "Headline figures",
        "section_revenue": "Revenue, last 90 days and the next 7",
        "section_breakdown": "Revenue by category and by store, last 7 days against the 7 before",
        "section_breakdown_category": "Revenue by category, last 7 days against the 7 before",
        "section_breakdown_store": "Revenue by store, last 7 days against the 7 before",
        "section_products": "Top 5 products and biggest fallers",
        "section_stock": "Stock at risk",
        "section_alerts": "Anomalies and churn",
        "section_accuracy": "Forecast accuracy",
        "chart_actual": "Revenue",
        "chart_forecast": "Forecast",
        "chart_band_80": "80% interval",
        "chart_band_95": "95% interval",
        "chart_this_week": "Last 7 days",
        "chart_week_before": "7 days before",
        "chart_churn_rate": "Churn rate of repeat customers (whole chain)",
        "col_category": "Category",
        "col_store": "Store",
        "col_product": "Product",
        "col_rank": "Rank",
        "col_rank_change": "Rank change",
        "col_revenue": "Revenue",
        "col_previous": "7 days before",
        "col_units": "Units",
        "col_change": "Change",
        "col_on_hand": "On hand",
        "col_days_left": "Days until out",
        "col_lead_time": "Lead time (days)",
        "col_suggested_order": "Suggested order",
        "col_severity": "Severity",
        "col_alert": "Alert",
        "col_since": "Since",
        "col_status": "Status",
        "col_scope": "Scope",
        "col_mase": "MASE",
        "col_smape": "sMAPE",
        "col_bias": "Bias",
        "rank_new": "new",
        "unnamed_category": "(no category)",
        "fallers_title": "Biggest fallers",
        "no_sales_day": "No sales were recorded on {day}: the day's figures are zero.",
        "no_sales_fortnight": "No sales in the 14 days up to {day}: there is nothing to rank or compare.",
        "short_history": "{scope} has {days} days of sales history up to {day}; the revenue chart and its"
        " forecast need at least {needed}.",
        "no_forecast": "No forecast has been published for {scope} yet: the chart shows the sales alone.",
        "no_fallers": "No product sold less than in the 7 days before.",
        "no_stock_counts": "{scope} has no stock counts: stock at risk can only be judged once a count is imported.",
        "no_stock_risk": "No product is at risk of running out before its supplier can deliver (latest count {day}).",
        "stock_note": "Latest count {day}. Days until out from the demand forecast; the suggested order covers"
        " the lead time and {review} more days of forecast demand, less what is on hand and on order.",
        "no_alerts": "No open alert.",
        "more_alerts": "… and {count} more open alerts (all of them are in the Dagster UI).",
        "no_churn": "The churn rate has not been computed yet.",
        "churn_rate_on": "Churn rate of repeat customers (whole chain) on {day}: {rate}.",
        "no_accuracy": "No forecast was made a week before {day}: nothing to compare with what happened yet.",
        "accuracy_note": "Forecasts made on {origin} for the days up to {day}, against the revenue that"
        " followed. A MASE under 1 beats repeating the same weekday of the week before; a positive bias means"
        " the forecast was too high.",
        "chart_accuracy": "{scope}: forecast against actual",
        "day": "{days} day",
        # Alerts (sales_pipeline/alerts/render.py)
        "severity.critical": "Critical",
        "severity.warning": "Warning",
        "severity.info": "Info",
        "status.open": "open",
        "status.acknowledged": "acknowledged",
        "status.snoozed": "snoozed",
        "status.resolved": "resolved",
        "alert.scope.total": "Chain revenue",
        "alert.scope.store": "Revenue of store {name}",
        "alert.scope.category": "Revenue of category {name}",
        "alert.scope.product": "Revenue of product {name}",
        "alert.title.sales_drop": "{scope}: sales drop",
        "alert.title.stock_risk": "{product} at {store}: stock-out risk",
        "alert.title.customer_churn": "Customer {customer} stopped buying",
        "alert.text.sales_drop.one_day": (
            "{scope} was below its forecast on {day}: {actual} against {expected} expected ({change}),"
            " under the lower bound of {bound}."
        ),
        "alert.text.sales_drop.days": (
            "{scope} has been below its forecast for {days} days in a row, {first} to {last}: {actual} against"
            " {expected} expected ({change}), {shortfall} short."
        ),
        "alert.text.sales_drop.most_days": (
            "{scope} has been below its forecast on {below} of the last {days} open days, {first} to {last}:"
            " {actual} against {expected} expected ({change}), {shortfall} short."
        ),
        "alert.text.sales_drop.silence": (
            "{scope} has sold on {selling} of the last {days} open days, {first} to {last}; over the year before it"
            " sold on {sold_before} of {open_before} open days, so a run that quiet has a {chance} chance."
        ),
        "alert.text.stock_risk.runs_out": "{product} at {store} will run out in about {days}: {projected} units"
        " projected on hand, {daily}.",
        "alert.text.stock_risk.out": "{product} at {store} is out of stock (none counted on {counted_on}), {daily}.",
        "alert.text.stock_risk.probably_out": "{product} at {store} has probably run out: {on_hand} counted on"
        " {counted_on}, {sold} sold since, {daily}.",
        "alert.text.stock_risk.daily": "about {units} sold a day",
        "alert.text.stock_risk.daily_revenue": "about {units} sold a day ({revenue} of sales)",
        "alert.text.stock_risk.lead_known": "The supplier needs {lead}.",
        "alert.text.stock_risk.lead_unknown": "The supplier's lead time is unknown ({lead} assumed).",
        "alert.text.stock_risk.on_order": "{units} units are already on order.",
        "alert.text.stock_risk.reorder": "Reorder now.",
        "alert.text.customer_churn": (
            "Customer {customer} has not bought for {days_silent} days; they bought {purchases} times, a median of"
            " {gap} days apart. A silence that long has a {chance} chance if they were still a customer."
        ),
        "fact.days_below": "Days below forecast",
        "fact.actual": "Actual",
        "fact.expected": "Expected",
        "fact.shortfall": "Shortfall",
        "fact.runs_out_in": "Runs out in",
        "fact.projected_on_hand": "Projected on hand",
        "fact.daily_demand": "Sold a day",
        "fact.lead_time": "Supplier lead time",
        "fact.on_order": "On order",
        "fact.days_silent": "Days without buying",
        "fact.usual_gap": "Usual gap between purchases",
        "fact.chance": "Chance if still a customer",
        "email.subject.first.one": "Critical: {title}",
        "email.subject.first.many": "{count} critical alerts: {title} and more",
        "email.subject.reminder.one": "Still open: {title}",
        "email.subject.reminder.many": "Still open: {count} critical alerts, {title} and more",
        "email.subject.resolved.one": "Resolved: {title}",
        "email.subject.resolved.many": "Resolved: {count} alerts, {title} and more",
        "email.subject.digest.one": "Alerts digest of {date}: 1 warning",
        "email.subject.digest.many": "Alerts digest of {date}: {count} warnings",
        "email.intro.first": "New critical alerts for you:",
        "email.intro.reminder": "These critical alerts are still open (a reminder every {hours} hours until"
        " someone acknowledges them):",
        "email.intro.resolved": "These alerts are resolved: the detection no longer finds them.",
        "email.intro.digest": "Warnings open on {date}:",
        "email.digest.new": "New since the last digest",
        "email.digest.still_open": "Still open",
        "email.inhibited": "Part of the same drop, the same day: {names}.",
        "email.open_in_dagster": "Open in Dagster",
        "email.alert_since": "Alert {id}, open since {since}.",
        "email.how_to_ack": "To stop its reminders: sales-pipeline alerts ack {id}",
        "email.more": "And {count} more: sales-pipeline alerts list",
        "chart.revenue": "Revenue a day",
        "chart.units": "Units sold a day",
        "chart.actual": "actual",
        "chart.forecast": "forecast",
        "chart.band": "95% band",
        "run_failure.subject": "Run failed: {job}, step {step}",
        "run_failure.intro": "The run of {job} failed and will not be retried.",
        "run_failure.step": "Failed step: {step}",
        "run_failure.error": "Error:",
        "run_failure.open": "Open the run in Dagster",
        "late_asset.subject": "Late: {asset}",
        "late_asset.intro": "{asset} was not rebuilt in time: its freshness policy says it is late since {since}.",
        "late_asset.updated": "Last rebuilt: {when}",
        "late_asset.never": "never",
        "late_asset.open": "Open the asset in Dagster",
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
        "report_title": "Rapport quotidien des ventes",
        "report_subject": "{title} : {scope}, {day}",
        "report_email_intro": "Ci-joint le rapport quotidien ({scope}) du {day}. Les chiffres du jour :",
        "scope_all": "Toute l’enseigne",
        "scope_store": "Magasin {name}",
        "scope_category": "Catégorie {name}",
        "page_of": "Page {page} sur {pages}",
        "built_at": "Généré le {when}",
        "kpi_revenue": "Chiffre d’affaires",
        "kpi_orders": "Commandes",
        "kpi_units": "Unités vendues",
        "kpi_average_order_value": "Panier moyen",
        "kpi_gross_margin": "Marge brute",
        "period_day": "Le jour",
        "period_week": "Semaine en cours",
        "period_month": "Mois en cours",
        "cover_note": "Évolutions : le jour contre le même jour de la semaine précédente ; la semaine (depuis"
        " lundi) et le mois en cours contre les mêmes jours de la semaine et du mois précédents. La marge brute"
        " porte sur les ventes dont le coût est connu.",
        "not_comparable": "n.d.",
        "section_cover": "Chiffres clés",
        "section_revenue": "Chiffre d’affaires : les 90 derniers jours et les 7 prochains",
        "section_breakdown": "Chiffre d’affaires par catégorie et par magasin, 7 derniers jours contre les 7"
        " précédents",
        "section_breakdown_category": "Chiffre d’affaires par catégorie, 7 derniers jours contre les 7 précédents",
        "section_breakdown_store": "Chiffre d’affaires par magasin, 7 derniers jours contre les 7 précédents",
        "section_products": "Top 5 des produits et plus fortes baisses",
        "section_stock": "Stock à risque",
        "section_alerts": "Anomalies et attrition",
        "section_accuracy": "Précision des prévisions",
        "chart_actual": "Chiffre d’affaires",
        "chart_forecast": "Prévision",
        "chart_band_80": "Intervalle à 80 %",
        "chart_band_95": "Intervalle à 95 %",
        "chart_this_week": "7 derniers jours",
        "chart_week_before": "7 jours précédents",
        "chart_churn_rate": "Taux d’attrition des clients réguliers (toute l’enseigne)",
        "col_category": "Catégorie",
        "col_store": "Magasin",
        "col_product": "Produit",
        "col_rank": "Rang",
        "col_rank_change": "Évolution du rang",
        "col_revenue": "Chiffre d’affaires",
        "col_previous": "7 jours précédents",
        "col_units": "Unités",
        "col_change": "Évolution",
        "col_on_hand": "En stock",
        "col_days_left": "Jours avant rupture",
        "col_lead_time": "Délai fournisseur (jours)",
        "col_suggested_order": "Commande suggérée",
        "col_severity": "Gravité",
        "col_alert": "Alerte",
        "col_since": "Depuis",
        "col_status": "État",
        "col_scope": "Périmètre",
        "col_mase": "MASE",
        "col_smape": "sMAPE",
        "col_bias": "Biais",
        "rank_new": "nouveau",
        "unnamed_category": "(sans catégorie)",
        "fallers_title": "Plus fortes baisses",
        "no_sales_day": "Aucune vente n’a été enregistrée le {day} : les chiffres du jour sont nuls.",
        "no_sales_fortnight": "Aucune vente dans les 14 jours jusqu’au {day} : rien à classer ni à comparer.",
        "short_history": "{scope} a {days} jours d’historique de ventes jusqu’au {day} ; le graphique du chiffre"
        " d’affaires et sa prévision en demandent au moins {needed}.",
        "no_forecast": "Aucune prévision n’a encore été publiée pour {scope} : le graphique montre les ventes seules.",
        "no_fallers": "Aucun produit ne s’est moins vendu que les 7 jours précédents.",
        "no_stock_counts": "{scope} n’a aucun inventaire : le stock à risque ne peut être évalué qu’une fois un"
        " comptage importé.",
        "no_stock_risk": "Aucun produit ne risque la rupture avant que son fournisseur puisse livrer (dernier"
        " inventaire le {day}).",
        "stock_note": "Dernier inventaire le {day}. Jours avant rupture selon la prévision de la demande ; la"
        " commande suggérée couvre le délai fournisseur et {review} jours de demande prévue de plus, moins le"
        " stock et les commandes en cours.",
        "no_alerts": "Aucune alerte ouverte.",
        "more_alerts": "… et {count} autres alertes ouvertes (toutes sont dans l’interface Dagster).",
        "no_churn": "Le taux d’attrition n’a pas encore été calculé.",
        "churn_rate_on": "Taux d’attrition des clients réguliers (toute l’enseigne) le {day} : {rate}.",
        "no_accuracy": "Aucune prévision n’a été faite une semaine avant le {day} : rien à comparer encore.",
        "accuracy_note": "Prévisions faites le {origin} pour les jours jusqu’au {day}, comparées au chiffre"
        " d’affaires réalisé. Un MASE inférieur à 1 fait mieux que de reprendre le même jour de la semaine"
        " précédente ; un biais positif signifie une prévision trop haute.",
        "chart_accuracy": "{scope} : prévision et réalisé",
        "day": "{days} jour",
        # Alertes (sales_pipeline/alerts/render.py)
        "severity.critical": "Critique",
        "severity.warning": "Avertissement",
        "severity.info": "Info",
        "status.open": "ouverte",
        "status.acknowledged": "prise en charge",
        "status.snoozed": "en pause",
        "status.resolved": "résolue",
        "alert.scope.total": "Chiffre d'affaires de l'enseigne",
        "alert.scope.store": "Chiffre d'affaires du magasin {name}",
        "alert.scope.category": "Chiffre d'affaires de la catégorie {name}",
        "alert.scope.product": "Chiffre d'affaires du produit {name}",
        "alert.title.sales_drop": "{scope} : baisse des ventes",
        "alert.title.stock_risk": "{product} à {store} : risque de rupture",
        "alert.title.customer_churn": "Le client {customer} n'achète plus",
        "alert.text.sales_drop.one_day": (
            "{scope} était sous sa prévision le {day} : {actual} contre {expected} attendus ({change}),"
            " sous la borne basse de {bound}."
        ),
        "alert.text.sales_drop.days": (
            "{scope} est sous sa prévision depuis {days} jours d'affilée, du {first} au {last} : {actual} contre"
            " {expected} attendus ({change}), soit {shortfall} de manque."
        ),
        "alert.text.sales_drop.most_days": (
            "{scope} a été sous sa prévision {below} des {days} derniers jours d'ouverture, du {first} au {last} :"
            " {actual} contre {expected} attendus ({change}), soit {shortfall} de manque."
        ),
        "alert.text.sales_drop.silence": (
            "{scope} s'est vendu {selling} des {days} derniers jours d'ouverture, du {first} au {last} ; l'année"
            " d'avant, {sold_before} jours sur {open_before} : un tel calme a {chance} de chances."
        ),
        "alert.text.stock_risk.runs_out": "{product} à {store} sera en rupture dans environ {days} : {projected}"
        " unités en stock projetées, {daily}.",
        "alert.text.stock_risk.out": "{product} à {store} est en rupture (aucune unité comptée le {counted_on}),"
        " {daily}.",
        "alert.text.stock_risk.probably_out": "{product} à {store} est probablement en rupture : {on_hand} comptées"
        " le {counted_on}, {sold} vendues depuis, {daily}.",
        "alert.text.stock_risk.daily": "environ {units} vendues par jour",
        "alert.text.stock_risk.daily_revenue": "environ {units} vendues par jour ({revenue} de ventes)",
        "alert.text.stock_risk.lead_known": "Le fournisseur a besoin de {lead}.",
        "alert.text.stock_risk.lead_unknown": "Le délai du fournisseur est inconnu ({lead} supposés).",
        "alert.text.stock_risk.on_order": "{units} unités sont déjà en commande.",
        "alert.text.stock_risk.reorder": "Commandez maintenant.",
        "alert.text.customer_churn": (
            "Le client {customer} n'a rien acheté depuis {days_silent} jours ; il a acheté {purchases} fois, à"
            " {gap} jours d'intervalle en médiane. Un silence aussi long a {chance} de chances s'il était encore"
            " client."
        ),
        "fact.days_below": "Jours sous la prévision",
        "fact.actual": "Réalisé",
        "fact.expected": "Attendu",
        "fact.shortfall": "Manque",
        "fact.runs_out_in": "Rupture dans",
        "fact.projected_on_hand": "Stock projeté",
        "fact.daily_demand": "Vendues par jour",
        "fact.lead_time": "Délai fournisseur",
        "fact.on_order": "En commande",
        "fact.days_silent": "Jours sans achat",
        "fact.usual_gap": "Intervalle habituel entre achats",
        "fact.chance": "Probabilité s'il était encore client",
        "email.subject.first.one": "Critique : {title}",
        "email.subject.first.many": "{count} alertes critiques : {title} et d'autres",
        "email.subject.reminder.one": "Toujours ouverte : {title}",
        "email.subject.reminder.many": "Toujours ouvertes : {count} alertes critiques, {title} et d'autres",
        "email.subject.resolved.one": "Résolue : {title}",
        "email.subject.resolved.many": "Résolues : {count} alertes, {title} et d'autres",
        "email.subject.digest.one": "Résumé des alertes du {date} : 1 avertissement",
        "email.subject.digest.many": "Résumé des alertes du {date} : {count} avertissements",
        "email.intro.first": "Nouvelles alertes critiques pour vous :",
        "email.intro.reminder": "Ces alertes critiques sont toujours ouvertes (un rappel toutes les {hours} heures"
        " jusqu'à leur prise en charge) :",
        "email.intro.resolved": "Ces alertes sont résolues : la détection ne les trouve plus.",
        "email.intro.digest": "Avertissements ouverts le {date} :",
        "email.digest.new": "Nouveaux depuis le dernier résumé",
        "email.digest.still_open": "Toujours ouverts",
        "email.inhibited": "Dans la même baisse, le même jour : {names}.",
        "email.open_in_dagster": "Ouvrir dans Dagster",
        "email.alert_since": "Alerte {id}, ouverte depuis le {since}.",
        "email.how_to_ack": "Pour arrêter ses rappels : sales-pipeline alerts ack {id}",
        "email.more": "Et {count} autres : sales-pipeline alerts list",
        "chart.revenue": "Chiffre d'affaires par jour",
        "chart.units": "Unités vendues par jour",
        "chart.actual": "réel",
        "chart.forecast": "prévision",
        "chart.band": "intervalle à 95 %",
        "run_failure.subject": "Échec d'exécution : {job}, étape {step}",
        "run_failure.intro": "L'exécution de {job} a échoué et ne sera pas relancée.",
        "run_failure.step": "Étape en échec : {step}",
        "run_failure.error": "Erreur :",
        "run_failure.open": "Ouvrir l'exécution dans Dagster",
        "late_asset.subject": "En retard : {asset}",
        "late_asset.intro": "{asset} n'a pas été reconstruit à temps : sa politique de fraîcheur le dit en retard "
        "depuis le {since}.",
        "late_asset.updated": "Dernière construction : {when}",
        "late_asset.never": "jamais",
        "late_asset.open": "Ouvrir l'actif dans Dagster",
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
        "page.live": "En direct",
        "page.reconnecting": "Reconnexion…",
        "page.login.title": "Connexion",
        "page.login.token": "Jeton d'accès à l'API",
        "page.login.submit": "Se connecter",
        "page.login.refused": "Ce jeton n'a pas été accepté.",
        "page.error": "Le serveur n'a pas répondu : {reason}",
    },
}


@cache
def _babel(locale: str) -> Locale:
    """Babel's Locale, parsed once: Babel parses a locale given by name on every call (most of its cost)."""
    return Locale.parse(locale)


@dataclass(frozen=True)
class Formatter:
    """Formats for one locale and currency: `Formatter("fr", "EUR").money(1234.56)` is '1 234,56 €'."""

    locale: str = "en"
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.locale not in LOCALES:
            raise ValueError(f"locale {self.locale!r} is not one of {', '.join(LOCALES)}")

    def texts(self, *prefixes: str) -> dict[str, str]:
        """Every sentence whose key starts with one of `prefixes`, unfilled (for a page that fills them itself)."""
        return {key: text for key, text in CATALOGUE[self.locale].items() if key.startswith(prefixes)}

    def text(self, key: str, **values: object) -> str:
        """The catalogue's sentence `key` in this locale, with its fields filled in (already formatted)."""
        return CATALOGUE[self.locale][key].format(**values)

    def days(self, value: float, digits: int = 1) -> str:
        """A duration in days in words, singular or plural as the locale says: '2,5 jours', '1 day'."""
        plural = _babel(self.locale).plural_form(abs(round(value, digits)))
        return self.text("day" if plural == "one" else "days", days=self.number(value, digits))

    def money(self, amount: float | Decimal) -> str:
        return format_currency(amount, self.currency, locale=_babel(self.locale))

    def number(self, value: float | Decimal, digits: int = 0) -> str:
        """A number with the locale's separators and `digits` decimals (at most)."""
        pattern = "#,##0" + ("." + "#" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=_babel(self.locale))

    def percent(self, ratio: float, digits: int = 1) -> str:
        """0.123 is '12.3%' in en, '12,3 %' in fr (the locale's own pattern, `digits` decimals)."""
        pattern = copy.copy(_babel(self.locale).percent_formats[None])  # Babel's own is shared
        pattern.frac_prec = (digits, digits)
        return pattern.apply(ratio, _babel(self.locale))

    def money_compact(self, amount: float | Decimal) -> str:
        """A short amount for chart axes: '€12.5K' in en, '12,5 k €' in fr."""
        return format_compact_currency(amount, self.currency, locale=self.locale, fraction_digits=1)

    def change(self, ratio: float | None) -> str:
        """A change as a signed percent ('+12.3%', '-4,0 %'), or the locale's 'n/a' when there is none."""
        if ratio is None:
            return self.text("not_comparable")
        return ("+" if ratio > 0 else "") + self.percent(ratio)

    def date(self, day: dt.date, style: str = "full") -> str:
        """'jeudi 5 mars 2026' / 'Thursday, March 5, 2026' (style full); medium, short as Babel has them."""
        return format_date(day, style, locale=_babel(self.locale))

    def day_month(self, day: dt.date) -> str:
        """A short date for chart axes: '5 Mar' / '5 mars' (the locale's own skeleton)."""
        return format_skeleton("dMMM", day, locale=self.locale)

    def datetime(self, instant: dt.datetime, style: str = "medium") -> str:
        return format_datetime(instant, style, locale=_babel(self.locale))
