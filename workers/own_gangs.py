"""The CPUs and GPUs a dispatcher's own gangs hold: what the room a hold counts on
may add to what is free (workers.capacity.CapacityWindow.room)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from service.schemas.gang import gang_totals
from service.schemas.resolved import ResolvedSpec

# How long an ended gang still counts: Ray's free figures show a removed placement
# group a moment later. Counted as free at once, its CPUs read as held outside the
# dispatcher for that moment, the room shrank below a held gang's need, the hold
# lapsed, and a small job took the room (the end-to-end test saw it).
ENDED_COUNT_SECONDS = 10.0


class OwnGangs:
    """Each running gang's (CPUs, GPUs), and each ended one's for ENDED_COUNT_SECONDS;
    thread-safe (a job's thread reports its end)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ended: list[tuple[float, tuple[float, float]]] = []

    def ended(self, spec: ResolvedSpec) -> None:
        with self._lock:
            self._ended.append((self._clock() + ENDED_COUNT_SECONDS, gang_totals(spec)))

    def held(self, running: list[ResolvedSpec]) -> list[tuple[float, float]]:
        """The gangs of `running` (the specs of the jobs running now) and those ended
        lately."""
        now = self._clock()
        with self._lock:
            self._ended = [(until, gang) for until, gang in self._ended if until > now]
            lately = [gang for _until, gang in self._ended]
        return [gang_totals(spec) for spec in running] + lately
