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
(service.store.cluster_capacity), and the claim passes over a job whose bundles do
not fit the free nodes all at once (`packs`; in SQL first, each bundle against the
most free on one node: service.store.node_fit_sql). A gang Ray's own search did not
place is pinned where `placement` says (workers.ray_runtime.place_gang).

A node is its Ray totals (or what it has free): CPU, GPU and `memory` (bytes, what
Ray lets bundles reserve). For the rules, only the shapes matter, not which node is
which (`maximal` keeps those no other node covers); `placement` answers with indices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.schemas.gang import COORDINATOR_BUNDLE, Bundle, reserved_bytes

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

    def after(self, bundle: Bundle) -> NodeShape | None:
        """What is left once `bundle` is placed here; None when it does not fit."""
        if not self.holds(bundle):
            return None
        return NodeShape(
            self.cpus - bundle.get("CPU", 0.0),
            self.gpus - bundle.get("GPU", 0.0),
            self.memory - bundle.get("memory", 0.0),
        )

    def copies(self, bundle: Bundle, most: int) -> int:
        """How many copies of `bundle` fit here at once, at most `most` (a bundle that
        asks for nothing fits any number)."""
        fits = most
        for amount, has in (
            (bundle.get("CPU", 0.0), self.cpus),
            (bundle.get("GPU", 0.0), self.gpus),
            (bundle.get("memory", 0.0), self.memory),
        ):
            if amount > 0:
                fits = min(fits, int((has + RESOURCE_EPSILON) // amount))
        return max(fits, 0)

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


@dataclass(frozen=True)
class ClusterRoom:
    """What a cluster could free for the job a claim holds room for, which that job
    must fit (service.store.claim_candidate): CPUs and GPUs, and what each live node
    could hold (None: not judged per node); `unplaceable`: queued jobs known not to
    fit those nodes at once (`unplaceable_in`), which hold nothing."""

    cpus: float
    gpus: float
    nodes: tuple[NodeShape, ...] | None = None
    unplaceable: tuple[int, ...] = ()

    def report(self) -> dict[str, Any]:
        """As a dispatcher's report writes it ("room": explain judges by it)."""
        nodes = None if self.nodes is None else [node.report() for node in self.nodes]
        return {
            "CPU": self.cpus,
            "GPU": self.gpus,
            "nodes": nodes,
            "unplaceable": list(self.unplaceable),
        }

    @classmethod
    def from_report(cls, room: Mapping[str, Any]) -> ClusterRoom:
        nodes = room.get("nodes")
        unplaceable = room.get("unplaceable")
        return cls(
            float(room.get("CPU", 0.0)),
            float(room.get("GPU", 0.0)),
            None if not isinstance(nodes, list) else tuple(map(NodeShape.from_report, nodes)),
            tuple(int(i) for i in unplaceable) if isinstance(unplaceable, list) else (),
        )


def unplaceable_in(
    room: ClusterRoom | None, free_nodes: tuple[NodeShape, ...] | None, passed_over: Iterable[int]
) -> tuple[int, ...]:
    """Of the jobs a claim passed over on `free_nodes` (their gangs do not fit those
    nodes at once: node_fit.packs), those that cannot hold `room` either: all of them
    when the room is those free nodes (the dispatcher has no gang of its own left to
    free), none otherwise. SQL's hold tests each bundle against the node with the most
    of each resource only; a gang those tests pass but no packing fits held the
    cluster idle for as long as something outside the dispatcher held the rest (a
    review: two 8-CPU nodes with 3 CPUs held outside each, a gang of 3 x 3 + 1)."""
    if room is None or room.nodes is None or free_nodes is None:
        return ()
    return tuple(passed_over) if sorted(room.nodes) == sorted(free_nodes) else ()


@dataclass(frozen=True)
class PassedOver:
    """A queued job a claim skipped: its gang fits the free resources summed, and
    each bundle some node, but not all its bundles on the free nodes at once."""

    job_id: int
    bundles: dict[str, Bundle]
    workers: int


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
    different nodes, perhaps): a bundle above it fits no node now (the claim's test
    in SQL; below it, `packs` decides). Nothing for no node."""
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
    """A stored job's two bundle kinds (gang.gang_bundles' coordinator and replica),
    the memory figures the cost model's estimates (reserved with the process's base).
    Unknown parts count as nothing: a job stored before they were (migrations 0007,
    0014) is judged by what is known, never failed for what is not."""
    coordinator = dict(COORDINATOR_BUNDLE)
    coordinator["memory"] = _reserved(coordinator_memory)
    replica = {
        "CPU": float(replica_cpus or 0.0),
        "GPU": float(replica_gpus or 0.0),
        "memory": _reserved(replica_memory),
    }
    return {"coordinator": coordinator, "replica": replica}


def _reserved(estimate: float | None) -> float:
    return 0.0 if estimate is None else reserved_bytes(estimate)


def packs(bundles: dict[str, Bundle], workers: int, nodes: Iterable[NodeShape]) -> bool:
    """Whether the whole gang — the coordinator's bundle and `workers` replicas' —
    fits on `nodes` at once, each bundle on one node. Three nodes with 3 GPUs free
    hold 9 GPUs but only three replicas of 2 GPUs: the sums, and each bundle against
    the most free on one node, say a gang of four fits; Ray could not place it."""
    return replicas_beside_coordinator(bundles, workers, nodes) >= workers


def replicas_beside_coordinator(
    bundles: dict[str, Bundle], workers: int, nodes: Iterable[NodeShape]
) -> int:
    """How many of the `workers` replicas fit on `nodes` beside the coordinator; 0
    where the coordinator fits no node. Exact, not a heuristic: the replicas are
    alike, so a node holds as many as its scarcest resource allows whatever the
    others hold, and only the coordinator's place is a choice (each node it fits
    on is tried)."""
    nodes = tuple(nodes)
    replica = bundles["replica"]
    room = [node.copies(replica, workers) for node in nodes]
    total = sum(room)
    best = 0
    for node, here in zip(nodes, room, strict=True):
        rest = node.after(bundles["coordinator"])
        if rest is not None:
            best = max(best, min(workers, total - here + rest.copies(replica, workers)))
    return best


def never_together(
    bundles: dict[str, Bundle], workers: int, node_sets: Iterable[Sequence[NodeShape]]
) -> str | None:
    """Why no one of `node_sets` (each a set of nodes the cluster had at one moment)
    could hold the whole gang at once, or None: one could, or none is known (an
    empty set is an unread one). The dispatcher's words for such a job's failure,
    and the submit's for its 422."""
    known = [nodes for nodes in node_sets if nodes]
    if not known:
        return None
    most = max(replicas_beside_coordinator(bundles, workers, nodes) for nodes in known)
    if most >= workers:
        return None
    return (
        f"the gang's {workers} replicas of {describe(bundles['replica'])} each and its "
        f"coordinator's {describe(bundles['coordinator'])} fit no set of the cluster's "
        f"nodes at once (Ray places each bundle on one node): {most} of the replicas "
        "fit beside the coordinator at most"
    )


