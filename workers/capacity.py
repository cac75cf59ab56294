"""The capacity a dispatcher judges queued jobs against.

`ray.cluster_resources()` drops while a node reboots or the Ray head restarts; a
queued job that does not fit at that instant is not unschedulable, it waits. A job
fails as unschedulable only when it exceeds the largest total the cluster has shown
over the last `window_seconds` or, when the operator set one, the ceiling (the size
the cluster can reach, e.g. an autoscaler's maximum): the ceiling replaces the
observed figure for that resource.

A dispatcher that has watched its cluster for less than the window has not seen
what the rule reads: it fails no job as unschedulable until it has (unless both
ceilings are set). After a Ray head restart every `lagtrain worker` restarts, and
the first to reconnect saw only the nodes that had rejoined: judged at once, it
failed every queued job whose gang spans the rest, for good.

Nodes are judged the same way: a bundle (one replica's, or the coordinator's) fails
a job only when it fits no node the window has seen (service.schemas.node_fit). A
ceiling above what the window saw says the cluster may grow, but not by which nodes
(an autoscaler may add larger ones): then nothing is judged by nodes, neither the
failure nor the claim's per-node test (a gang the claim skipped would never ask Ray
for its placement, so an autoscaler would never see the demand). A ceiling within
what was seen (`server --embedded`'s: its local Ray's totals) leaves nodes judged.

A gang whose bundles each fit some node may still fit no set of nodes at once (two
nodes of 5 CPUs hold one replica of 3 CPUs each, not three): the claim passes such
a job over while the free nodes cannot hold it (service.store.claim), and the
dispatcher fails it once no moment of the window's nodes could (`never_placed`);
its report's "node_sets" let the submit refuse it (service.store.cluster_capacity).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from service.schemas.node_counts import counted
from service.schemas.node_fit import (
    ClusterRoom,
    NodeShape,
    PassedOver,
    maximal,
    most_free,
    never_together,
)
from workers.own_gangs import OwnGang, held_together

# The most shapes (a CPU/GPU/memory shape and its count, summed over the window's node
# sets) a report lists in "node_sets": a lab's cluster has a few; one that changes
# often would write a long report every heartbeat.
NODE_SETS_MOST = 64


# What a failure's reason names as the source of each ceiling: the operator's
# settings, unless the process set the ceiling itself (`server --embedded`, from its
# local Ray: workers.embedded.LOCAL_RAY_CEILINGS), where these would send a user to
# a setting nobody set.
OPERATOR_CEILINGS: Mapping[str, str] = {
    "CPU": "the operator's ceiling, LAGTRAIN_CAPACITY_CEILING_CPUS",
    "GPU": "the operator's ceiling, LAGTRAIN_CAPACITY_CEILING_GPUS",
}


@dataclass(frozen=True)
class Capacity:
    cpus: float
    gpus: float


class CapacityWindow:
    def __init__(
        self,
        window_seconds: float,
        *,
        ceiling_cpus: float | None = None,
        ceiling_gpus: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.ceiling_cpus = ceiling_cpus
        self.ceiling_gpus = ceiling_gpus
        # By resource ("CPU", "GPU"): what set its ceiling, for `describe`.
        self.ceiling_names = dict(OPERATOR_CEILINGS)
        self._clock = clock
        self._samples: deque[tuple[float, Capacity]] = deque()
        # Each distinct set of node shapes seen, and when last (the newest last): most
        # samples repeat the one before, and packing (`never_placed`) needs each whole
        # set, not only the maximal shapes.
        self._moments: dict[tuple[NodeShape, ...], float] = {}
        self._since: float | None = None  # the first observation
        self._newest_nodes: dict[str, NodeShape] = {}  # each node's totals, by node id

    def observe(
        self,
        cpus: float,
        gpus: float,
        nodes: Mapping[str, NodeShape] | tuple[NodeShape, ...] = (),
    ) -> None:
        """The cluster's totals now, and its live nodes' (by node id, where known)."""
        if not isinstance(nodes, Mapping):  # no ids: by position
            nodes = {f"#{index}": node for index, node in enumerate(nodes)}
        now = self._clock()
        if self._since is None:
            self._since = now
        self._samples.append((now, Capacity(cpus, gpus)))
        self._newest_nodes = dict(nodes)
        moment = tuple(sorted(nodes.values()))
        self._moments.pop(moment, None)
        self._moments[moment] = now
        # Keep the newest sample whatever its age: the window is never empty.
        while len(self._samples) > 1 and self._samples[0][0] < now - self.window_seconds:
            self._samples.popleft()
        for old, seen in list(self._moments.items())[:-1]:
            if seen < now - self.window_seconds:
                del self._moments[old]

    def settled(self) -> bool:
        """Whether `largest()` may fail a job: the window has been watched whole, or the
        operator's ceilings name both resources."""
        if self.ceiling_cpus is not None and self.ceiling_gpus is not None:
            return True
        return self._since is not None and self._clock() - self._since >= self.window_seconds

    def largest(self) -> Capacity:
        """The limit a queued job is judged against (the ceiling where set, else the
        largest total seen in the window)."""
        seen = self._seen()
        return Capacity(
            cpus=seen.cpus if self.ceiling_cpus is None else self.ceiling_cpus,
            gpus=seen.gpus if self.ceiling_gpus is None else self.ceiling_gpus,
        )

    def _seen(self) -> Capacity:
        """The largest totals of the window, per resource."""
        return Capacity(
            cpus=max((c.cpus for _, c in self._samples), default=0.0),
            gpus=max((c.gpus for _, c in self._samples), default=0.0),
        )

    def room(
        self,
        free: tuple[float, float],
        running: Sequence[OwnGang],
        free_nodes: Mapping[str, NodeShape] | None = None,
    ) -> ClusterRoom | None:
        """What the cluster could free for a job a claim holds room for, which that
        job must fit (service.store.claim_candidate): no more than what is `free`
        (CPUs, GPUs) plus what this dispatcher's `running` gangs hold, at most its
        newest totals. Not the window's largest: a job that needs the cluster to grow
        back would hold it idle meanwhile. Nor resources held outside this dispatcher
        (another Ray workload, another deployment, a leaked placement group): they may
        never come free, and a hold on them would stop the cluster for good (a
        review). Per node (`free_nodes`, by node id) the same: what it has free plus
        what the dispatcher's gangs hold on it, by Ray's placement-group table (a gang
        whose nodes are not known counts on every node), at most its totals — a node's
        GPUs held outside the dispatcher stay out of the room while its gangs hold
        CPUs only (a review saw a 2-GPU replica hold two half-taken GPU nodes for
        ever). None before the first observation."""
        if not self._samples:
            return None
        newest = self._samples[-1][1]
        own = held_together(running)
        cpus = min(newest.cpus, free[0] + own.cpus)
        gpus = min(newest.gpus, free[1] + own.gpus)
        nodes = self._room_nodes(free_nodes, running) if self.judges_nodes() else None
        return ClusterRoom(cpus, gpus, nodes or None)

    def _room_nodes(
        self, free_nodes: Mapping[str, NodeShape] | None, running: Sequence[OwnGang]
    ) -> tuple[NodeShape, ...] | None:
        if free_nodes is None:  # the per-node read failed: each node's totals at most
            return tuple(self._newest_nodes.values()) if running else None
        if not running:  # nothing of its own to free: what is free now
            return tuple(free_nodes.values())
        if not self._newest_nodes:  # the totals' read failed: judged by the sums
            return None
        anywhere = held_together(gang for gang in running if not gang.on_nodes)
        room = []
        for node_id, node in free_nodes.items():
            here = held_together(
                gang.on_nodes[node_id] for gang in running if node_id in gang.on_nodes
            )
            total = self._newest_nodes.get(node_id)
            if total is None:  # new since the totals were read: nothing of its own there
                room.append(node)
                continue
            room.append(
                NodeShape(
                    min(total.cpus, node.cpus + here.cpus + anywhere.cpus),
                    min(total.gpus, node.gpus + here.gpus + anywhere.gpus),
                    min(total.memory, node.memory + here.memory + anywhere.memory),
                )
            )
        return tuple(room)

    def judges_nodes(self) -> bool:
        """Whether bundles are judged by the nodes seen: not when a ceiling is above
        what the window saw of its resource (the cluster may grow by unknown nodes)."""
        seen = self._seen()
        return not (
            (self.ceiling_cpus is not None and self.ceiling_cpus > seen.cpus)
            or (self.ceiling_gpus is not None and self.ceiling_gpus > seen.gpus)
        )

    def nodes(self) -> tuple[NodeShape, ...]:
        """The node shapes a bundle is judged against: every node seen in the window
        (the maximal shapes); none (no judging) unless `judges_nodes()`."""
        if not self.judges_nodes():
            return ()
        return maximal(shape for moment in self._moments for shape in moment)

    def node_report(self, free: Mapping[str, NodeShape] | None) -> dict[str, object]:
        """For the dispatcher's report, where nodes are judged: what each node has free
        now and the most free on one (explain's tests) and, once the window is
        settled, the shapes a bundle is judged against (the submit's check).
        `free`: what each live node has free now; None when unknown."""
        if free is None or not self.judges_nodes():
            return {}
        report: dict[str, object] = {
            "free_node": most_free(free.values()).report(),
            "free_nodes": [shape.report() for shape in free.values()],
        }
        if self.settled():
            report["nodes"] = [shape.report() for shape in self.nodes()]
        if (sets := self.node_sets()) is not None:
            report["node_sets"] = sets
        return report

    def never_placed(self, job: PassedOver) -> str | None:
        """Why no moment of the window had nodes that could hold the whole gang at
        once (each bundle on one node), or None: it could, or nothing is judged by
        nodes (unsettled, or a ceiling above what was seen)."""
        if not (self.settled() and self.judges_nodes()):
            return None
        return never_together(job.bundles, job.workers, self._moments)

    def node_sets(self) -> list[list[dict[str, float]]] | None:
        """Each set of nodes the window saw (`never_placed`'s moments), by shape (CPU,
        GPU, memory) and count, for the submit's check (node_counts.counted); None when nothing
        is judged by nodes, or when there are more than NODE_SETS_MOST shapes to list
        (a cluster that changed often: the dispatcher still judges it). Over that by
        memory — alike machines whose Ray memory differs by more than a GiB split
        into several shapes — the sets are listed by CPU and GPU alone, as before
        memory was counted (the submit then judges them without memory)."""
        if not (self.settled() and self.judges_nodes()):
            return None
        moments = [moment for moment in self._moments if moment]
        for memory in (True, False):
            sets = [counted(moment, memory=memory) for moment in moments]
            if sets and sum(len(shapes) for shapes in sets) <= NODE_SETS_MOST:
                return sets
        return None

    def describe(self) -> str:
        """Where the limit comes from, for a failure's reason: each resource's ceiling
        named by what set it (`ceiling_names`), or the window where none is set."""
        seen = f"the most the Ray cluster showed in the last {self.window_seconds:g} s"
        cpus = seen if self.ceiling_cpus is None else self.ceiling_names["CPU"]
        gpus = seen if self.ceiling_gpus is None else self.ceiling_names["GPU"]
        return cpus if cpus == gpus else f"CPUs: {cpus}; GPUs: {gpus}"

    def describe_nodes(self) -> str:
        """Where a node's or a set of nodes' limit comes from, for a failure's reason:
        the nodes seen, whatever ceilings say of the totals (a memory misfit is no CPU
        ceiling's doing)."""
        return f"the nodes the Ray cluster showed in the last {self.window_seconds:g} s"
