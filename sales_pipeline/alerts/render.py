"""Alerts in words: one alert as a title, a sentence with its numbers and a few facts (`AlertView`), and a
planned message as an email (subject, plain text, HTML) and a chat card, in REPORT_LOCALE.

Every sentence comes from the catalogue (sales_pipeline/i18n.py), every number, amount and date from
Babel through `Formatter`. Every value that came from input (a product's or customer's name) is escaped
in the HTML (`html.escape`); the subject is folded into one line when the email is composed.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sales_pipeline.i18n import Formatter

MAX_TOLD = 50  # alerts told in full in one message; the others are counted
ASSET_PATHS = {"sales_drop": "anomalies/sales_drops", "stock_risk": "anomalies/stock_risks",
               "customer_churn": "anomalies/customer_churn"}  # fmt: skip


@dataclass(frozen=True)
class AlertView:
    alert_id: int
    severity: str
    title: str
    text: str
    facts: tuple[tuple[str, str], ...]
    link: str
    since: str


@dataclass(frozen=True)
class Rendered:
    subject: str
    body_text: str
    body_html: str
    content: dict


def view(alert: Mapping, fmt: Formatter, webserver_url: str, timezone: str = "UTC") -> AlertView:
    """An ops.alerts row (as a mapping) in words; times in `timezone`."""
    kind = alert["kind"]
    describe = {"sales_drop": _drop, "stock_risk": _stock, "customer_churn": _churn}.get(kind)
    numbers, context = alert["numbers"] or {}, alert["context"] or {}
    title, text, facts = describe(alert, numbers, context, fmt) if describe else (kind, alert["message"], ())
    path = ASSET_PATHS.get(kind, "")
    return AlertView(
        alert_id=int(alert["alert_id"]),
        severity=alert["severity"],
        title=title,
        text=text,
        facts=tuple(facts),
        link=f"{webserver_url}/assets/{path}" if path else webserver_url,
        since=fmt.datetime(alert["first_seen_at"].astimezone(ZoneInfo(timezone)), "short"),
    )


def _named(identifier: str, name: str | None) -> str:
    """`S02 (Lyon Part-Dieu)`; a name's line breaks are spaces (it is a name, whatever it holds)."""
    name = " ".join(name.split()) if name else ""
    return f"{identifier} ({name})" if name and name != identifier else identifier


def _day(fmt: Formatter, value: str) -> str:
    return fmt.date(dt.date.fromisoformat(value), "medium")


def _drop(alert: Mapping, n: dict, context: dict, fmt: Formatter) -> tuple[str, str, list]:
    entity_type, entity_id = alert["entity_type"], alert["entity_id"]
    name = context.get("store_name") if entity_type == "store" else context.get("product_name")
    if entity_type in ("store", "category", "product"):
        scope = fmt.text(f"alert.scope.{entity_type}", name=_named(entity_id, name) or "-")
    else:
        scope = fmt.text("alert.scope.total")
    change = fmt.percent(-n["shortfall_pct"] / 100, 0) if n.get("shortfall_pct") is not None else "-"
    values = {"scope": scope, "actual": fmt.money(n["actual"]), "expected": fmt.money(n["expected"]), "change": change}
    span = {"days": fmt.number(n["days"]), "first": _day(fmt, n["first_day"]), "last": _day(fmt, n["last_day"])}
    if "p_silence" in n:  # an intermittent product: judged by its selling days, not its revenue
        text = fmt.text(
            "alert.text.sales_drop.silence", scope=scope, selling=fmt.number(n["selling_days"]),
            sold_before=fmt.number(n["history_selling_days"]), open_before=fmt.number(n["history_open_days"]),
            chance=_chance(fmt, n["p_silence"]), **span,
        )  # fmt: skip
    elif n["days"] == 1:
        text = fmt.text(
            "alert.text.sales_drop.one_day", day=_day(fmt, n["last_day"]), bound=fmt.money(n["lower_bound"]), **values
        )
    else:
        below = n.get("days_below", n["days"])  # one good day may sit inside a run (drops.py)
        key = "alert.text.sales_drop.days" if below == n["days"] else "alert.text.sales_drop.most_days"
        text = fmt.text(key, below=fmt.number(below), shortfall=fmt.money(n["shortfall"]), **span, **values)
    facts = [
        (fmt.text("fact.days_below"), fmt.number(n.get("days_below", n["days"]))),
        (fmt.text("fact.actual"), values["actual"]),
        (fmt.text("fact.expected"), values["expected"]),
        (fmt.text("fact.shortfall"), f"{fmt.money(n['shortfall'])} ({change})"),
    ]
    return fmt.text("alert.title.sales_drop", scope=scope), text, facts


