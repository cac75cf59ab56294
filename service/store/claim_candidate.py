"""Which queued job a claim starts (`next_candidate`), and the job it holds room for
(`held_job`), from the claim order's expressions (service.store.queue_order).

Holding room bounds a wide gang's wait. The claim starts the first job in order that
fits what is free, so while jobs end one at a time, smaller jobs queued behind a gang
take each freed CPU and the gang may wait for ever (a review saw eleven start past
"position 1"). So among the jobs that have waited for room longer than
LAGTRAIN_HOLD_ROOM_AFTER_SECONDS and that this cluster could run, the first in the
claim order holds the cluster: a claim starts it, or a job that leaves free what it
waits for — for each resource it needs, the other job needs none or leaves at least
its need free (a CPU-only job passes a gang waiting for a GPU; judged by the sums, as
the claim's first test is), and, if it is the held job owner's, leaves their quota
room for both — or nothing. Before the wait, smaller jobs start past it
(a wide gang's short wait costs the cluster no idle CPUs). The wait counts from its
submit or, for a job that went back to the queue, from its last attempt's end. A job
its owner's quota holds back now, or that the cluster could not run (its `room`:
what the dispatcher could free for it, service.schemas.node_fit.ClusterRoom), holds
nothing: it would hold the cluster for a start that cannot come.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Float,
    ScalarSelect,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.schemas.node_fit import RESOURCE_EPSILON, ClusterRoom, most_free
from service.schemas.quota import QuotaDefaults
from service.store.db import db_now
from service.store.models import Job, JobAttempt, JobStatus, User, UtcDateTime, table_of
from service.store.node_fit_sql import (
    UNLIMITED,
    fits_free_node,
    free_node_params,
)
from service.store.queue_order import (
    FAIR_SHARE_SINCE,
    claim_order,
    ended_per_owner,
    fair_share,
    owner_enabled,
    quota,
    quota_params,
    recent_runs,
    running_per_owner,
    under_quota,
)


@dataclass(frozen=True)
class HeldJob:
    """The job a cluster holds room for, and what its gang needs (explain)."""

    id: int
    owner_id: int  # explain names the job only to its owner and admins
    cpus: float
    gpus: float


def next_candidate(
    since: ColumnElement[datetime], hold_since: ColumnElement[datetime]
) -> ScalarSelect[int]:
    """The id of the job the claim starts: queued, gang fits the free resources
    (:free_cpus, :free_gpus) and each bundle the most free on one node
    (`fits_free_node`), owner enabled and under quota (`under_quota`); first in
    `claim_order`; where room is held (`held_job`), that job or one that leaves free
    what it waits for; locked, skipping rows another claim holds (PostgreSQL).
    `since`: fair share's window start; `hold_since`: a job waiting since before it
    holds room.

    Quota and fair share read committed state, so claims take turns (claim.py's
    advisory lock on PostgreSQL, the write lock on SQLite): each sees the ones before."""
    candidate = table_of(Job).alias("candidate")
    users = table_of(User)
    usage = running_per_owner()
    ended = ended_per_owner(since)
    held = held_job(usage, ended, hold_since)
    return (
        select(candidate.c.id)
        .select_from(
            candidate.join(users, users.c.id == candidate.c.owner_id)
            .outerjoin(usage, usage.c.owner_id == candidate.c.owner_id)
            .outerjoin(held, true())  # none or one row
        )
        .where(
            candidate.c.status == JobStatus.QUEUED.value,
            candidate.c.cpus_required <= bindparam("free_cpus", type_=Float()) + RESOURCE_EPSILON,
            candidate.c.gpus_required <= bindparam("free_gpus", type_=Float()) + RESOURCE_EPSILON,
            *fits_free_node(candidate),
            # Jobs this claim passed over already (claim.py: their gangs do not fit the
            # free nodes at once).
            candidate.c.id.not_in(bindparam("passed_over", expanding=True)),
            owner_enabled(users),
            *under_quota(candidate, users, usage),
            # None held, this is the one, or it leaves free what that one waits for.
            or_(
                held.c.id.is_(None),
                candidate.c.id == held.c.id,
                and_(
                    *(_leaves(candidate, held, kind) for kind in ("cpus", "gpus")),
                    _leaves_its_quota(candidate, users, usage, held),
                ),
            ),
        )
        .order_by(
            # The held job first, when it fits: a job that only leaves it its room by
            # the sums, ahead of it in order, could take the node it fits now (a review).
            case((candidate.c.id == held.c.id, 0), else_=1),
            *claim_order(
                fair_share(recent_runs(usage, ended, candidate.c.owner_id), users.c.share_weight),
                candidate.c,
            ),
        )
        .limit(1)
        .with_for_update(skip_locked=True, of=candidate)
        .scalar_subquery()
    )


def held_job(usage: CTE, ended: CTE, hold_since: ColumnElement[datetime]) -> CTE:
    """(id, owner_id, cpus_required, gpus_required) of the job the claim holds room for, or no
    row (see the module docstring): of the queued jobs whose owner is enabled and
    under quota, whose gang fits the cluster's room (:room_cpus, :room_gpus, and each
    bundle the most of each resource on one node, :room_node_*) and that have waited
    for room since before `hold_since`, the first in `claim_order`. Of those that
    have waited, so a job ahead in order that has not (a lighter user's, just
    submitted) does not lift the hold. Passed-over jobs stay in: a gang waiting to
    pack the free nodes holds them too. `usage` and `ended`: the claim's own CTEs."""
    head = table_of(Job).alias("head")
    owner = table_of(User).alias("head_owner")
    attempts = table_of(JobAttempt)
    # Back in the queue since its last attempt ended (a retry, a reaped lease, a
    # hand-back): it waits for room from then. Looked up only for jobs submitted
    # before `hold_since` (an index lookup each).
    last_end = (
        select(func.max(attempts.c.ended_at)).where(attempts.c.job_id == head.c.id)
    ).scalar_subquery()
    return (
        select(head.c.id, head.c.owner_id, head.c.cpus_required, head.c.gpus_required)
        .select_from(
            head.join(owner, owner.c.id == head.c.owner_id).outerjoin(
                usage, usage.c.owner_id == head.c.owner_id
            )
        )
        .where(
            head.c.status == JobStatus.QUEUED.value,
            head.c.created_at <= hold_since,
            head.c.cpus_required <= bindparam("room_cpus", type_=Float()) + RESOURCE_EPSILON,
            head.c.gpus_required <= bindparam("room_gpus", type_=Float()) + RESOURCE_EPSILON,
            *fits_free_node(head, "room_node"),
            # Known not to fit the room's nodes at once (ClusterRoom.unplaceable).
            head.c.id.not_in(bindparam("cannot_hold", expanding=True)),
            owner_enabled(owner),
            *under_quota(head, owner, usage),
            func.coalesce(last_end, head.c.created_at) <= hold_since,
        )
        .order_by(
            *claim_order(
                fair_share(recent_runs(usage, ended, head.c.owner_id), owner.c.share_weight),
                head.c,
            )
        )
        .limit(1)
        .cte("held_job")
        .prefix_with("MATERIALIZED")
    )


