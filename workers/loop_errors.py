"""A long-running loop's failures (the dispatcher's, the sweep controller's), logged
so that an outage reads as one story: the traceback once, then a line per retry, then
one line when the loop recovers — not a 110-line traceback every poll of a
17-second database outage.

A lost database connection (or SQLite's lock held past its timeout) is a WARNING:
the loops ride through outages of the store by design (docs/reliability.md), and an
operator alerting on ERROR was paged for every PostgreSQL restart. Any other
failure is an ERROR, and so is a streak that lasts past `escalate_after` seconds:
a store outage that long needs a person."""

from __future__ import annotations

import logging
import sqlite3
import time

import psycopg
import sqlalchemy.exc

# PostgreSQL's SQLSTATEs of a lost or refused connection: class 08 (connection
# exception) and the server shutting down or starting (57P01 to 57P03). Everything else
# that psycopg calls an OperationalError (a deadlock, a full disk, too many
# connections, a cancelled statement) is a fault a person should see.
_SHUTDOWN_STATES = {"57P01", "57P02", "57P03"}


def store_unreachable(exc: BaseException) -> bool:
    """A store outage the loops ride through: the connection lost or refused (through
    SQLAlchemy, from a raw connection such as the dispatcher's LISTEN wait, or as the
    socket's own error), or SQLite's "database is locked" (a writer past the busy
    timeout)."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        return state is None or state.startswith("08") or state in _SHUTDOWN_STATES
    if isinstance(exc, sqlite3.OperationalError):
        return "database is locked" in str(exc)
    return False


class LoopErrors:
    def __init__(self, log: logging.Logger, loop: str, *, escalate_after: float = 60.0) -> None:
        self.log = log
        self.loop = loop  # e.g. "dispatcher d1: loop"
        self.escalate_after = escalate_after
        self.in_a_row = 0
        self.since = 0.0  # monotonic time of the streak's first failure
        self.escalated = False

    def failed(self, exc: BaseException) -> None:
        self.in_a_row += 1
        if self.in_a_row == 1:
            self.since, self.escalated = time.monotonic(), False
            level = logging.WARNING if store_unreachable(exc) else logging.ERROR
            self.log.log(level, "%s error; retrying", self.loop, exc_info=exc)
            return
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        lasted = time.monotonic() - self.since
        if not self.escalated and lasted >= self.escalate_after:
            self.escalated = True
            self.log.error(
                "%s has failed for %.0f s (%d in a row), still retrying: %s",
                self.loop,
                lasted,
                self.in_a_row,
                first_line,
            )
            return
        self.log.warning("%s error again (%d in a row): %s", self.loop, self.in_a_row, first_line)

    def succeeded(self) -> None:
        if self.in_a_row:
            self.log.info("%s recovered after %d errors", self.loop, self.in_a_row)
            self.in_a_row = 0
