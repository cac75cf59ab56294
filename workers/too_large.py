"""The queued jobs a dispatcher fails at its maintenance as too large for its cluster,
by its capacity window's rules (workers.capacity): a gang over the totals or a
bundle that fits no node (in SQL: service.store.unschedulable), or a gang its
claims passed over that no moment of the window's nodes held at once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.store.unschedulable import fitting_no_node, over_the_totals
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
    # Each reason says where its limit comes from: the totals' from their ceilings (or
    # the window), a node's or the nodes' from the nodes seen (a memory misfit named
    # LAGTRAIN_EMBEDDED_RAY_CPUS, a CPU ceiling, as its source: a review).
    over = over_the_totals(session=session, total_cpus=limit.cpus, total_gpus=limit.gpus)
    judged = {job_id: f"{why} ({window.describe()})" for job_id, why in over.items()}
    on_nodes = fitting_no_node(session=session, nodes=window.nodes())
    for job in passed_over.to_judge():
        if job.job_id not in on_nodes and (why := window.never_placed(job)):
            on_nodes[job.job_id] = why
    for job_id, why in on_nodes.items():
        judged.setdefault(job_id, f"{why} ({window.describe_nodes()})")
    return judged
