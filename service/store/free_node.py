"""The claim's per-node test: Ray places each bundle of a gang on one node, so a
gang whose summed resources are free may still not be placeable now
(service.schemas.node_fit)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, bindparam, func

from service.schemas.gang import COORDINATOR_BUNDLE
from service.schemas.node_fit import RESOURCE_EPSILON, NodeShape

_UNLIMITED = 2.0**62


def fits_free_node(job: Any) -> list[ColumnElement[bool]]:
    """Each of the job's bundles fits the most free on one node (:node_free_*,
    node_fit.most_free): Ray places a bundle on one node, so a gang whose summed
    resources are free but spread thinner (one GPU free on each of four nodes, two
    per replica) would wait at placement, its attempt at stake. Necessary, not
    sufficient: the maxima may be on different nodes."""
    cpus = bindparam("node_free_cpus", type_=Float()) + RESOURCE_EPSILON
    gpus = bindparam("node_free_gpus", type_=Float()) + RESOURCE_EPSILON
    memory = bindparam("node_free_memory", type_=Float()) + RESOURCE_EPSILON
    return [
        cpus >= COORDINATOR_BUNDLE["CPU"],
        func.coalesce(job.c.replica_cpus, 0.0) <= cpus,
        func.coalesce(job.c.replica_gpus, 0.0) <= gpus,
        func.coalesce(job.c.replica_memory_bytes, 0) <= memory,
        func.coalesce(job.c.coordinator_memory_bytes, 0) <= memory,
    ]


def free_node_params(free_node: NodeShape | None) -> dict[str, float]:
    """`fits_free_node`'s binds; None: nothing judged per node."""
    if free_node is None:
        return dict.fromkeys(("node_free_cpus", "node_free_gpus", "node_free_memory"), _UNLIMITED)
    return {
        "node_free_cpus": free_node.cpus,
        "node_free_gpus": free_node.gpus,
        "node_free_memory": free_node.memory,
    }
