"""The sets of nodes a dispatcher's capacity window saw, as its report writes them
("node_sets": each node shape with how many nodes have it) and as the submit reads
them back (service.store.resource_reasons.never_together_on) to refuse a gang no set
of nodes could hold at once."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from service.schemas.node_fit import RESOURCE_EPSILON, NodeShape

# A node's memory in a report's "node_sets" is rounded up to this: Ray's figure for
# alike machines differs by megabytes, and unrounded they would not fold into one
# shape. Up, not down, so the submit's refusal stays on the safe side: a gang that
# fits a node's real memory is never refused for the rounding (one that fits only
# the rounded figure is failed by the dispatcher, which judges the real one).
COUNTED_MEMORY_STEP = float(1 << 30)


def counted(nodes: Iterable[NodeShape], *, memory: bool = True) -> list[dict[str, float]]:
    """A set of nodes by shape (CPU, GPU and memory rounded up to a whole GiB), each
    with how many nodes have it, as a dispatcher's report writes it ("node_sets").
    Until 2026-12-07 memory was left out (the submit judged the gang's CPUs and
    GPUs only, so a gang of many small processes no node set held by memory was
    accepted and failed after the dispatcher's capacity window). `memory=False`:
    by CPU and GPU alone (fewer shapes, read as memory unknown: `counts_memory`)."""
    shapes: dict[tuple[float, float, float], int] = {}
    for node in nodes:
        key = (node.cpus, node.gpus, _rounded_up(node.memory) if memory else -1.0)
        shapes[key] = shapes.get(key, 0) + 1
    return [
        {"CPU": c, "GPU": g, **({"memory": m} if memory else {}), "count": n}
        for (c, g, m), n in sorted(shapes.items())
    ]


def _rounded_up(memory: float) -> float:
    return math.ceil(memory / COUNTED_MEMORY_STEP - RESOURCE_EPSILON) * COUNTED_MEMORY_STEP


def counts_memory(report: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a set of `counted` nodes names their memory (a report of a dispatcher
    from before 2026-12-07 names CPU and GPU only: judge bundles without memory)."""
    return all("memory" in entry for entry in report)


def from_counted(report: Sequence[Mapping[str, Any]]) -> tuple[NodeShape, ...]:
    """`counted`'s inverse (memory 0 where the report names none: `counts_memory`)."""
    return tuple(
        NodeShape(
            float(entry.get("CPU", 0.0)),
            float(entry.get("GPU", 0.0)),
            float(entry.get("memory", 0.0)),
        )
        for entry in report
        for _ in range(int(entry.get("count", 0)))
    )
