"""Warm gangs: a dispatcher's pool of idle WarmHost actors (workers.warm_host), so a
job on a warm cluster starts training without process start-up (≈ 3 s per actor
that imports torch here, STACK-NOTES).

Why the pool's actors hold no resources (num_cpus=0): an actor created inside a
placement group dies with it, so an actor that outlives its job cannot belong to
the job's group. The job's placement group still reserves its bundles (that is
what the dispatcher's claim counts); a pooled actor serves a bundle from outside,
pinned to the bundle's node, with torch's threads set to the bundle's CPUs. Only
CPU gangs use the pool: a GPU is assigned to an actor when Ray creates it.

Nothing of a job survives in a pooled actor: it builds the job's replica or driver
afresh from the job's spec and drops it on reset, and only a job that ended cleanly
hands its actors back (after an error they are killed, as without the pool). A
cancelled job is asked to stop at its round's end and ends cleanly if it does within
workers.job_run.CANCEL_STOP_SECONDS; otherwise its actors are killed too. Bounded by
`size`; actors idle longer than `idle_seconds` are released.

A cleanly ended job frees its placement group (and records its end) before its
actors are reset and handed back, so the dispatcher may claim the next job in
between: the job announces them first (`expect_back`), and `take` waits for an actor
on its way back rather than starting a process that imports torch (seconds, against
a reset's milliseconds).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from workers.warm_host import WarmHost

log = logging.getLogger(__name__)

RESET_TIMEOUT_S = 30.0


@dataclass
class _Idle:
    node_id: str
    actor: Any
    since: float
    # Resolves once the actor's process has started (torch imported); a handed-back
    # actor's is its finished reset().
    started: Any


class WarmPool:
    def __init__(self, *, size: int, idle_seconds: float) -> None:
        self.size = size
        self.idle_seconds = idle_seconds
        self._idle: list[_Idle] = []
        self._lock = threading.Lock()
        # Actors per node that a cleanly ended job has announced and not handed back yet.
        self._returning: dict[str, int] = {}
        self._handed_back = threading.Condition(self._lock)

    def new_actor(self, node_id: str) -> Any:
        """A fresh WarmHost on `node_id` (it imports torch while the caller goes on)."""
        return (
            ray.remote(WarmHost)
            .options(
                num_cpus=0,
                # As a gang's own driver: request_stop() arrives while run() streams.
                max_concurrency=2,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            )
            .remote()
        )

    def prewarm(self, node_id: str) -> None:
        """Fill the pool on `node_id` (the dispatcher's node) up to `size`."""
        with self._lock:
            missing = self.size - len(self._idle)
            now = time.monotonic()
            for _ in range(missing):
                actor = self.new_actor(node_id)
                self._idle.append(_Idle(node_id, actor, now, actor.reset.remote()))

    def expect_back(self, node_ids: list[str]) -> None:
        """A cleanly ended job will hand back its actors on these nodes (one entry per
        actor); each is counted until `give_back` has it."""
        with self._lock:
            for node_id in node_ids:
                self._returning[node_id] = self._returning.get(node_id, 0) + 1

    def take(self, node_id: str) -> Any:
        """An idle actor on `node_id` (one that has started first), else one on its way
        back there (waited for, up to RESET_TIMEOUT_S), else a new one."""
        deadline = time.monotonic() + RESET_TIMEOUT_S
        with self._handed_back:
            while self._returning.get(node_id, 0) and not any(
                idle.node_id == node_id for idle in self._idle
            ):
                if not self._handed_back.wait(timeout=max(0.0, deadline - time.monotonic())):
                    break
            here = [idle for idle in self._idle if idle.node_id == node_id]
            if not here:
                return self.new_actor(node_id)
            started, _ = ray.wait([idle.started for idle in here], num_returns=len(here), timeout=0)
            done = {ref.hex() for ref in started}
            chosen = next((idle for idle in here if idle.started.hex() in done), here[0])
            self._idle.remove(chosen)
            return chosen.actor

    def started_count(self) -> int:
        """Idle actors whose process has started (benchmarks wait for a warm pool)."""
        with self._lock:
            refs = [idle.started for idle in self._idle]
        if not refs:
            return 0
        started, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return len(started)

    def give_back(self, actors: list[tuple[str, Any]]) -> None:
        """Reset (node id, actor) pairs of a cleanly ended job and keep up to `size`
        of them; an actor that does not reset in time, or beyond the bound, is killed.
        Ends their `expect_back`, whether kept or not."""
        resets = [actor.reset.remote() for _node, actor in actors]
        kept: list[_Idle] = []
        for (node_id, actor), ref in zip(actors, resets, strict=True):
            try:
                ray.get(ref, timeout=RESET_TIMEOUT_S)
            except Exception:
                log.warning("a warm actor did not reset; killing it", exc_info=True)
                _kill(actor)
                continue
            kept.append(_Idle(node_id, actor, time.monotonic(), ref))
        with self._handed_back:
            for node_id, _actor in actors:
                if self._returning.get(node_id, 0) > 0:
                    self._returning[node_id] -= 1
            self._idle += kept
            surplus = self._idle[: max(0, len(self._idle) - self.size)]
            del self._idle[: len(surplus)]
            self._handed_back.notify_all()
        for idle in surplus:
            _kill(idle.actor)

    def release_idle(self) -> int:
        """Kill the actors idle longer than `idle_seconds`; returns how many."""
        cutoff = time.monotonic() - self.idle_seconds
        with self._lock:
            stale = [idle for idle in self._idle if idle.since < cutoff]
            self._idle = [idle for idle in self._idle if idle.since >= cutoff]
        for idle in stale:
            _kill(idle.actor)
        return len(stale)

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)

    def report(self) -> dict[str, int]:
        """The bound, idle actors and how many of those have started (warmed up), for
        the dispatcher's report: an operator, or a benchmark, sees when jobs will find
        warm actors."""
        return {"size": self.size, "idle": self.idle_count(), "started": self.started_count()}

    def close(self) -> None:
        with self._handed_back:
            idle, self._idle = self._idle, []
            self._returning.clear()  # nobody waits for actors of a closed pool
            self._handed_back.notify_all()
        for entry in idle:
            _kill(entry.actor)


def _kill(actor: Any) -> None:
    with contextlib.suppress(Exception):  # already dead is fine
        ray.kill(actor, no_restart=True)