def _stock(alert: Mapping, n: dict, context: dict, fmt: Formatter) -> tuple[str, str, list]:
    product_id, _, store_id = alert["entity_id"].rpartition("@")
    product = _named(product_id, context.get("product_name"))
    store = _named(store_id, context.get("store_name"))
    units = fmt.number(n["daily_demand"], 1)
    price = context.get("unit_price")
    daily = (
        fmt.text("alert.text.stock_risk.daily_revenue", units=units, revenue=fmt.money(n["daily_demand"] * price))
        if price
        else fmt.text("alert.text.stock_risk.daily", units=units)
    )
    where = {"product": product, "store": store, "daily": daily}
    if n["on_hand"] <= 0:
        main = fmt.text("alert.text.stock_risk.out", counted_on=_day(fmt, n["counted_on"]), **where)
    elif n["projected_on_hand"] <= 0:
        main = fmt.text(
            "alert.text.stock_risk.probably_out",
            on_hand=fmt.number(n["on_hand"]),
            counted_on=_day(fmt, n["counted_on"]),
            sold=fmt.number(n["sold_since_count"]),
            **where,
        )
    else:
        main = fmt.text(
            "alert.text.stock_risk.runs_out",
            days=fmt.days(n["days_until_stockout"]),
            projected=fmt.number(n["projected_on_hand"]),
            **where,
        )
    lead = fmt.days(n["lead_time_days"], 0)
    supplier = fmt.text(f"alert.text.stock_risk.lead_{'known' if n.get('lead_time_known') else 'unknown'}", lead=lead)
    action = (
        fmt.text("alert.text.stock_risk.on_order", units=fmt.number(n["on_order"]))
        if n.get("on_order", 0) > 0
        else fmt.text("alert.text.stock_risk.reorder")
    )
    facts = [
        (fmt.text("fact.runs_out_in"), fmt.days(n["days_until_stockout"])),
        (fmt.text("fact.projected_on_hand"), fmt.number(n["projected_on_hand"])),
        (fmt.text("fact.daily_demand"), units),
        (fmt.text("fact.lead_time"), lead),
        (fmt.text("fact.on_order"), fmt.number(n.get("on_order", 0))),
    ]
    return fmt.text("alert.title.stock_risk", product=product, store=store), f"{main} {supplier} {action}", facts


def _chance(fmt: Formatter, p: float) -> str:
    """A probability with two significant digits: 0.35%, 0.020%, 0.0041%."""
    p = float(p)
    digits = max(0, 1 - math.floor(math.log10(p * 100))) if p > 0 else 0
    return fmt.percent(p, digits)


def _churn(alert: Mapping, n: dict, context: dict, fmt: Formatter) -> tuple[str, str, list]:
    customer = _named(alert["entity_id"], context.get("customer_name"))
    chance = _chance(fmt, n["p_silence"])
    gap_days = n.get("median_gap_days", n["mean_gap_days"])  # alerts raised before the median was kept: the mean
    gap = fmt.number(gap_days)
    text = fmt.text(
        "alert.text.customer_churn",
        customer=customer,
        days_silent=fmt.number(n["days_silent"]),
        gap=gap,
        purchases=fmt.number(n["purchases"]),
        chance=chance,
    )
    facts = [
        (fmt.text("fact.days_silent"), fmt.number(n["days_silent"])),
        (fmt.text("fact.usual_gap"), fmt.days(gap_days, 0)),
        (fmt.text("fact.chance"), chance),
    ]
    return fmt.text("alert.title.customer_churn", customer=customer), text, facts


