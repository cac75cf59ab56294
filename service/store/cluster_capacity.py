"""Whether a job's gang could ever fit the cluster, asked at submit: every dispatcher
fails such a job (workers.dispatcher, once it has watched its capacity window), so
the submit refuses it instead, a 422 naming the field, while a live dispatcher
reports the cluster.

The live dispatchers' reports are read at most every REFRESH_SECONDS per API
process, not on every submit: the submit's statements are pinned (issue 13,
tests/api/test_submit_statements.py) and dispatchers report every few seconds
anyway. So for up to that long a dispatcher just started is not seen (a job only
it could hold is accepted, then judged by it as before) and one just stopped still
counts (replacing a small worker by a large one can refuse a job the large one
would hold, for those seconds); liveness is judged on every submit, by the
database's clock and the one rule (dispatchers.is_alive), from the reports read."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.schemas.gang import Bundle
from service.schemas.node_fit import job_bundles
from service.schemas.resolve import Problem
from service.store.dispatchers import is_alive, recent_dispatchers
from service.store.resource_reasons import (
    capacity_of,
    never_fits_reason,
    never_on_a_node,
    never_together_on,
    nodes_of,
)

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
        self,
        *,
        session: Session,
        gang: dict[str, float],
        replica: Bundle,
        workers: int,
        now: datetime,
        lease_seconds: float,
    ) -> list[Problem]:
        """(field, why) when no live dispatcher's cluster could ever hold the gang
        ({"CPU": …, "GPU": …}), one of its bundles on a node (`replica`: one
        replica's CPUs and GPUs; memory is left to the dispatcher, which knows the
        estimate), or its coordinator and `workers` replicas on any set of nodes it
        saw at once; [] when one could, or none is alive (the cluster is unknown: the job
        may wait for one). Job submits only: a sweep may search the gang's size, and
        its points that do not fit fail as trials."""
        alive_since = now - timedelta(seconds=lease_seconds)
        live = [
            r.resources for r in self._current(session, now) if is_alive(r, alive_since=alive_since)
        ]
        capacities = [capacity_of(resources) for resources in live]
        if why := never_fits_reason(gang, capacities):
            short_of_gpus = gang.get("GPU", 0.0) > max(c.get("GPU", 0.0) for c in capacities)
            field = "distributed.gpus_per_worker" if short_of_gpus else "distributed.workers"
            sizes = (
                "the coordinator's 1 CPU and distributed.workers x cpus_per_worker/gpus_per_worker"
            )
            return [(field, f"{why} ({sizes})")]
        bundles = job_bundles(
            replica_cpus=replica.get("CPU"),
            replica_gpus=replica.get("GPU"),
            replica_memory=None,  # the dispatcher's to judge
            coordinator_memory=None,
        )
        if why := never_on_a_node(bundles, live):
            short_of_gpus = not any(n.gpus >= replica.get("GPU", 0.0) for n in nodes_of(live))
            field = (
                "distributed.gpus_per_worker" if short_of_gpus else "distributed.cpus_per_worker"
            )
            return [(field, f"{why}, so it can never start (Ray places each bundle on one node)")]
        if why := never_together_on(bundles, workers, live):
            return [("distributed.workers", f"{why}, so it can never start")]
        return []

    def _current(self, session: Session, now: datetime) -> list[_Report]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_seconds:
                rows = recent_dispatchers(session=session, now=now)
                self._reports = [
                    _Report(d.last_seen_at, d.stopped_at, dict(d.resources)) for d in rows
                ]
                self._read_at = time.monotonic()
            return self._reports