def _leaves(candidate: Any, held: CTE, kind: str) -> ColumnElement[bool]:
    """`candidate` takes none of `kind` ("cpus" or "gpus"), or leaves at least what
    the held job needs of it free (:free_cpus / :free_gpus, summed)."""
    needs = candidate.c[f"{kind}_required"]
    free = bindparam(f"free_{kind}", type_=Float())
    return or_(
        needs <= RESOURCE_EPSILON,
        free - needs >= held.c[f"{kind}_required"] - RESOURCE_EPSILON,
    )


def _leaves_its_quota(candidate: Any, users: Any, usage: CTE, held: CTE) -> ColumnElement[bool]:
    """`candidate` is another owner's, or the held job's owner's quota holds both: a
    job of that owner that passes the hold could take the quota it waits for (the
    owner's running jobs, CPUs or GPUs), and the held job, over quota, held nothing
    any more — a job behind it took its room (a review: a CPU sweep's trials passing
    its owner's GPU gang)."""
    return or_(
        candidate.c.owner_id != held.c.owner_id,
        and_(
            func.coalesce(usage.c.running, 0) + 2
            <= quota(users.c.max_running_jobs, "default_max_running_jobs"),
            *(
                func.coalesce(usage.c[kind], 0.0)
                + candidate.c[f"{kind}_required"]
                + held.c[f"{kind}_required"]
                <= quota(users.c[f"max_{kind}"], f"default_max_{kind}") + RESOURCE_EPSILON
                for kind in ("cpus", "gpus")
            ),
        ),
    )


