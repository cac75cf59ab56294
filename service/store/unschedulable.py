"""Queued jobs that can never run on a cluster: a gang larger than its totals, or a
bundle that no node holds (service.schemas.node_fit). The dispatcher fails them at
its maintenance (workers.dispatcher), once it has watched its capacity window."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.schemas.node_fit import RESOURCE_EPSILON, NodeShape, job_bundles, misfit
from service.store.models import Job, JobStatus, table_of
from service.store.node_fit_sql import fits_no_node


def unschedulable_jobs(
    *,
    session: Session,
    total_cpus: float,
    total_gpus: float,
    nodes: tuple[NodeShape, ...] = (),
) -> dict[int, str]:
    """{job id: why} for the queued jobs whose whole gang needs more than `total_*`,
    or one of whose bundles fits none of `nodes` (no node judging when empty)."""
    reasons = over_the_totals(session=session, total_cpus=total_cpus, total_gpus=total_gpus)
    for job_id, why in fitting_no_node(session=session, nodes=nodes).items():
        reasons.setdefault(job_id, why)
    return reasons


def over_the_totals(*, session: Session, total_cpus: float, total_gpus: float) -> dict[int, str]:
    """{job id: why} for the queued jobs whose whole gang needs more than `total_*`."""
    too_large = session.execute(
        select(Job.id, Job.cpus_required, Job.gpus_required).where(
            Job.status == JobStatus.QUEUED.value,
            or_(
                Job.cpus_required > total_cpus + RESOURCE_EPSILON,
                Job.gpus_required > total_gpus + RESOURCE_EPSILON,
            ),
        )
    )
    return {
        job_id: (
            f"the gang (its replicas and the coordinator's own bundle) needs {cpus:g} CPU and"
            f" {gpus:g} GPU; the whole Ray cluster has {total_cpus:g} CPU and {total_gpus:g} GPU"
        )
        for job_id, cpus, gpus in too_large
    }


def fitting_no_node(*, session: Session, nodes: tuple[NodeShape, ...]) -> dict[int, str]:
    """{job id: why} for the queued jobs one of whose bundles fits none of `nodes`
    ({} when none are known: nothing judged)."""
    if not nodes:
        return {}
    jobs = table_of(Job)
    misfits = session.execute(
        select(
            jobs.c.id,
            jobs.c.replica_cpus,
            jobs.c.replica_gpus,
            jobs.c.replica_memory_bytes,
            jobs.c.coordinator_memory_bytes,
        ).where(jobs.c.status == JobStatus.QUEUED.value, fits_no_node(jobs, nodes))
    )
    reasons = {}
    for job_id, cpus, gpus, memory, coordinator_memory in misfits:
        bundles = job_bundles(
            replica_cpus=cpus,
            replica_gpus=gpus,
            replica_memory=memory,
            coordinator_memory=coordinator_memory,
        )
        # misfit says which bundle (the same rule in Python: tests/store/test_node_fit.py).
        if why := misfit(bundles, nodes):
            reasons[job_id] = why
    return reasons
