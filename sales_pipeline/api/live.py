"""What keeps the API current without polling the warehouse: one LISTEN connection per API process.

PostgreSQL NOTIFY is only a wake-up: it is not stored, and a listener that was disconnected missed
whatever was sent meanwhile. So the warehouse stays the source of truth: on every (re)connection the
listener calls `on_connect` (which drops the marts cache and reads the alert events after the last
one sent), and while it is disconnected the marts cache is not trusted at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from sales_pipeline.warehouse import db

log = logging.getLogger("sales_pipeline.api")
RECONNECT_S = (0.5, 1, 2, 5, 10)  # waits between reconnections, the last one repeated


class Listener:
    """LISTENs on `channels` from the event loop; `on_notify(channel, payload)` for each notification."""

    def __init__(
        self,
        url: str,
        channels: tuple[str, ...],
        on_notify: Callable[[str, str], None],
        on_connect: Callable[[], object],
        on_disconnect: Callable[[], None],
    ) -> None:
        self._url = url
        self._channels = channels
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self.connected = asyncio.Event()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                connection = await asyncio.to_thread(self._connect)
            except psycopg2.Error as error:
                log.warning("notification listener cannot connect to the warehouse: %s", type(error).__name__)
                await asyncio.sleep(RECONNECT_S[min(failures, len(RECONNECT_S) - 1)])
                failures += 1
                continue
            failures = 0
            try:
                await self._listen(connection)
            except (psycopg2.Error, OSError) as error:
                log.warning("notification listener lost the warehouse (%s): reconnecting", type(error).__name__)
            finally:
                self.connected.clear()
                self._on_disconnect()
                connection.close()

    def _connect(self) -> psycopg2.extensions.connection:
        connection = psycopg2.connect(
            db.libpq_url(self._url), application_name="sales_pipeline_api_listener",
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
        )  # fmt: skip
        connection.autocommit = True
        with connection.cursor() as cursor:
            for channel in self._channels:
                cursor.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return connection

    async def _listen(self, connection: psycopg2.extensions.connection) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(connection.fileno(), readable.set)
        try:
            # Listening before catching up: whatever commits from here on wakes us, even during the catch-up.
            self.connected.set()
            result = self._on_connect()
            if asyncio.iscoroutine(result):
                await result
            while True:
                await readable.wait()
                readable.clear()
                connection.poll()  # raises when the connection broke
                while connection.notifies:
                    notification = connection.notifies.pop(0)
                    self._on_notify(notification.channel, notification.payload)
        finally:
            loop.remove_reader(connection.fileno())


@dataclass(frozen=True)
class CachedDocument:
    etag: str
    body: bytes


class MartCache:
    """Responses read from the marts (the Dashboard per scope, rankings), kept until the pipeline writes anew.

    Trusted only while the listener is connected; `generation` changes at every invalidation, so a read
    that started before a refresh committed is not cached after it.
    """

    def __init__(self) -> None:
        self._documents: dict[tuple, CachedDocument] = {}
        self.generation = 0
        self.trusted = False

    def get(self, key: tuple) -> CachedDocument | None:
        return self._documents.get(key) if self.trusted else None

    def put(self, key: tuple, document: CachedDocument, generation: int) -> None:
        if self.trusted and generation == self.generation:
            self._documents[key] = document

    def invalidate(self, trusted: bool) -> None:
        self._documents.clear()
        self.generation += 1
        self.trusted = trusted


def etag_of(*parts: object) -> str:
    return '"' + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:20] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak or strong, or `*`)."""
    if not header:
        return False
    candidates = {candidate.strip().removeprefix("W/") for candidate in header.split(",")}
    return etag in candidates or "*" in candidates
