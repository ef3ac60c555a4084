"""A small pool of warehouse connections for the API's requests (psycopg2's, the project's one driver).

psycopg2's ThreadedConnectionPool fails at once when every connection is out; requests run on a pool
of threads, so a semaphore makes them wait their turn instead (up to `wait_s`, then `PoolBusy`).
A connection that broke (the server restarted) is closed rather than handed out again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
from psycopg2.pool import ThreadedConnectionPool

from sales_pipeline.warehouse import db


class PoolBusy(Exception):
    """Every connection stayed in use for longer than the wait allowed."""


class WarehousePool:
    def __init__(self, url: str, size: int = 8, wait_s: float = 10.0) -> None:
        self._pool = ThreadedConnectionPool(0, size, db.libpq_url(url), application_name="sales_pipeline_api")
        self._slots = threading.BoundedSemaphore(size)
        self._wait_s = wait_s

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor inside one transaction: committed when the block ends, rolled back if it raises."""
        if not self._slots.acquire(timeout=self._wait_s):
            raise PoolBusy(f"no warehouse connection free within {self._wait_s:g} s")
        try:
            connection = self._pool.getconn()
            broken = False
            try:
                with connection.cursor() as cursor:
                    yield cursor
                connection.commit()
            except BaseException as error:
                broken = isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError)
                if not connection.closed:
                    try:
                        connection.rollback()
                    except psycopg2.Error:
                        broken = True
                raise
            finally:
                self._pool.putconn(connection, close=broken or bool(connection.closed))
        finally:
            self._slots.release()

    def close(self) -> None:
        self._pool.closeall()