def alert_record(alert: Mapping, fmt: Formatter, webserver_url: str, timezone: str = "UTC") -> dict:
    """An alert as the CLI's JSON and the dashboard record show it."""
    described = view(alert, fmt, webserver_url, timezone)
    return {
        "id": described.alert_id,
        "kind": alert["kind"],
        "severity": alert["severity"],
        "status": alert["status"],
        "message": described.text,
        "since": alert["first_seen_at"].isoformat(),
    }


# --- messages ---------------------------------------------------------------------------------------


def _subject(kind: str, views: list[AlertView], fmt: Formatter, day: dt.date, count: int) -> str:
    if kind == "digest":
        return fmt.text(f"email.subject.digest.{'one' if count == 1 else 'many'}", date=fmt.date(day, "medium"),
                        count=fmt.number(count))  # fmt: skip
    size = "one" if count == 1 else "many"
    return fmt.text(f"email.subject.{kind}.{size}", title=views[0].title, count=fmt.number(count))


def alerts_message(
    kind: str,
    views: list[AlertView],
    fmt: Formatter,
    day: dt.date,
    inhibited: list[AlertView] = (),
    earlier: list[AlertView] = (),
    repeat_hours: float = 24,
    chart_cid: str | None = None,
    untold: int = 0,
) -> Rendered:
    """The email and chat card of a planned message: `views` told in full (the first with the chart), and
    `untold` more counted; `inhibited` named under the chain's drop; `earlier` (digests) listed as still open."""
    intro = {
        "first": fmt.text("email.intro.first"),
        "reminder": fmt.text("email.intro.reminder", hours=fmt.number(repeat_hours)),
        "resolved": fmt.text("email.intro.resolved"),
        "digest": fmt.text("email.intro.digest", date=fmt.date(day, "medium")),
    }[kind]
    told = views[:MAX_TOLD]
    more = len(views) - len(told) + untold
    acknowledge = kind in ("first", "reminder")
    text = [intro, ""]
    parts = [f"<p>{html.escape(intro)}</p>"]
    if kind == "digest" and earlier:
        text.append(fmt.text("email.digest.new"))
        parts.append(f"<h3>{html.escape(fmt.text('email.digest.new'))}</h3>")
    for position, alert in enumerate(told):
        text += _alert_text(alert, fmt, acknowledge)
        parts.append(_alert_html(alert, fmt, acknowledge, chart_cid if position == 0 else None))
        if position == 0 and inhibited:
            names = fmt.text("email.inhibited", names="; ".join(v.title for v in inhibited))
            text += [names, ""]
            parts.append(f"<p><em>{html.escape(names)}</em></p>")
    if more:
        text.append(fmt.text("email.more", count=fmt.number(more)))
        parts.append(f"<p>{html.escape(fmt.text('email.more', count=fmt.number(more)))}</p>")
    if earlier:
        heading = fmt.text("email.digest.still_open")
        text += ["", heading] + [f"- {v.title} ({fmt.text('severity.' + v.severity)})" for v in earlier[:MAX_TOLD]]
        items = "".join(f"<li>{html.escape(v.title)}</li>" for v in earlier[:MAX_TOLD])
        parts.append(f"<h3>{html.escape(heading)}</h3><ul>{items}</ul>")
    subject = _subject(kind, views, fmt, day, len(views) + untold)
    body_html = _html_page(subject, "".join(parts))
    content = {
        "title": subject,
        "severity": views[0].severity if kind != "resolved" else "info",
        "items": [{"title": v.title, "text": v.text, "facts": list(v.facts), "link": v.link} for v in told],
        "link_label": fmt.text("email.open_in_dagster"),
    }
    return Rendered(subject, "\n".join(text).rstrip() + "\n", body_html, content)


def _alert_text(alert: AlertView, fmt: Formatter, acknowledge: bool) -> list[str]:
    lines = [f"[{fmt.text('severity.' + alert.severity)}] {alert.title}", alert.text]
    lines += [f"  {label}: {value}" for label, value in alert.facts]
    lines.append(f"{fmt.text('email.open_in_dagster')}: {alert.link}")
    lines.append(fmt.text("email.alert_since", id=alert.alert_id, since=alert.since))
    if acknowledge:
        lines.append(fmt.text("email.how_to_ack", id=alert.alert_id))
    return [*lines, ""]


