"""Store writes that ride through short outages: a write that fails because the
database is unreachable (PostgreSQL restarting, a dropped connection, SQLite's
"database is locked" after its busy timeout) is retried with backoff, in order,
instead of ending the job's attempt.

The caller keeps training meanwhile: its unwritten events stay queued behind the
write being retried (the buffer), and `abort` lets it give up early: when the
buffer outgrows its bound, the dispatcher stops, or the lease was lost (the fencing
check said so). Errors that are not about reachability (StaleLease, a SequenceGap,
a bug) are raised at once: retrying cannot fix them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 2.0


class StoreUnavailable(Exception):
    """The store stayed unreachable past the writer's bound (time, or buffered events)."""


def is_transient(error: BaseException) -> bool:
    """True when `error` says the database could not be reached or was busy, so the
    same write can succeed later."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return True
    if isinstance(error, sa_exc.TimeoutError):  # the pool had no connection for us
        return True
    return isinstance(error, (psycopg.OperationalError, sqlite3.OperationalError))


class RetryingWriter:
    """Runs store writes (one transaction each), retrying transient failures with
    exponential backoff until they succeed, `abort()` returns a reason, or the store
    has been unreachable for `give_up_seconds`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        give_up_seconds: float,
        name: str,
        wake: threading.Event | None = None,
    ) -> None:
        self.sessions = sessions
        self.give_up_seconds = give_up_seconds
        self.name = name
        # Set by whoever wants a retry to happen now (or an abort to be noticed).
        self.wake = wake or threading.Event()
        self.retries = 0  # transient failures seen (for logs and tests)

    def write(
        self, fn: Callable[[Session], T], *, abort: Callable[[], str | None] = lambda: None
    ) -> T:
        backoff = FIRST_BACKOFF_SECONDS
        failing_since: float | None = None
        while True:
            try:
                with transaction(self.sessions) as session:
                    result = fn(session)
            except Exception as error:
                if not is_transient(error):
                    raise
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    log.warning(
                        "%s: store unreachable, retrying: %s", self.name, _first_line(error)
                    )
                self.retries += 1
                if now - failing_since > self.give_up_seconds:
                    raise StoreUnavailable(
                        f"the store was unreachable for more than {self.give_up_seconds:g} s"
                    ) from error
                reason = abort()
                if reason is not None:
                    raise StoreUnavailable(reason) from error
                self.wake.wait(backoff)
                self.wake.clear()
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if failing_since is not None:
                log.info(
                    "%s: store answered again after %.1f s",
                    self.name,
                    time.monotonic() - failing_since,
                )
            return result


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
