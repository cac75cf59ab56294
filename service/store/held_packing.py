"""Which jobs cannot hold a cluster's room because their gangs pack on no set of its
nodes (service.store.claim_candidate's `held_job` tests each bundle against the node
with the most of each resource only): asked by the dispatcher at each maintenance
(workers.held_room), named in the room it claims and reports by (ClusterRoom.unplaceable)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.schemas.node_fit import ClusterRoom, NodeShape, packs
from service.schemas.quota import QuotaDefaults
from service.store.claim_candidate import held_jobs
from service.store.models import Job, JobStatus
from service.store.node_fit_sql import bundles_of, workers_of

# How many would-be held jobs one maintenance tests for packing anew; those it named
# before are all tested again, in one read (only queued jobs can be, so no more).
PACKING_TESTS_MOST = 4


def holds_that_cannot_pack(
    *,
    session: Session,
    room: ClusterRoom,
    hold_room_after: timedelta,
    quota_defaults: QuotaDefaults,
    fair_share_window: timedelta,
    known: tuple[int, ...] = (),
) -> tuple[int, ...]:
    """The jobs that would hold `room` in turn whose gangs pack on no set of its nodes
    (node_fit.packs): `held_job` tests each bundle against the node with the most of
    each resource only, so a gang that packs nowhere — nodes partly held outside the
    dispatcher — held the cluster, for ever where the dispatcher's other gangs kept
    running (a review). `known`: those named at the turns before, each kept while it
    is queued and still packs nowhere, so a queue of many such gangs is worked
    through PACKING_TESTS_MOST new ones a turn (reviews: the fifth of five, then the
    69th of many, held for ever when the names were not all kept). Where the room's
    nodes are unknown, `known` as it is. The dispatcher asks at each maintenance and
    names them in the room (ClusterRoom.unplaceable)."""
    if room.nodes is None:
        return known
    nodes = room.nodes
    still_queued = session.scalars(
        select(Job).where(Job.id.in_(known), Job.status == JobStatus.QUEUED.value)
    )
    by_id = {job.id: job for job in still_queued}
    found = [i for i in known if i in by_id and not _packs(by_id[i], nodes)]
    for _ in range(PACKING_TESTS_MOST):
        trial = replace(room, unplaceable=(*room.unplaceable, *found))
        (held,) = held_jobs(
            session=session,
            rooms=[trial],
            hold_room_after=hold_room_after,
            quota_defaults=quota_defaults,
            fair_share_window=fair_share_window,
        )
        job = None if held is None else session.get(Job, held.id)
        if job is None or _packs(job, nodes):
            break
        found.append(job.id)
    return tuple(found)


def _packs(job: Job, nodes: tuple[NodeShape, ...]) -> bool:
    """Whether the job's gang packs on `nodes`; true where it cannot be judged (a spec
    without its worker count): such a job is not named."""
    workers = workers_of(job)
    return workers is None or packs(bundles_of(job), workers, nodes)
