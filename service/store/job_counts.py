"""Jobs per status, for `/v1/cluster`'s queue and `/metrics`, at a cost that does not
grow with the store's history.

A GROUP BY over every job cost 55 to 113 ms at a year's 200,000 jobs on PostgreSQL (a
query-plan review), and /v1/cluster is read every 5 s by each open Lab page. Now:

- the live statuses (queued, running, cancelling) are counted on every call, exact as
  of the caller's transaction, through the status index (ix_jobs_status_id): as many
  index entries as there are live jobs;
- the terminal ones (succeeded, failed, cancelled), nearly every row of a long-lived
  store, are counted at most once per `refresh_seconds` (15 s) per API process
  (TerminalCounts, in app.state), so they may be up to that old: a job that just
  ended has left its live count at once but joins its terminal count within 15 s,
  and a deleted job leaves it as late. Nothing decides anything on them; they are a
  dashboard's and an alert's figures.

benchmarks/status_counts.py measures it; tests/store/test_job_counts.py checks it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.store.models import TERMINAL, Job, JobStatus

REFRESH_SECONDS = 15.0
LIVE_STATUSES = tuple(s.value for s in JobStatus if s not in TERMINAL)
TERMINAL_STATUSES = tuple(s.value for s in JobStatus if s in TERMINAL)


def count_statement(statuses: tuple[str, ...]) -> Select[str, int]:
    """(status, jobs) of each of `statuses` that has jobs: by the status index."""
    return select(Job.status, func.count()).where(Job.status.in_(statuses)).group_by(Job.status)


def count_by_status(*, session: Session, statuses: tuple[str, ...]) -> dict[str, int]:
    """Jobs in each of `statuses` (0 when none), counted now."""
    rows = {status: n for status, n in session.execute(count_statement(statuses))}
    return {s: int(rows.get(s, 0)) for s in statuses}


class TerminalCounts:
    """The terminal statuses' counts, read at most once per `refresh_seconds`: one per
    API process, thread-safe (routes run on the thread pool). A reader that finds
    them stale counts them again in its own transaction, the others wait for it."""

    def __init__(
        self,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,  # a test's seam
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._counts: dict[str, int] = {}

    def read(self, *, session: Session) -> dict[str, int]:
        with self._lock:
            if self._clock() - self._read_at >= self.refresh_seconds:
                self._counts = count_by_status(session=session, statuses=TERMINAL_STATUSES)
                self._read_at = self._clock()
            return dict(self._counts)


def status_counts(*, session: Session, terminal: TerminalCounts | None = None) -> dict[str, int]:
    """Jobs per status, every status present (0 when none), in JobStatus's order: the
    live ones exact, the terminal ones from `terminal` (up to its refresh_seconds
    old), or counted now when it is None."""
    counts = count_by_status(session=session, statuses=LIVE_STATUSES)
    if terminal is None:
        counts |= count_by_status(session=session, statuses=TERMINAL_STATUSES)
    else:
        counts |= terminal.read(session=session)
    return {s.value: counts[s.value] for s in JobStatus}
