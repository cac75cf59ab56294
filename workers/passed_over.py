"""The jobs a dispatcher's claims passed over: their gangs fit the free resources
summed, and each bundle some node, but not all the bundles on the free nodes at once
(service.store.claim, node_fit.packs)."""

from __future__ import annotations

from service.schemas.node_fit import NodeShape, PassedOver


class PassedOverJobs:
    """Kept for two uses. The next claims leave these jobs out while the free nodes
    are as they were (whether a gang fits depends on nothing else), so a queue head
    of many such gangs is tested once, not at every claim, and the claim's cap
    (PASSED_OVER_MOST) holds the jobs behind them up for one claim only. And the next
    maintenance asks of each, once, whether any moment of the capacity window's nodes
    could hold it (CapacityWindow.never_placed)."""

    def __init__(self) -> None:
        self._free_nodes: tuple[NodeShape, ...] | None = None
        self._ids: list[int] = []  # passed over on `_free_nodes`
        self._to_judge: dict[int, PassedOver] = {}
        self._judging: dict[int, PassedOver] = {}  # taken by `to_judge`, not yet `judged`

    def known_for(self, free_nodes: tuple[NodeShape, ...] | None) -> tuple[int, ...]:
        """The jobs passed over on these free nodes, which the claim may leave out;
        what a claim passes over next (`add`) is kept for these nodes (in any order:
        Ray's per-node table need not list them alike from read to read)."""
        nodes = None if free_nodes is None else tuple(sorted(free_nodes))
        if nodes != self._free_nodes:
            self._free_nodes, self._ids = nodes, []
        return tuple(self._ids)

    def peek(self, free_nodes: tuple[NodeShape, ...] | None) -> tuple[int, ...]:
        """The jobs passed over on these free nodes, leaving what is kept as it is
        (the report's; `known_for` starts afresh on other nodes)."""
        nodes = None if free_nodes is None else tuple(sorted(free_nodes))
        return tuple(self._ids) if nodes == self._free_nodes else ()

    def add(self, job: PassedOver) -> None:
        self._ids.append(job.job_id)
        self._to_judge[job.job_id] = job

    def to_judge(self) -> list[PassedOver]:
        """The jobs passed over and not judged yet: call it only when they can be
        judged (a job left out untested is not passed over, nor added, again). They
        are kept until `judged()`: a maintenance that fails before its commit (a
        store blip) took them, and a gang no node set could ever hold waited forever
        on an idle cluster (a review)."""
        self._judging = dict(self._to_judge)
        return list(self._judging.values())

    def judged(self) -> None:
        """The judgement of what `to_judge` last returned is committed: each job is
        judged once."""
        for job_id, job in self._judging.items():
            if self._to_judge.get(job_id) is job:  # not passed over again since
                del self._to_judge[job_id]
        self._judging = {}
