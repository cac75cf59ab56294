"""One job's gang on Ray: a placement group of the job's gang bundles (service.schemas
.gang: the coordinator's, one per replica; ray_runtime.place_gang), replica and driver
actors (workers.ray_actors' plain classes, wrapped by Ray here), the driver's events
streamed back. The rule is looked up once, here, and handed to the actors: they run
the rule the dispatcher resolved.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import ray
from ray.util.placement_group import (
    placement_group_table,
    remove_placement_group,
)

from service.schemas.gang import Bundle, GangMemory, gang_bundles
from service.schemas.resolved import ResolvedSpec
from workers.aggregation.registry import get_rule
from workers.aggregation.rule import AggregationRule
from workers.checkpoint_write import OUTAGE_SECONDS
from workers.dataplane import TIMEOUT_S
from workers.gang_actors import device_for, get_within, start_own_actors
from workers.ray_actors import CheckpointEvent, JobEvent, RecordEvent
from workers.ray_runtime import bundle_nodes, place_gang
from workers.resume import resume_failure
from workers.warm_pool import WarmPool

__all__ = ["CheckpointEvent", "JobEvent", "RayJob", "RecordEvent"]

log = logging.getLogger(__name__)


class RayJob:
    """Reserve the placement group, start the actors, stream events, stop it all."""

    def __init__(
        self,
        spec: ResolvedSpec,
        *,
        job_key: str,
        artifacts_url: str,
        datasets: Mapping[str, str] | None = None,
        dtype: str | None = None,  # None: the spec's model.dtype
        attempt: int = 1,
        rule: AggregationRule | None = None,
        memory: GangMemory | None = None,
        pool: WarmPool | None = None,
        dataplane_timeout_s: float = TIMEOUT_S,
        artifacts_outage_seconds: float = OUTAGE_SECONDS,
    ) -> None:
        self.spec = spec
        self.dataplane_timeout_s = dataplane_timeout_s
        self.artifacts_outage_seconds = artifacts_outage_seconds
        self.memory = memory
        self.pool = pool
        self.pooled: list[tuple[str, Any]] = []  # (node id, actor) taken from `pool`
        self.actor_phases: list[dict[str, float]] = []  # pooled actors' own set-up
        self.ended_cleanly = False
        self.announced_back = False  # the pool expects `pooled` back (free_resources)
        self.rule = rule or get_rule(spec.aggregation.strategy)
        self.job_key = job_key
        # Actors are named, so an operator (or a test) can find a job's gang in Ray.
        self.actor_prefix = f"lagtrain-job{job_key}-attempt{attempt}"
        self.attempt = attempt
        self.artifacts_url = artifacts_url
        self.datasets = dict(datasets or {})
        self.dtype = dtype
        self.pg: Any = None
        self.placed_on: dict[str, list[Bundle]] = {}  # its bundles by node id, once placed
        self.actors: list[Any] = []
        self.tries = 1  # gangs of actors started for this attempt (restart)
        self.replicas: list[Any] = []
        self.driver: Any = None
        # Seconds per gang-start phase (placement, actors, resume, first event); the
        # dispatcher logs them at debug level, benchmarks/gang_start.py prints them.
        self.phases: dict[str, float] = {}
        self._mark = time.perf_counter()

    def _actor_name(self) -> str:
        return self.actor_prefix if self.tries == 1 else f"{self.actor_prefix}-try{self.tries}"

    def _phase(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self._mark
        self._mark = now

    def start(
        self,
        *,
        ready_timeout_s: float,
        resume: tuple[str, str] | None = None,
        on_placed: Callable[[], None] = lambda: None,
    ) -> int:
        """Reserve and start the gang; returns the first round to run. `on_placed` runs
        once the placement group holds its resources, before the actors start. Each
        step (placement, pooled actors taking up the job, resume) gets `ready_timeout_s`:
        one that hangs fails the attempt, not a job left running with its lease renewed."""
        self._mark = time.perf_counter()
        bundles = gang_bundles(self.spec, self.memory)
        self.pg = place_gang(bundles)
        get_within(
            self.pg.ready(), ready_timeout_s, f"the cluster could not place the gang {bundles}"
        )
        self._phase("placement")
        self.placed_on = bundle_nodes(self.pg, bundles)
        on_placed()
        device = device_for(self.spec.distributed.gpus_per_worker)
        if self.pool is not None and device == "cpu":
            try:
                self._start_pooled(bundles, device, ready_timeout_s)
            except ray.exceptions.RayActorError as exc:
                # An idle warm actor died (a memory kill: pooled actors reserve none):
                # the job's own actors instead, in the same room (a review: each dead
                # one cost a job an attempt).
                log.warning(
                    "job %s: a warm actor was dead (%s); starting the job's own", self.job_key, exc
                )
                self._start_afresh(bundles)
        else:
            self._start_own(bundles, device)
        return self._resume(resume, ready_timeout_s)

    def restart(self, *, ready_timeout_s: float, resume: tuple[str, str] | None) -> int:
        """Start the gang's actors afresh inside the placement group it holds, and
        resume from `resume`: after a resume that failed (ResumeFailed), whose load
        may have left the actors half-loaded. The placement group stays, so its room
        stays held: the dispatcher counted it taken once it was placed, and would
        claim another job into it were it released (a review). Always the job's own
        actors: pooled ones that failed a load are not handed back."""
        self._start_afresh(gang_bundles(self.spec, self.memory))
        return self._resume(resume, ready_timeout_s)

    def _start_afresh(self, bundles: list[dict[str, float]]) -> None:
        """Kill the gang's actors (pooled ones too) and start its own in its
        placement group."""
        self.actors += [actor for _node, actor in self.pooled]
        self.pooled = []
        self._kill_actors()
        self.tries += 1  # new names: a killed actor's name is released asynchronously
        self._start_own(bundles, device_for(self.spec.distributed.gpus_per_worker))

    def _resume(self, resume: tuple[str, str] | None, ready_timeout_s: float) -> int:
        """The first round to run: 0, or the round after the checkpoint `resume`."""
        if resume is None:
            return 0
        # With the job's own actors this also waits for them to start.
        try:
            first_round = int(
                get_within(
                    self.driver.resume.remote(*resume),
                    ready_timeout_s,
                    f"the gang's driver did not resume from checkpoint {resume[0]}",
                )
            )
        except ray.exceptions.RayTaskError as exc:
            failure = resume_failure(exc, resume[0])
            if failure is exc:
                raise
            raise failure from exc
        self._phase("resume")
        return first_round

    def _actor_args(self, bundle: dict[str, float]) -> dict[str, Any]:
        """What a replica and the driver both take: the rule, the data, their threads."""
        threads = max(1, math.floor(bundle["CPU"]))
        return dict(rule=self.rule, dtype=self.dtype, threads=threads, datasets=self.datasets)

    def _replica_args(self, bundle: dict[str, float], device: str) -> dict[str, Any]:
        return {**self._actor_args(bundle), "device": device}

    def _driver_args(self, bundle: dict[str, float]) -> dict[str, Any]:
        return {
            **self._actor_args(bundle),
            "job_key": self.job_key,
            "attempt": self.attempt,
            "artifacts_url": self.artifacts_url,
            "dataplane_timeout_s": self.dataplane_timeout_s,
            "artifacts_outage_seconds": self.artifacts_outage_seconds,
        }

    def _start_own(self, bundles: list[dict[str, float]], device: str) -> None:
        """Actors of this job alone, inside its placement group."""
        self.replicas, self.driver = start_own_actors(
            self.pg,
            self.spec,
            bundles,
            name=self._actor_name(),
            replica_args=[self._replica_args(bundle, device) for bundle in bundles[1:]],
            driver_args=self._driver_args(bundles[0]),
            started=self.actors,
        )

    def _start_pooled(
        self, bundles: list[dict[str, float]], device: str, ready_timeout_s: float
    ) -> None:
        """Warm actors from the pool, each on its bundle's node (workers.warm_pool)."""
        assert self.pool is not None
        nodes = placement_group_table(self.pg)["bundles_to_node_id"]
        self.pooled = [
            (nodes[index], self.pool.take(nodes[index])) for index in range(len(bundles))
        ]
        actors = [actor for _node, actor in self.pooled]
        becoming = [
            actor.become_replica.remote(self.spec, rank, **self._replica_args(bundle, device))
            for rank, (actor, bundle) in enumerate(zip(actors[1:], bundles[1:], strict=True))
        ]
        becoming.append(
            actors[0].become_driver.remote(
                self.spec, replicas=actors[1:], **self._driver_args(bundles[0])
            )
        )
        self._phase("take")
        self.actor_phases = get_within(
            becoming, ready_timeout_s, "the gang's warm actors did not take up the job"
        )
        self._phase("become")
        self.driver = actors[0]
        self.replicas = actors[1:]

    def events(self) -> Iterator[JobEvent]:
        generator = self.driver.run.options(num_returns="streaming").remote()
        driver_phases: Any = None
        for ref in generator:
            event = ray.get(ref)
            if driver_phases is None:
                self._phase("first_event")
                # Asked now (the driver answers on its second thread), read at the end.
                driver_phases = self.driver.run_start_phases.remote()
            yield event
        self.ended_cleanly = True
        if driver_phases is not None and log.isEnabledFor(logging.DEBUG):
            log.debug(
                "job %s: gang start %s; driver %s; pooled actors %s",
                self.job_key,
                {k: round(v, 3) for k, v in self.phases.items()},
                ray.get(driver_phases),
                self.actor_phases,
            )

    def request_stop(self, checkpoint: bool = True) -> None:
        """Ask the driver to end after the current round, with a checkpoint of it
        unless `checkpoint` is False."""
        if self.driver is not None:
            self.driver.request_stop.remote(checkpoint)

    @property
    def hands_back(self) -> bool:
        """Whether a clean end would hand this gang's actors back to the warm pool."""
        return self.pool is not None and bool(self.pooled)

    def free_resources(self) -> None:
        """Kill the job's own actors (and pooled ones of a job that did not end
        cleanly) and release the placement group: after this the gang holds nothing
        of the cluster. A cleanly ended job's pooled actors (num_cpus=0) stay, for
        `stop` to hand back; safe to call twice."""
        if not (self.pool is not None and self.ended_cleanly):
            self.actors += [actor for _node, actor in self.pooled]
            self.pooled = []
        elif self.pooled and not self.announced_back:
            # Announced before the placement group goes: a job claimed in the gap
            # waits for these actors instead of starting fresh ones.
            self.pool.expect_back([node for node, _actor in self.pooled])
            self.announced_back = True
        self._kill_actors()
        if self.pg is not None:
            remove_placement_group(self.pg)
            self.pg = None

    def _kill_actors(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):  # an actor that already died is fine
                ray.kill(actor, no_restart=True)
        self.actors.clear()
        self.replicas = []

    def stop(self) -> None:
        """Free the resources, then hand a cleanly ended job's pooled actors back (their
        reset runs once the placement group is gone: a caller recording the job's end
        in between does not wait for it); safe to call twice."""
        self.free_resources()
        if self.pooled and self.pool is not None:
            self.pool.give_back(self.pooled)
        self.pooled = []
