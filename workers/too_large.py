"""The queued jobs a dispatcher fails at its maintenance as too large for its cluster,
by its capacity window's rules (workers.capacity): a gang over the totals or a
bundle that fits no node (in SQL: service.store.unschedulable), or a gang its
claims passed over that no moment of the window's nodes held at once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.store.unschedulable import unschedulable_jobs
from workers.capacity import CapacityWindow
from workers.passed_over import PassedOverJobs


def too_large_jobs(
    *, session: Session, window: CapacityWindow, passed_over: PassedOverJobs
) -> dict[int, str]:
    """{job id: why, and where the limit comes from} for the queued jobs the cluster
    can never run, by the window's rules: a gang over its totals or a bundle that
    fits no node (service.store.unschedulable), or a gang the claims passed over that
    no moment of its nodes held at once. {} until the window is settled (its rule
    not read whole yet): the passed-over jobs then wait to be judged."""
    if not window.settled():
        return {}
    limit = window.largest()
    judged = unschedulable_jobs(
        session=session, total_cpus=limit.cpus, total_gpus=limit.gpus, nodes=window.nodes()
    )
    for job in passed_over.to_judge():
        if job.job_id not in judged and (why := window.never_placed(job)):
            judged[job.job_id] = why
    where = window.describe()
    return {job_id: f"{why} ({where})" for job_id, why in judged.items()}