def placement(
    bundles: dict[str, Bundle], workers: int, nodes: Sequence[NodeShape]
) -> list[int] | None:
    """A node (its index in `nodes`) for the coordinator, then for each replica, such
    that all fit at once; None when none does (`packs`). Of the coordinator's
    possible nodes, the one whose gang spans the fewest nodes, replicas going first
    beside it, then to the nodes that hold the most: Ray's PACK strategy wants the
    same, but its greedy search can miss a placement that exists (two nodes of 4 and
    3 CPUs, replicas of 2: the coordinator must go on the smaller one), so a gang it
    did not place is pinned where this says (workers.ray_runtime.place_gang)."""
    coordinator, replica = bundles["coordinator"], bundles["replica"]
    best: list[int] | None = None
    for host, node in enumerate(nodes):
        rest = node.after(coordinator)
        if rest is None:
            continue
        room = [n.copies(replica, workers) for n in nodes]
        room[host] = rest.copies(replica, workers)
        if sum(room) < workers:
            continue
        others = sorted((i for i in range(len(nodes)) if i != host), key=lambda i: -room[i])
        chosen, left = [host], workers
        for index in [host, *others]:
            take = min(room[index], left)
            chosen += [index] * take
            left -= take
        if best is None or len(set(chosen)) < len(set(best)):
            best = chosen
    return best


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
