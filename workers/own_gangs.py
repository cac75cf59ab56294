"""The resources a dispatcher's own gangs hold, and on which nodes where Ray's
placement-group table says: what the room a hold counts on may add to what is free
(workers.capacity.CapacityWindow.room)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from service.schemas.gang import Bundle, GangMemory, gang_bundles
from service.schemas.node_fit import NodeShape
from service.schemas.resolved import ResolvedSpec

# How long an ended gang still counts: Ray's free figures show a removed placement
# group a moment later. Counted as free at once, its CPUs read as held outside the
# dispatcher for that moment, the room shrank below a held gang's need, the hold
# lapsed, and a small job took the room (the end-to-end test saw it).
ENDED_COUNT_SECONDS = 10.0


@dataclass(frozen=True)
class OwnGang:
    """A gang's CPUs, GPUs and memory in all, and what it holds on each node by node
    id where its placement is known (empty: not yet placed, or Ray's table did not
    say — it may be on any node)."""

    cpus: float
    gpus: float
    memory: float = 0.0
    on_nodes: Mapping[str, NodeShape] = field(default_factory=dict)


def held_by(bundles: list[Bundle]) -> NodeShape:
    """What `bundles` hold together, as a node shape (CPUs, GPUs, memory)."""
    return held_together(map(NodeShape.from_report, bundles))


def held_together(held: Iterable[OwnGang | NodeShape]) -> NodeShape:
    """The CPUs, GPUs and memory of gangs (or of what they hold on a node) summed."""
    shapes = [NodeShape(h.cpus, h.gpus, h.memory) for h in held]
    return NodeShape(
        sum(s.cpus for s in shapes), sum(s.gpus for s in shapes), sum(s.memory for s in shapes)
    )


def own_gang(
    spec: ResolvedSpec, memory: GangMemory | None, on_nodes: Mapping[str, NodeShape] | None
) -> OwnGang:
    held = held_by(gang_bundles(spec, memory))
    return OwnGang(held.cpus, held.gpus, held.memory, dict(on_nodes or {}))


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
