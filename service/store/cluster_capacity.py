"""Whether a job's gang could ever fit the cluster, asked at submit: every dispatcher
fails such a job at once (workers.dispatcher), so the submit refuses it instead, a
422 naming the field, while a live dispatcher reports the cluster.

The live dispatchers' reports are read at most every REFRESH_SECONDS per API
process, not on every submit: the submit's statements are pinned (issue 13,
tests/api/test_submit_statements.py) and dispatchers report every few seconds
anyway. A dispatcher started within that time may not be seen yet (its jobs then
fail on a dispatcher, as before); liveness is judged on every submit, by the
database's clock, from the reports read."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.schemas.gang import gang_totals
from service.schemas.resolve import Problem
from service.schemas.resolved import ResolvedSpec
from service.store.dispatchers import RECENT_DISPATCHERS, STALE_DISPATCHER, list_dispatchers
from service.store.resource_reasons import capacity_of, too_large_for_live_cluster

REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class _Report:
    """What liveness and the fit need of a dispatcher row, kept past its session."""

    last_seen_at: datetime
    stopped_at: datetime | None
    resources: dict[str, Any]


class ClusterCapacity:
    """One per API process; thread-safe (submits run on the thread pool)."""

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._reports: list[_Report] = []

    def problems(
        self, *, session: Session, spec: ResolvedSpec, now: datetime, lease_seconds: float
    ) -> list[Problem]:
        """(distributed.workers, why) when no live dispatcher's cluster could ever
        hold the gang; [] when one could, or none is alive (the cluster is unknown:
        the job may wait for one). Job submits only: a sweep may search the gang's
        size, and its points that do not fit fail as trials."""
        reports = self._current(session, now)
        alive_since = now.timestamp() - lease_seconds
        live = [
            capacity_of(r.resources)
            for r in reports
            if r.stopped_at is None and r.last_seen_at.timestamp() >= alive_since
        ]
        cpus, gpus = gang_totals(spec)
        why = too_large_for_live_cluster({"CPU": cpus, "GPU": gpus}, live)
        return [] if why is None else [("distributed.workers", why)]

    def _current(self, session: Session, now: datetime) -> list[_Report]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_seconds:
                rows = list_dispatchers(
                    session=session, seen_since=now - STALE_DISPATCHER, limit=RECENT_DISPATCHERS
                )
                self._reports = [
                    _Report(d.last_seen_at, d.stopped_at, dict(d.resources)) for d in rows
                ]
                self._read_at = time.monotonic()
            return self._reports
