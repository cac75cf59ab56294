"""Which jobs cannot hold a cluster's room because their gangs pack on no set of its
nodes (service.store.claim_candidate's `held_job` tests each bundle against the node
with the most of each resource only): asked by the dispatcher at each maintenance
(workers.held_room), named in the room it claims and reports by (ClusterRoom.unplaceable)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy.orm import Session

from service.schemas.node_fit import ClusterRoom, NodeShape, packs
from service.schemas.quota import QuotaDefaults
from service.store.claim_candidate import held_jobs
from service.store.models import Job
from service.store.node_fit_sql import bundles_of, workers_of

# How many would-be held jobs one maintenance tests for packing anew, and how many it
# keeps naming from the turns before (each tested again: holds_that_cannot_pack).
PACKING_TESTS_MOST, UNPACKABLE_KEPT_MOST = 4, 64


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
    running (a review). `known`: those named at the turns before, each tested again
    and kept while it still packs nowhere, so that a queue of many such gangs is
    worked through PACKING_TESTS_MOST new ones a turn (a review: the fifth of five
    held for ever). The dispatcher asks at each maintenance and names them in the
    room (ClusterRoom.unplaceable)."""
    if room.nodes is None:
        return ()
    nodes = room.nodes
    kept = [job_id for job_id in known if not _packs(session, job_id, nodes)]
    found = kept[-UNPACKABLE_KEPT_MOST:]
    for _ in range(PACKING_TESTS_MOST):
        trial = replace(room, unplaceable=(*room.unplaceable, *found))
        (held,) = held_jobs(
            session=session,
            rooms=[trial],
            hold_room_after=hold_room_after,
            quota_defaults=quota_defaults,
            fair_share_window=fair_share_window,
        )
        if held is None or _packs(session, held.id, nodes):
            break
        found.append(held.id)
    return tuple(found)


def _packs(session: Session, job_id: int, nodes: tuple[NodeShape, ...]) -> bool:
    """Whether the job's gang packs on `nodes`; true where it cannot be judged (gone,
    or a spec without its worker count): such a job is not named."""
    job = session.get(Job, job_id)
    workers = None if job is None else workers_of(job)
    return job is None or workers is None or packs(bundles_of(job), workers, nodes)