def room_params(room: ClusterRoom | None) -> dict[str, float | list[int]]:
    """held_job's binds: the cluster's totals, the most of each on one node, and the
    jobs known not to fit its nodes (None: no limit, every queued job may hold room)."""
    return {
        "room_cpus": UNLIMITED if room is None else room.cpus,
        "room_gpus": UNLIMITED if room is None else room.gpus,
        "cannot_hold": [] if room is None else list(room.unplaceable),
        **free_node_params(
            None if room is None or room.nodes is None else most_free(room.nodes), "room_node"
        ),
    }


def held_jobs(
    *,
    session: Session,
    rooms: list[ClusterRoom | None],
    hold_room_after: timedelta,
    quota_defaults: QuotaDefaults,
    fair_share_window: timedelta,
) -> list[HeldJob | None]:
    """For each cluster (its room), the job a claim there would hold room for now, or
    None: `held_job` by the database's clock, as the claim judges it (explain)."""
    usage, ended = running_per_owner(), ended_per_owner(FAIR_SHARE_SINCE)
    held = held_job(usage, ended, bindparam("hold_since", type_=UtcDateTime()))
    statement = select(held.c.id, held.c.owner_id, held.c.cpus_required, held.c.gpus_required)
    now = db_now(session)
    params = {
        "fair_share_since": now - fair_share_window,
        "hold_since": now - hold_room_after,
        **quota_params(quota_defaults),
    }
    with no_nested_loops(session):
        rows = [
            session.execute(statement, {**params, **room_params(room)}).one_or_none()
            for room in rooms
        ]
    return [None if row is None else HeldJob(*row) for row in rows]


@contextmanager
def no_nested_loops(session: Session) -> Iterator[None]:
    """PostgreSQL plans the statements run inside without nested loops, as the claim's
    transaction does (claim.py's SET LOCAL): the queued jobs' filters (the room's
    bundles, coalesced) each get a default selectivity, so 2,000 queued rows were
    estimated at 8 and held_job looped over the users and the owners' usage for each:
    34 ms a live dispatcher against 10 with hash joins (202,100 jobs; a review,
    benchmarks/explain_at_scale.py). Session-level, set back on the way out: explain
    and the dispatcher's maintenance read in autocommit (db.read_transaction), where a
    SET LOCAL lasts one statement and so changes nothing.

    On an error the RESET is still tried (a caller that catches a Python error and
    commits would otherwise leave the pooled connection planning without nested
    loops), but the first error is the one raised: a RESET on a connection that died
    raised its own PendingRollbackError, and an outage's 503 was answered as a 500 (a
    review). A failed transaction's rollback undoes the SET; a replaced connection
    starts with the defaults."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.exec_driver_sql("SET enable_nestloop = off")
    try:
        yield
    except BaseException:
        if not connection.invalidated:
            with suppress(SQLAlchemyError):
                connection.exec_driver_sql("RESET enable_nestloop")
        raise
    connection.exec_driver_sql("RESET enable_nestloop")
