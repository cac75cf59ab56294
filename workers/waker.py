"""Waking the dispatcher loop (workers.dispatcher) when a job may be claimable:
PostgreSQL NOTIFY, a SQLite file's data_version, or a poke from this process."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

# The SSE feeds' LISTEN connection retries at this pace, and bounds its connects, too:
# one rule for both.
from service.api.feed_listener import RECONNECT_SECONDS, listen_conninfo
from service.store.lifecycle import JOBS_CHANNEL

log = logging.getLogger(__name__)

POKE_SLICE_SECONDS = 0.05


class Waker:
    """Waits for 'a job was queued': LISTEN on PostgreSQL; on a SQLite file, any
    commit by another connection (the API server's submit among them: SQLite has no
    NOTIFY, and a plain poll made a job wait half the poll interval on average);
    else a plain timeout. `poke()` wakes the loop early (a local job ended and freed
    resources)."""

    def __init__(self, database_url: str) -> None:
        self._event = threading.Event()
        self.waits = 0  # waits begun (a test knows the loop is idle once it grows)
        self._conn: psycopg.Connection[Any] | None = None
        self._dsn: str | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._data_version = 0
        self._last_connect = 0.0  # when the last (re)connect began
        self._down = False  # a reconnect failed: warned once, the next success says so
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            # Only PRAGMA data_version is read on it: a local read of the file's
            # header, no lock held between reads. Used by the loop's thread only.
            self._sqlite = sqlite3.connect(url.database, check_same_thread=False)
            self._data_version = self._sqlite_version()
        if url.get_backend_name() == "postgresql":
            self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._last_connect = time.monotonic()
            self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        """A new connection that LISTENs for queued jobs. Bounded by
        CONNECT_TIMEOUT_SECONDS: (re)connects run on the dispatcher's loop, and one
        that hung (a partition dropping the packets) would stop its heartbeat, drain
        and stop checks meanwhile."""
        assert self._dsn is not None
        conn = psycopg.connect(listen_conninfo(self._dsn), autocommit=True)
        try:
            conn.execute(f"LISTEN {JOBS_CHANNEL}")
        except BaseException:
            conn.close()
            raise
        return conn

    def reset(self) -> bool:
        """Drop a broken LISTEN connection and open a new one; False if that failed
        (then `wait` polls, and tries again every RECONNECT_SECONDS)."""
        if self._dsn is None:
            return False
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        self._conn = None
        self._last_connect = time.monotonic()
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            if not self._down:
                log.warning("LISTEN connection failed (%s); polling until it is back", exc)
            self._down = True
            return False
        if self._down:
            log.info("LISTEN connection back")
        self._down = False
        return True

    def poke(self) -> None:
        self._event.set()

    def _sqlite_version(self) -> int:
        assert self._sqlite is not None
        return int(self._sqlite.execute("PRAGMA data_version").fetchone()[0])

    def _sqlite_changed(self) -> bool:
        """Another connection committed since the last look (it changes when any
        process commits: a submit, or a running job's own writes; a wake-up for
        those costs one claim query)."""
        try:
            version = self._sqlite_version()
        except sqlite3.Error:
            return False  # the poll still runs
        changed, self._data_version = version != self._data_version, version
        return changed

    def wait(self, timeout: float) -> None:
        self.waits += 1
        deadline = time.monotonic() + timeout
        while not self._event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self._sqlite is not None:
                if self._sqlite_changed():
                    break
                self._event.wait(min(remaining, POKE_SLICE_SECONDS))
                continue
            if self._conn is None:
                # Nothing else calls reset() once the loop runs again without errors:
                # without this retry it polled for good after any outage.
                retry_in = self._last_connect + RECONNECT_SECONDS - time.monotonic()
                if self._dsn is None or retry_in > 0:
                    self._event.wait(remaining if self._dsn is None else min(remaining, retry_in))
                elif self.reset():
                    break  # a NOTIFY may have gone by unheard: the loop looks once
                continue
            # A poke (stop, an in-process wake-up, freed resources) cannot interrupt
            # notifies(): wait in short slices, so it is seen within one. A slice only
            # waits on the socket; it sends nothing to the server.
            slice_seconds = min(remaining, POKE_SLICE_SECONDS)
            if any(True for _ in self._conn.notifies(timeout=slice_seconds, stop_after=1)):
                break
        self._event.clear()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._sqlite is not None:
            self._sqlite.close()
