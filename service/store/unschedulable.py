"""Queued jobs that can never run on a cluster: a gang larger than its totals, or a
bundle that no node holds (service.schemas.node_fit). The dispatcher fails them at
its maintenance (workers.dispatcher), once it has watched its capacity window."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.orm import Session

from service.schemas.gang import COORDINATOR_BUNDLE
from service.schemas.node_fit import RESOURCE_EPSILON, NodeShape, job_bundles, misfit
from service.store.models import Job, JobStatus


def unschedulable_jobs(
    *, session: Session, total_cpus: float, total_gpus: float, nodes: tuple[NodeShape, ...]
) -> dict[int, str]:
    """{job id: why} for the queued jobs whose whole gang needs more than `total_*`,
    or one of whose bundles fits none of `nodes` (no node judging when empty)."""
    queued = Job.status == JobStatus.QUEUED.value
    too_large = session.execute(
        select(Job.id, Job.cpus_required, Job.gpus_required).where(
            queued,
            or_(
                Job.cpus_required > total_cpus + RESOURCE_EPSILON,
                Job.gpus_required > total_gpus + RESOURCE_EPSILON,
            ),
        )
    )
    reasons = {
        job_id: (
            f"the gang (its replicas and the coordinator's own bundle) needs {cpus:g} CPU and"
            f" {gpus:g} GPU; the whole Ray cluster has {total_cpus:g} CPU and {total_gpus:g} GPU"
        )
        for job_id, cpus, gpus in too_large
    }
    if not nodes:
        return reasons
    candidates = session.execute(
        select(
            Job.id,
            Job.replica_cpus,
            Job.replica_gpus,
            Job.replica_memory_bytes,
            Job.coordinator_memory_bytes,
        ).where(queued, _may_fit_no_node(nodes))
    )
    for job_id, cpus, gpus, memory, coordinator_memory in candidates:
        bundles = job_bundles(
            replica_cpus=cpus,
            replica_gpus=gpus,
            replica_memory=memory,
            coordinator_memory=coordinator_memory,
        )
        if job_id not in reasons and (why := misfit(bundles, nodes)):
            reasons[job_id] = why
    return reasons


def _may_fit_no_node(nodes: tuple[NodeShape, ...]) -> ColumnElement[bool]:
    """A bound that reads few rows: a bundle within every node's least of each
    resource fits them all, so only a bundle above one of those minima may fit none
    (exact when the nodes have one shape; misfit decides the rest)."""
    least = NodeShape(
        min(n.cpus for n in nodes), min(n.gpus for n in nodes), min(n.memory for n in nodes)
    )
    if least.cpus + RESOURCE_EPSILON < COORDINATOR_BUNDLE["CPU"]:
        return true()  # some node cannot hold a coordinator: read every queued job
    return or_(
        func.coalesce(Job.replica_cpus, 0.0) > least.cpus + RESOURCE_EPSILON,
        func.coalesce(Job.replica_gpus, 0.0) > least.gpus + RESOURCE_EPSILON,
        func.coalesce(Job.replica_memory_bytes, 0) > least.memory + RESOURCE_EPSILON,
        func.coalesce(Job.coordinator_memory_bytes, 0) > least.memory + RESOURCE_EPSILON,
    )
