"""PostgreSQL LISTEN for the SSE feeds: one connection per server process, on a
thread, that pokes the feed of a watched job when the store NOTIFYs that the job has
new metric records or a new status (service.store.notify.FEED_CHANNEL). A feed
then reads the store at once instead of at its next poll.

While the connection is down (or on SQLite, where there is none) `listening` is
False and the feeds poll as before; after each (re)connect every feed is poked once,
since a notification may have gone by unheard.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from service.store.db import postgres_connect_args
from service.store.notify import FEED_CHANNEL

log = logging.getLogger(__name__)

# How long one wait for notifications lasts: the thread sees a stop within this.
WAIT_SLICE_SECONDS = 0.5
RECONNECT_SECONDS = 1.0
# A (re)connect gives up after this long: psycopg's default bound is 130 s (libpq's
# floor is 2).
CONNECT_TIMEOUT_SECONDS = 3


def listen_conninfo(dsn: str) -> str:
    """A LISTEN connection's connection string (the API's feeds, a dispatcher's
    workers.waker): the pools' PostgreSQL bounds, its connect bounded tighter still."""
    bounds = {**postgres_connect_args(dsn), "connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return make_conninfo(dsn, **bounds)


class FeedListener:
    def __init__(
        self,
        database_url: str,
        loop: asyncio.AbstractEventLoop,
        *,
        poke: Callable[[int], None],
        poke_all: Callable[[], None],
        watched: Callable[[int], bool],
    ) -> None:
        """`poke(job_id)` and `poke_all()` run on `loop`; `watched(job_id)` is asked
        on the listening thread (a dict look-up) so that other jobs' notifications
        never reach the loop."""
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._loop = loop
        self._poke, self._poke_all, self._watched = poke, poke_all, watched
        self._stop = threading.Event()
        self.listening = False
        self._thread = threading.Thread(target=self._run, name="sse-feed-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_SLICE_SECONDS + 2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception:  # the database went away: poll until it is back
                if self.listening:
                    log.warning("SSE feeds: LISTEN connection lost; polling until it is back")
                self.listening = False
                self._stop.wait(RECONNECT_SECONDS)
        self.listening = False

    def _listen(self) -> None:
        # Bounded: libpq's default would hold a reconnect to a silent host for minutes.
        with psycopg.connect(listen_conninfo(self._dsn), autocommit=True) as conn:
            conn.execute(f"LISTEN {FEED_CHANNEL}")
            self.listening = True
            self._loop.call_soon_threadsafe(self._poke_all)
            while not self._stop.is_set():
                for note in conn.notifies(timeout=WAIT_SLICE_SECONDS):
                    # Anyone may NOTIFY the channel: a payload that is no job id is
                    # skipped, not a reason to drop the connection (a review).
                    job_id = _job_id(note.payload)
                    if job_id is not None and self._watched(job_id):
                        self._loop.call_soon_threadsafe(self._poke, job_id)


def _job_id(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None
