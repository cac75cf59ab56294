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

from service.schemas.cost import CostEstimate, gib
from service.schemas.gang import COORDINATOR_BUNDLE, PROCESS_BASE_BYTES, Bundle
from service.schemas.node_fit import job_bundles
from service.schemas.resolve import Problem
from service.store.dispatchers import is_alive, recent_dispatchers
from service.store.queue_order import exceeds
from service.store.resource_reasons import (
    capacity_of,
    largest_cluster,
    never_fits_reason,
    never_on_a_node,
    never_together_on,
    nodes_of,
    without_memory,
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
        cost: CostEstimate,
        now: datetime,
        lease_seconds: float,
    ) -> list[Problem]:
        """(field, why) when no live dispatcher's cluster could ever hold the gang
        ({"CPU": …, "GPU": …}), one of its bundles on a node (`replica`: one
        replica's CPUs and GPUs; each bundle's memory is `cost`'s estimate and a
        process's base, as the dispatcher reserves it), or its coordinator and
        `workers` replicas on any set of nodes it saw at once; [] when one could, or
        none is alive (the cluster is unknown: the job may wait for one). Job submits
        only: a sweep may search the gang's size, and its points that do not fit fail
        as trials."""
        alive_since = now - timedelta(seconds=lease_seconds)
        live = [
            r.resources for r in self._current(session, now) if is_alive(r, alive_since=alive_since)
        ]
        capacities = [capacity_of(resources) for resources in live]
        if never_fits_reason(gang, capacities):
            return [_gang_too_large(gang, replica, workers, capacities)]
        bundles = job_bundles(
            replica_cpus=replica.get("CPU"),
            replica_gpus=replica.get("GPU"),
            replica_memory=cost.replica_bytes,
            coordinator_memory=cost.coordinator_bytes,
        )
        if problem := _bundle_on_no_node(bundles, cost, live):
            return [problem]
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


def _bundle_on_no_node(
    bundles: dict[str, Bundle], cost: CostEstimate, live: list[dict[str, Any]]
) -> Problem | None:
    """A bundle no node of the live dispatchers' holds, at the field to change: the
    replica's GPUs or CPUs when those alone fit no node; else its memory, at the spec
    field that drives the cost model's estimate most (a 4096-wide LSTM's replica on
    nodes of 8 GiB is its hidden_size's doing)."""
    placed_each = "so it can never start (Ray places each bundle on one node)"
    if why := never_on_a_node(without_memory(bundles), live):
        replica_gpus = bundles["replica"].get("GPU", 0.0)
        short_of_gpus = not any(n.gpus >= replica_gpus for n in nodes_of(live))
        field = "distributed.gpus_per_worker" if short_of_gpus else "distributed.cpus_per_worker"
        return field, f"{why}, {placed_each}"
    estimates = {
        "replica": (cost.replica_field, cost.replica_bytes),
        "coordinator": (cost.coordinator_field, cost.coordinator_bytes),
    }

    def by_memory(name: str, why: str) -> Problem:
        field, estimate = estimates[name]
        memory = (
            f"its memory is the cost model's estimate for this spec, {gib(estimate)}, "
            f"and a process's base, {gib(PROCESS_BASE_BYTES)}"
        )
        return field, f"{why} ({memory}), {placed_each}"

    for name in estimates:
        if why := never_on_a_node({name: bundles[name]}, live):
            return by_memory(name, why)
    # Each bundle alone fits some live dispatcher's nodes, yet none holds both
    # (unlike clusters: a review): the bundle the first one's nodes cannot hold.
    if why := never_on_a_node(bundles, live):
        nodes = nodes_of(live[:1])
        misfits = [n for n, bundle in bundles.items() if not any(x.holds(bundle) for x in nodes)]
        return by_memory(misfits[0], why)
    return None


def _gang_too_large(
    gang: dict[str, float], replica: Bundle, workers: int, capacities: list[dict[str, float]]
) -> Problem:
    """The 422 of a gang over every live cluster's totals, at the field that makes it
    so: one replica's size (`cpus_per_worker`, or `gpus_per_worker` where no cluster
    has its GPUs) when a gang of one replica would not fit either, so that no number
    of workers could start; else `workers`, as fewer would fit. A walkthrough's
    `workers: 2, cpus_per_worker: 64` on 16 CPUs was told to change `workers`."""
    coordinator_cpus = COORDINATOR_BUNDLE["CPU"]
    replica_cpus, replica_gpus = replica.get("CPU", 0.0), replica.get("GPU", 0.0)
    one_replica = {"CPU": coordinator_cpus + replica_cpus, "GPU": replica_gpus}
    # The most GPUs over the live clusters (a report naming none counts 0): a replica
    # asking more than any has is its GPUs' doing.
    most_gpus = max(c.get("GPU", 0.0) for c in capacities)
    gpus_asked = gang.get("GPU", 0.0) > 0
    largest = largest_cluster(gang, capacities)

    def figures(cpus: float, gpus: float) -> str:
        # GPUs named whenever the gang asks for any, the cluster's 0 too.
        return f"{cpus:g} CPU" + (f", {gpus:g} GPU" if gpus_asked else "")

    cluster = (
        "the largest live dispatcher's cluster has "
        f"{figures(largest['CPU'], largest.get('GPU', 0.0))}, so the gang can never start"
    )
    shape = figures(replica_cpus, replica_gpus)
    coordinator = f"the coordinator's {coordinator_cpus:g} CPU"
    gang_needs = figures(gang.get("CPU", 0.0), gang.get("GPU", 0.0))
    if never_fits_reason(one_replica, capacities):
        field = (
            "distributed.gpus_per_worker"
            if exceeds(replica_gpus, most_gpus)
            else "distributed.cpus_per_worker"
        )
        # No GPU anywhere: say what to do, not only that the gang cannot start.
        no_gpus = "; no live cluster has a GPU: train on CPUs with gpus_per_worker 0"
        return (
            field,
            f"one replica of {shape} and {coordinator} need "
            f"{figures(one_replica['CPU'], one_replica['GPU'])}; {cluster}, with any number "
            f"of distributed.workers ({workers} ask {gang_needs})"
            + (no_gpus if replica_gpus > 0 and most_gpus == 0 else ""),
        )
    return (
        "distributed.workers",
        f"{workers} replicas of {shape} each and {coordinator} need {gang_needs}; {cluster}: "
        "fewer distributed.workers would fit",
    )
