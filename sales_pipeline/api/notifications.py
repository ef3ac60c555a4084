"""Alerts for the API: their records, and WS /ws/notifications, which pushes each alert opened, escalated
or resolved (critical ones; `?severity=warning` adds warnings) to every connected browser.

The source of truth is ops.alert_events (one row per event, written by a trigger with the change in
ops.alerts). Each API process reads it from one place, `AlertFeed`: woken by the listener's NOTIFY, it
reads the events after the last one it broadcast and hands each, serialised once, to every subscribed
socket's queue. A socket opened with `?after=ID` first gets the events after ID from the table, then
the live ones, none twice; a client that reconnects that way misses nothing. A heartbeat message goes
out when nothing else has for `heartbeat_s`, so proxies keep idle sockets open.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from sales_pipeline.alerts.render import view
from sales_pipeline.api import dto, queries
from sales_pipeline.api.pool import WarehousePool
from sales_pipeline.api.security import websocket_caller
from sales_pipeline.i18n import Formatter

log = logging.getLogger("sales_pipeline.api")
# Sent by the trigger that writes ops.alert_events (migration 0013), at the commit of each alert event.
ALERT_EVENTS_CHANNEL = "sales_pipeline_alert_events"
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
QUEUE_SIZE = 1000  # events a slow socket may fall behind before it is closed (it reconnects with ?after=)
REPLAY_PAGE = 500
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


def alert_record(row: Mapping, fmt: Formatter, webserver_url: str, timezone: str) -> dict:
    """An ops.alerts row as an AlertDTO, its message in the page's language (the emails' sentence)."""
    return {
        "id": row["alert_id"],
        "kind": row["kind"],
        "severity": row["severity"],
        "status": row["status"],
        "entity_type": row["entity_type"],
        "entity_id": row["entity_id"],
        "store_id": row["store_id"],
        "category": row["category"],
        "message": view(row, fmt, webserver_url, timezone).text,
        "numbers": row["numbers"] or {},
        "detected_on": row["detected_on"],
        "since": row["first_seen_at"],
        "last_seen_at": row["last_seen_at"],
        "resolved_at": row["resolved_at"],
        "acknowledged_by": row["acknowledged_by"],
        "acknowledged_at": row["acknowledged_at"],
    }


@dataclass(eq=False)
class Subscriber:
    """One socket's queue of (event id, severity, message); `behind` once it overflowed."""

    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    behind: bool = False


class AlertFeed:
    """The alert events of this API process, read once from the warehouse and fanned out to its sockets."""

    def __init__(self, pool: WarehousePool, fmt: Formatter, webserver_url: str, timezone: str) -> None:
        self._pool = pool
        self._describe = lambda row: alert_record(row, fmt, webserver_url, timezone)
        self._subscribers: set[Subscriber] = set()
        self._lock = asyncio.Lock()
        self.last_id: int | None = None

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def read(self, after: int, limit: int = REPLAY_PAGE) -> list[tuple[int, str, str]]:
        """(event id, severity of the event, NotificationDTO as JSON) after `after`, from the warehouse."""
        with self._pool.transaction() as cursor:
            rows = queries.alert_events(cursor, after, limit)
        return [(row["event_id"], row["event_severity"], self._message(row)) for row in rows]

    def _message(self, row: dict) -> str:
        notification = dto.NotificationDTO(
            id=row["event_id"], event=row["event"], at=row["at"], alert=dto.AlertDTO(**self._describe(row))
        )
        return notification.model_dump_json()

    async def catch_up(self) -> None:
        """Broadcast the events committed since the last one broadcast (called at every wake-up)."""
        async with self._lock:  # one reader at a time; a wake-up during a read is covered by the next
            if self.last_id is None:  # a new process starts from now: history is for ?after=
                self.last_id = await run_in_threadpool(self._last_event)
            while events := await run_in_threadpool(self.read, self.last_id):
                for event_id, severity, message in events:
                    self._broadcast(event_id, severity, message)
                    self.last_id = event_id

    def _last_event(self) -> int:
        with self._pool.transaction() as cursor:
            return queries.last_alert_event(cursor)

    def _broadcast(self, event_id: int, severity: str, message: str) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait((event_id, severity, message))
            except asyncio.QueueFull:  # its socket closes; the client reconnects with ?after= and misses nothing
                subscriber.behind = True
                self._subscribers.discard(subscriber)


async def serve_socket(websocket: WebSocket, feed: AlertFeed, heartbeat_s: float, after: int | None,
                       severity: str) -> None:  # fmt: skip
    """One client: the replay after `after`, then live events of `severity` and above, and heartbeats."""
    config = websocket.app.state.config
    if websocket_caller(websocket, config.cors_origins) is None:
        await websocket.close(POLICY_VIOLATION, "a read token is needed (Authorization header or the session)")
        return
    await websocket.accept()
    least = SEVERITY_RANK[severity]
    subscriber = feed.subscribe()  # before the replay: what commits meanwhile is queued, and sent once
    sent = after if after is not None else (feed.last_id or 0)
    closed = asyncio.Event()
    watcher = asyncio.create_task(_watch_close(websocket, closed))
    try:
        if after is not None:
            while replay := await run_in_threadpool(feed.read, sent):
                for event_id, event_severity, message in replay:
                    if SEVERITY_RANK[event_severity] >= least:
                        await websocket.send_text(message)
                    sent = event_id
        while not closed.is_set():
            if subscriber.behind:
                await websocket.close(TRY_AGAIN_LATER, "too slow: reconnect with ?after=<the last id you received>")
                return
            try:
                event_id, event_severity, message = await asyncio.wait_for(subscriber.queue.get(), heartbeat_s)
            except TimeoutError:
                await websocket.send_text(json.dumps({"type": "heartbeat", "at": dt.datetime.now(dt.UTC).isoformat()}))
                continue
            if event_id > sent and SEVERITY_RANK[event_severity] >= least:
                await websocket.send_text(message)
                sent = event_id
    except (WebSocketDisconnect, RuntimeError):  # the client went away mid-send
        pass
    finally:
        feed.unsubscribe(subscriber)
        watcher.cancel()


async def _watch_close(websocket: WebSocket, closed: asyncio.Event) -> None:
    """Clients send nothing; reading tells when they leave."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    closed.set()
