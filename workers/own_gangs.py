"""The CPUs and GPUs a dispatcher's own gangs hold, and on which nodes where Ray's
placement-group table says: what the room a hold counts on may add to what is free
(workers.capacity.CapacityWindow.room)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from service.schemas.gang import gang_totals
from service.schemas.resolved import ResolvedSpec

# How long an ended gang still counts: Ray's free figures show a removed placement
# group a moment later. Counted as free at once, its CPUs read as held outside the
# dispatcher for that moment, the room shrank below a held gang's need, the hold
# lapsed, and a small job took the room (the end-to-end test saw it).
ENDED_COUNT_SECONDS = 10.0


@dataclass(frozen=True)
class OwnGang:
    """A gang's (CPUs, GPUs) in all, and per node id where its placement is known
    (empty: not yet placed, or Ray's table did not say — it may be on any node)."""

    cpus: float
    gpus: float
    on_nodes: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def own_gang(spec: ResolvedSpec, on_nodes: Mapping[str, tuple[float, float]] | None) -> OwnGang:
    cpus, gpus = gang_totals(spec)
    return OwnGang(cpus, gpus, dict(on_nodes or {}))


class OwnGangs:
    """Each running gang, and each ended one for ENDED_COUNT_SECONDS; thread-safe (a
    job's thread reports its end)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ended: list[tuple[float, OwnGang]] = []

    def ended(self, gang: OwnGang) -> None:
        with self._lock:
            self._ended.append((self._clock() + ENDED_COUNT_SECONDS, gang))

    def held(self, running: list[OwnGang]) -> list[OwnGang]:
        """The gangs of `running` (the jobs running now) and those ended lately."""
        now = self._clock()
        with self._lock:
            self._ended = [(until, gang) for until, gang in self._ended if until > now]
            lately = [gang for _until, gang in self._ended]
        return running + lately