def _alert_html(alert: AlertView, fmt: Formatter, acknowledge: bool, chart_cid: str | None) -> str:
    e = html.escape
    colour = {"critical": "#b42318", "warning": "#b54708"}.get(alert.severity, "#475467")
    facts = "".join(
        f'<tr><td style="padding:2px 12px 2px 0;color:#475467">{e(label)}</td><td><b>{e(value)}</b></td></tr>'
        for label, value in alert.facts
    )
    chart = f'<p><img src="cid:{e(chart_cid)}" alt="{e(alert.title)}" width="560"></p>' if chart_cid else ""
    ack = f"<br><code>{e(fmt.text('email.how_to_ack', id=alert.alert_id))}</code>" if acknowledge else ""
    since = e(fmt.text("email.alert_since", id=alert.alert_id, since=alert.since))
    return (
        f'<div style="margin:0 0 20px 0;padding-left:10px;border-left:4px solid {colour}">'
        f'<p style="margin:0"><span style="color:{colour}">{e(fmt.text("severity." + alert.severity))}</span>'
        f" &middot; <b>{e(alert.title)}</b></p>"
        f"<p>{e(alert.text)}</p><table>{facts}</table>{chart}"
        f'<p><a href="{e(alert.link)}">{e(fmt.text("email.open_in_dagster"))}</a></p>'
        f'<p style="color:#667085;font-size:12px">{since}{ack}</p></div>'
    )


def _html_page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f'<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#101828">{body}</body></html>'
    )


def late_asset_message(asset: str, since: str, updated: str | None, link: str, fmt: Formatter) -> Rendered:
    """The engineers' email and card about an asset its freshness policy says is late."""
    subject = fmt.text("late_asset.subject", asset=asset)
    intro = fmt.text("late_asset.intro", asset=asset, since=since)
    updated_line = fmt.text("late_asset.updated", when=updated or fmt.text("late_asset.never"))
    open_asset = fmt.text("late_asset.open")
    text = f"{intro}\n{updated_line}\n\n{open_asset}: {link}\n"
    e = html.escape
    body = f'<p>{e(intro)}</p><p>{e(updated_line)}</p><p><a href="{e(link)}">{e(open_asset)}</a></p>'
    return _engineers_message(subject, text, body, "warning", (intro, updated_line), link, open_asset)


def run_failure_message(job: str, step: str, error_lines: list[str], run_link: str, fmt: Formatter) -> Rendered:
    """The engineers' email and card about a run that failed and will not be retried."""
    subject = fmt.text("run_failure.subject", job=job, step=step)
    intro, step_line = fmt.text("run_failure.intro", job=job), fmt.text("run_failure.step", step=step)
    open_run = fmt.text("run_failure.open")
    error = "\n".join(error_lines)
    text = f"{intro}\n{step_line}\n\n{fmt.text('run_failure.error')}\n{error}\n\n{open_run}: {run_link}\n"
    e = html.escape
    body = (
        f"<p>{e(intro)}</p><p><b>{e(step_line)}</b></p><p>{e(fmt.text('run_failure.error'))}</p>"
        f'<pre style="background:#f2f4f7;padding:8px">{e(error)}</pre><p><a href="{e(run_link)}">{e(open_run)}</a></p>'
    )
    return _engineers_message(subject, text, body, "critical", (step_line, error), run_link, open_run)


def _engineers_message(
    subject: str, text: str, body: str, severity: str, item: tuple[str, str], link: str, link_label: str
) -> Rendered:
    """An engineers' message: its email as text and HTML, and its chat card of one item (title, text)."""
    content = {
        "title": subject,
        "severity": severity,
        "items": [{"title": item[0], "text": item[1], "facts": [], "link": link}],
        "link_label": link_label,
    }
    return Rendered(subject, text, _html_page(subject, body), content)
