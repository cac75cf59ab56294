"""Whether a gang's bundles fit a Ray cluster's nodes, not only its totals.

Ray places each bundle of a placement group (service.schemas.gang) on one node. A
gang whose summed CPUs and GPUs fit the cluster may still fit no node: replicas
asking for 2 GPUs each on nodes of 1 GPU, or for more memory than any node has.
Judged only by the sums, such a job was claimed, its placement group stayed
pending until `gang_ready_seconds`, and it failed "could not place the gang" once
per attempt, each attempt also holding up the queue behind it (a review,
2026-12-06). The dispatcher now fails it, naming the bundle that fits no node, once
it has watched its capacity window (service.store.unschedulable, workers.capacity),
the submit refuses it while every live dispatcher reports nodes and none holds it
(service.store.cluster_capacity), and the claim skips a job one of whose bundles
exceeds the most free on one node (service.store.node_fit_sql, the same rules in SQL).

A node is its Ray totals: CPU, GPU and `memory` (bytes, what Ray lets bundles
reserve). Only the shapes matter here, not which node is which: `maximal` keeps
those no other node covers, a handful on any cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service.schemas.gang import COORDINATOR_BUNDLE, Bundle

# Float slack for every fit test (the claim's, too), so that e.g. 3 x 0.1 CPUs fits
# into 0.3 free CPUs.
RESOURCE_EPSILON = 1e-9


@dataclass(frozen=True, order=True)
class NodeShape:
    cpus: float
    gpus: float
    memory: float  # bytes

    def holds(self, bundle: Bundle) -> bool:
        return (
            bundle.get("CPU", 0.0) <= self.cpus + RESOURCE_EPSILON
            and bundle.get("GPU", 0.0) <= self.gpus + RESOURCE_EPSILON
            and bundle.get("memory", 0.0) <= self.memory + RESOURCE_EPSILON
        )

    def covers(self, other: NodeShape) -> bool:
        return self.cpus >= other.cpus and self.gpus >= other.gpus and self.memory >= other.memory

    def report(self) -> dict[str, float]:
        """As a dispatcher's report writes it (Ray's resource names)."""
        return {"CPU": self.cpus, "GPU": self.gpus, "memory": self.memory}

    @classmethod
    def from_report(cls, resources: Mapping[str, Any]) -> NodeShape:
        return cls(
            float(resources.get("CPU", 0.0)),
            float(resources.get("GPU", 0.0)),
            float(resources.get("memory", 0.0)),
        )


def maximal(shapes: Iterable[NodeShape]) -> tuple[NodeShape, ...]:
    """The shapes no other one covers, largest first: a bundle fits one of `shapes`
    exactly when it fits one of these."""
    distinct = sorted(set(shapes), reverse=True)
    kept: list[NodeShape] = []
    for shape in distinct:
        if not any(k.covers(shape) for k in kept):
            kept.append(shape)
    return tuple(kept)


def most_free(shapes: Iterable[NodeShape]) -> NodeShape:
    """The most of each resource free on one node, resource by resource (from
    different nodes, perhaps): a bundle above it fits no node now (the claim's test;
    below it, it may still not, and waits at placement as before). Nothing for no
    node."""
    shapes = tuple(shapes)
    return NodeShape(
        max((s.cpus for s in shapes), default=0.0),
        max((s.gpus for s in shapes), default=0.0),
        max((s.memory for s in shapes), default=0.0),
    )


def job_bundles(
    *,
    replica_cpus: float | None,
    replica_gpus: float | None,
    replica_memory: float | None,
    coordinator_memory: float | None,
) -> dict[str, Bundle]:
    """A stored job's two bundle kinds (gang.gang_bundles' coordinator and replica).
    Unknown parts count as nothing: a job stored before they were (migrations 0007,
    0014) is judged by what is known, never failed for what is not."""
    coordinator = dict(COORDINATOR_BUNDLE)
    coordinator["memory"] = float(coordinator_memory or 0.0)
    replica = {
        "CPU": float(replica_cpus or 0.0),
        "GPU": float(replica_gpus or 0.0),
        "memory": float(replica_memory or 0.0),
    }
    return {"coordinator": coordinator, "replica": replica}


def misfit(bundles: dict[str, Bundle], nodes: Iterable[NodeShape]) -> str | None:
    """Why no node could hold one of `bundles` (the first such, named), or None when
    every bundle fits some node. With no node known, None: nothing to judge by."""
    nodes = tuple(nodes)
    if not nodes:
        return None
    for name, bundle in bundles.items():
        if not any(node.holds(bundle) for node in nodes):
            largest = ", ".join(describe(n.report()) for n in maximal(nodes))
            return (
                f"a {name}'s bundle needs {describe(bundle)} on one node; "
                f"the largest nodes have {largest}"
            )
    return None


def describe(resources: dict[str, float]) -> str:
    """What a user asked for, or a node has: "4 CPU, 2 GPU, 1.5 GiB memory"."""
    parts = [_memory(v) if k == "memory" else f"{v:g} {k}" for k, v in resources.items() if v]
    return ", ".join(parts) or "nothing"


def _memory(size: float) -> str:
    unit, scale = ("GiB", 2**30) if size >= 2**30 else ("MiB", 2**20)
    return f"{size / scale:.3g} {unit} memory"
