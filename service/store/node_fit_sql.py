"""A stored job's bundles, in Python and in SQL, and the per-node tests written
with them in SQL: the claim's (each bundle fits the most free on one node) and the
too-large rule's (a bundle fits no node the dispatcher saw). Ray places each bundle
of a gang on one node (service.schemas.node_fit, whose `job_bundles` is the same
rule in Python: the coordinator's 1 CPU, unknown parts counting as nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, bindparam, false, func, literal, not_, or_

from service.schemas.gang import COORDINATOR_BUNDLE, PROCESS_BASE_BYTES, Bundle
from service.schemas.node_fit import RESOURCE_EPSILON, NodeShape, job_bundles
from service.store.models import Job

UNLIMITED = 2.0**62  # a bind that limits nothing
_Amount = ColumnElement[Any] | float


def bundles_of(job: Job) -> dict[str, Bundle]:
    """The job's coordinator and replica bundles, as the per-node rules judge them."""
    return job_bundles(
        replica_cpus=job.replica_cpus,
        replica_gpus=job.replica_gpus,
        replica_memory=job.replica_memory_bytes,
        coordinator_memory=job.coordinator_memory_bytes,
    )


def workers_of(job: Job) -> int | None:
    """The job's replica count, from its stored (resolved) spec; None if it has none."""
    workers = (job.spec.get("distributed") or {}).get("workers")
    return workers if isinstance(workers, int) else None


def bundle_columns(job: Any) -> dict[str, dict[str, ColumnElement[Any]]]:
    """`job`'s (a table or alias of jobs) coordinator and replica bundles."""
    return {
        "coordinator": {
            "CPU": literal(COORDINATOR_BUNDLE["CPU"], Float()),
            "memory": _reserved(job.c.coordinator_memory_bytes),
        },
        "replica": {
            "CPU": func.coalesce(job.c.replica_cpus, 0.0),
            "GPU": func.coalesce(job.c.replica_gpus, 0.0),
            "memory": _reserved(job.c.replica_memory_bytes),
        },
    }


def _reserved(estimate: ColumnElement[Any]) -> ColumnElement[Any]:
    """gang.reserved_bytes in SQL: the estimate and the process's base; an unknown
    estimate (NULL: a job from before migration 0007) reserves nothing."""
    return func.coalesce(estimate + PROCESS_BASE_BYTES, 0)


def _holds(
    node: Mapping[str, _Amount], bundle: dict[str, ColumnElement[Any]]
) -> ColumnElement[bool]:
    return and_(*(amount <= node[kind] + RESOURCE_EPSILON for kind, amount in bundle.items()))


def fits_free_node(job: Any, binds: str = "node_free") -> list[ColumnElement[bool]]:
    """Each of the job's bundles fits the most free on one node (:node_free_*,
    node_fit.most_free): a gang whose summed resources are free but spread thinner
    (one GPU free on each of four nodes, two per replica) would wait at placement,
    its attempt at stake. Necessary, not sufficient: the maxima may be on different
    nodes. `binds`: the parameters' prefix (the room hold judges nodes' totals)."""
    free: dict[str, _Amount] = {
        kind: bindparam(f"{binds}_{kind.lower()}", type_=Float())
        for kind in ("CPU", "GPU", "memory")
    }
    return [_holds(free, bundle) for bundle in bundle_columns(job).values()]


def fits_no_node(job: Any, nodes: tuple[NodeShape, ...]) -> ColumnElement[bool]:
    """One of the job's bundles fits none of `nodes` (never true with none)."""
    if not nodes:
        return false()
    shapes = [node.report() for node in nodes]
    return or_(
        *(
            not_(or_(*(_holds(shape, bundle) for shape in shapes)))
            for bundle in bundle_columns(job).values()
        )
    )


def free_node_params(free_node: NodeShape | None, binds: str = "node_free") -> dict[str, float]:
    """`fits_free_node`'s binds; None: nothing judged per node."""
    if free_node is None:
        return dict.fromkeys((f"{binds}_cpu", f"{binds}_gpu", f"{binds}_memory"), UNLIMITED)
    return {
        f"{binds}_cpu": free_node.cpus,
        f"{binds}_gpu": free_node.gpus,
        f"{binds}_memory": free_node.memory,
    }
