"""Chat push: an outbox row as a Slack incoming-webhook message (Block Kit, with a `text` fallback) or a
Microsoft Teams Workflows message (an Adaptive Card attachment), posted to ALERT_WEBHOOK_URL.

The URL is a secret (Slack's and Teams' URLs carry their token or signature): it is never logged, stored
or put in an error; an error names the webhook and the HTTP status or the kind of network failure.

A row's `content` (built by render.py) is neutral: ``{"title", "severity", "items": [{"title", "text",
"facts": [[label, value], ...], "link"}], "link", "link_label", "footer"}``; each format lays it out.
"""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime

import requests

from sales_pipeline.alerts.mail import DeliveryError
from sales_pipeline.alerts.outbox import Outgoing

MAX_ITEMS = 10  # Slack allows 50 blocks a message; a chat message is read at a glance
SLACK_TEXT_LIMIT = 2900  # a section's text may hold 3,000 characters
TEAMS_HOSTS = ("logic.azure.com", "powerautomate", "webhook.office.com", "environment.api.powerplatform.com")
SEVERITY_COLOUR = {"critical": "Attention", "warning": "Warning", "info": "Default"}


def webhook_format(url: str, configured: str | None) -> str:
    """ALERT_WEBHOOK_FORMAT when set; otherwise teams for a Teams Workflows URL, slack for any other."""
    if configured:
        return configured
    return "teams" if any(host in url for host in TEAMS_HOSTS) else "slack"


def _slack_escape(text: str) -> str:
    """Slack mrkdwn's three control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(outgoing: Outgoing) -> dict:
    content = outgoing.content
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": content["title"][:150]}}]
    for item in content.get("items", [])[:MAX_ITEMS]:
        text = f"*{_slack_escape(item['title'])}*\n{_slack_escape(item['text'])}"
        section: dict = {"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_TEXT_LIMIT]}}
        facts = item.get("facts") or []
        if facts:
            section["fields"] = [
                {"type": "mrkdwn", "text": f"*{_slack_escape(label)}*\n{_slack_escape(value)}"}
                for label, value in facts[:10]
            ]
        blocks.append(section)
        if item.get("link"):
            button = {"type": "button", "text": {"type": "plain_text", "text": content.get("link_label", "Open")}}
            blocks.append({"type": "actions", "elements": [{**button, "url": item["link"]}]})
    if content.get("footer"):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(content["footer"])}]})
    return {"text": outgoing.body_text[:SLACK_TEXT_LIMIT], "blocks": blocks}


def teams_payload(outgoing: Outgoing) -> dict:
    content = outgoing.content
    colour = SEVERITY_COLOUR.get(content.get("severity", ""), "Default")
    body: list[dict] = [
        {
            "type": "TextBlock",
            "text": content["title"],
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": colour,
        }
    ]
    actions = []
    for item in content.get("items", [])[:MAX_ITEMS]:
        body.append({"type": "TextBlock", "text": item["title"], "weight": "Bolder", "wrap": True, "spacing": "Medium"})
        body.append({"type": "TextBlock", "text": item["text"], "wrap": True})
        if item.get("facts"):
            body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in item["facts"]]})
        if item.get("link") and not actions:
            actions.append({"type": "Action.OpenUrl", "title": content.get("link_label", "Open"), "url": item["link"]})
    if content.get("footer"):
        body.append({"type": "TextBlock", "text": content["footer"], "isSubtle": True, "wrap": True, "size": "Small"})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": actions,
    }
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
    return {"type": "message", "attachments": [attachment]}


class WebhookSender:
    """Posts outbox rows to the webhook; 2xx is accepted, 429 and 5xx are tried again later (Retry-After
    honoured), any other status is a refusal for good."""

    def __init__(self, url: str, format: str, timeout_s: float = 15.0) -> None:
        self._url = url
        self.format = format
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.close()

    def __repr__(self) -> str:  # never the URL
        return f"WebhookSender(format={self.format!r})"

    def send(self, outgoing: Outgoing) -> str:
        payload = teams_payload(outgoing) if self.format == "teams" else slack_payload(outgoing)
        try:
            response = self._session.post(self._url, json=payload, timeout=self.timeout_s, allow_redirects=False)
        except requests.RequestException as error:
            # The exception's text holds the URL: only its kind is told.
            raise DeliveryError(f"{self.format} webhook unreachable: {type(error).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            return f"HTTP {status} {response.text[:100]}".strip()
        retry = status == 429 or status >= 500
        raise DeliveryError(
            f"{self.format} webhook answered HTTP {status}" + ("" if retry else f": {response.text[:200]}"),
            permanent=not retry,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, or as an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max((parsedate_to_datetime(value) - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None
