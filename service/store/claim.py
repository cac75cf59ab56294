"""The queue's claim as one statement (queued -> running with a new lease and its
attempt row), for lifecycle.transition, which alone makes a job running."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Interval,
    String,
    Update,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from service.schemas.node_fit import (
    ClusterRoom,
    NodeShape,
    PassedOver,
    most_free,
    packs,
    unplaceable_in,
)
from service.schemas.quota import QuotaDefaults
from service.store.claim_candidate import next_candidate, room_params
from service.store.db import db_now
from service.store.models import Job, JobAttempt, JobStatus, UtcDateTime, table_of
from service.store.node_fit_sql import bundles_of, free_node_params, workers_of
from service.store.queue_order import FAIR_SHARE_SINCE, quota_params

# "Never": a wait no job reaches (a bound interval on PostgreSQL, a date on SQLite).
NEVER_HOLD = timedelta(days=100 * 365)


@dataclass(frozen=True)
class Claim:
    """`transition(job=Claim(...), to=running)`: start whichever queued job the queue
    order picks for a dispatcher that sees these free resources."""

    dispatcher_id: str
    lease_seconds: float
    free_cpus: float
    free_gpus: float
    # What each live node has free now: the gang must fit them at once, each bundle
    # on one node (node_fit.packs; in SQL, each bundle against the most free on one,
    # node_fit.most_free). None: not judged per node (store-level callers).
    free_nodes: tuple[NodeShape, ...] | None = None
    # Called with each job the claim passed over because its gang does not fit the
    # free nodes at once (the dispatcher asks whether it ever could); after the claim
    # is settled, not necessarily committed.
    passed_over: Callable[[PassedOver], None] | None = None
    # Jobs passed over before on these free nodes (so still not fitting): left out.
    known_unfit: tuple[int, ...] = ()
    # The server's quota defaults (settings) for users without their own; None: such
    # users are not limited (store-level callers; dispatchers always pass settings').
    quota_defaults: QuotaDefaults | None = None
    # How far back fair share counts an owner's finished jobs (queue_order); zero:
    # running jobs only (store-level callers; dispatchers pass settings').
    fair_share_window: timedelta = timedelta(0)
    # Room is held for the first job in order that this cluster (`room`, its totals
    # now; None: any) could run, once it has waited for room longer than this
    # (claim_candidate). None: never held (store-level callers; dispatchers pass
    # settings').
    hold_room_after: timedelta | None = None
    room: ClusterRoom | None = None


def _claim_statement(
    started: ColumnElement[datetime],
    expires: ColumnElement[datetime],
    fair_share_since: ColumnElement[datetime],
    hold_since: ColumnElement[datetime],
) -> Update:
    """The claim as ONE statement: queued -> running with a fresh lease, for the job
    queue_order.next_candidate selects (SKIP LOCKED on PostgreSQL; on SQLite the
    UPDATE ... WHERE id = (SELECT ...) RETURNING runs under BEGIN IMMEDIATE).
    WHERE status = 'queued' enforces the edge in SQL. `started` and `expires`: the
    claim's time and its lease's end; `fair_share_since`: its time less the window;
    `hold_since`: its time less the wait after which a job holds room."""
    jobs = table_of(Job)
    return (
        update(jobs)
        .where(
            jobs.c.id == next_candidate(fair_share_since, hold_since),
            jobs.c.status == JobStatus.QUEUED.value,
        )
        .values(
            status=JobStatus.RUNNING.value,
            attempt=jobs.c.attempt + 1,
            lease_token=bindparam("token", type_=String()),
            lease_expires_at=expires,
            dispatcher_id=bindparam("dispatcher_id", type_=String()),
            started_at=func.coalesce(jobs.c.started_at, started),
        )
        .returning(*jobs.c)
    )


def _clock_in_statement() -> Update:
    """On PostgreSQL the claim reads the clock itself, once (a CTE), while it runs:
    after the statement's snapshot, so its time follows every commit the claim saw.
    A time read by an earlier statement can precede a job queued in between, which
    this claim then starts: the job's `running` event would come before its
    `queued` one (READ COMMITTED takes a snapshot per statement, so no earlier read
    can fence that off)."""
    clock = select(func.clock_timestamp().label("now")).cte("claim_clock")
    now = select(clock.c.now).scalar_subquery()
    # The lease as microseconds, not an interval: psycopg sends a timedelta of a day
    # or more as days, and PostgreSQL adds days by the session's calendar (23 or 25 h
    # across a daylight-saving change); microseconds add exactly, in any time zone.
    microsecond = literal_column("interval '1 microsecond'", Interval())
    lease = bindparam("lease_us", type_=BigInteger()) * microsecond
    window = bindparam("window_us", type_=BigInteger()) * microsecond
    hold = bindparam("hold_us", type_=BigInteger()) * microsecond
    return _claim_statement(now, now + lease, now - window, now - hold).add_cte(clock)


# Built once: composing these statements costs more than running them.
_CLAIM_AT = _claim_statement(
    bindparam("claim_now", type_=UtcDateTime()),
    bindparam("expires", type_=UtcDateTime()),
    FAIR_SHARE_SINCE,
    bindparam("hold_since", type_=UtcDateTime()),
)
_CLAIM_WITH_CLOCK = _clock_in_statement()
# PostgreSQL: one claim at a time in the database (a transaction-level advisory lock,
# released at the claim's commit). Quota and fair share are read from committed
# state, so two claims at the same instant each saw the other's owner under quota:
# N dispatchers could put an owner N - 1 jobs over max_running_jobs. Taken in a
# statement of its own: the claim's, begun after it, sees every claim committed
# before (at READ COMMITTED a statement reads what was committed when it began).
# Claims are short (this statement, the attempt and its event); SQLite's BEGIN
# IMMEDIATE serialises them already. Bounded both ways, in the same round trip (one
# simple-protocol query; the key is a constant): a claim waits for the lock at most
# CLAIM_LOCK_WAIT (then it fails, and the dispatcher's loop retries after its poll
# interval, its maintenance going on), and a claimer that vanishes mid-transaction
# (its host dead, its connection left open) is cut off by PostgreSQL after
# CLAIM_IDLE_LIMIT, which frees the lock for everyone else.
CLAIM_LOCK_KEY = 0x6C6167747261696E  # "lagtrain"
CLAIM_LOCK_WAIT, CLAIM_IDLE_LIMIT = "10s", "60s"
# No JIT for the claim: its plan's estimate for fair share's window (a range over a
# value computed in the statement) passed jit_above_cost, and compiling cost 20 ms of
# a 24 ms claim (2 ms without; 20,000 finished jobs). No nested loops either: the
# queued jobs' range filters against parameters each get the default selectivity, so
# the planner expected 3 to 24 queued rows and looped over users, the queue and the
# owners' usage, 2,000 rows each time (70 to 117 ms a claim at 2,000 queued, under
# the lock that makes claims wait for each other; 18 ms with hash joins; a review).
_CLAIM_LOCK = (
    f"SET LOCAL lock_timeout = '{CLAIM_LOCK_WAIT}'; "
    f"SET LOCAL idle_in_transaction_session_timeout = '{CLAIM_IDLE_LIMIT}'; "
    "SET LOCAL jit = off; "
    "SET LOCAL enable_nestloop = off; "
    f"SELECT pg_advisory_xact_lock({CLAIM_LOCK_KEY})"
)


def start_attempt(
    *, session: Session, claim: Claim, now: datetime | None
) -> tuple[Job, datetime] | None:
    """Claim a job and open its attempt: (the job, the claim's time), or None when
    none is eligible. `now` None: the database's clock, read inside the claim on
    PostgreSQL (see _clock_in_statement), under the write lock on SQLite (db_now).
    The claim is a status change: only lifecycle.transition calls this (and appends
    the event, stamped with the claim's time)."""
    token = secrets.token_hex(16)
    lease = timedelta(seconds=claim.lease_seconds)
    hold = NEVER_HOLD if claim.hold_room_after is None else claim.hold_room_after
    params: dict[str, Any] = {
        "free_cpus": claim.free_cpus,
        "free_gpus": claim.free_gpus,
        **free_node_params(None if claim.free_nodes is None else most_free(claim.free_nodes)),
        **room_params(claim.room),
        **quota_params(claim.quota_defaults),
        "token": token,
        "dispatcher_id": claim.dispatcher_id,
    }
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.connection().exec_driver_sql(_CLAIM_LOCK)
    if now is None and postgres:
        statement, params["lease_us"] = _CLAIM_WITH_CLOCK, lease // timedelta(microseconds=1)
        params["window_us"] = claim.fair_share_window // timedelta(microseconds=1)
        params["hold_us"] = hold // timedelta(microseconds=1)
    else:
        now = now or db_now(session)
        statement = _CLAIM_AT
        params.update(claim_now=now, expires=now + lease)
        params["fair_share_since"] = now - claim.fair_share_window
        params["hold_since"] = now - hold
    job = _claim_packed(session, claim, statement, params)
    if job is None:
        return None
    assert job.lease_expires_at is not None
    now = job.lease_expires_at - lease  # the claim's time, whichever clock set it
    session.execute(
        insert(table_of(JobAttempt)),
        {
            "job_id": job.id,
            "number": job.attempt,
            "fencing_token": token,
            "dispatcher_id": claim.dispatcher_id,
            "lease_expires_at": job.lease_expires_at,
            "started_at": now,
        },
    )
    return job, now


# A claim passes over at most this many jobs whose gangs do not fit the free nodes at
# once (then it claims nothing this time): each costs one more claim statement.
PASSED_OVER_MOST = 16


def _claim_packed(
    session: Session, claim: Claim, statement: Update, params: dict[str, Any]
) -> Job | None:
    """The claim statement's job, passing over those whose gang does not fit the free
    nodes at once (node_fit.packs): SQL tests each bundle against the most free on
    one node only, which the most free CPUs and GPUs on different nodes, or replicas
    that each fit a node but not together, pass. Such a job was claimed and waited
    at placement for `gang_ready_seconds`, then failed an attempt. Each one passed
    over is claimed inside a savepoint rolled back at once: nothing of it is
    written, and the next claim statement leaves it out."""
    passed: list[PassedOver] = []
    job: Job | None = None
    while len(passed) < PASSED_OVER_MOST:
        params["passed_over"] = [*claim.known_unfit, *(p.job_id for p in passed)]
        params["cannot_hold"] = [
            *(() if claim.room is None else claim.room.unplaceable),
            *unplaceable_in(claim.room, claim.free_nodes, params["passed_over"]),
        ]
        if claim.free_nodes is None:
            job = _run_claim(session, statement, params)
            break
        with session.begin_nested() as savepoint:
            job = _run_claim(session, statement, params)
            workers = None if job is None else workers_of(job)
            if job is None or workers is None:  # None: a spec without it, not judged
                break
            if packs(bundles := bundles_of(job), workers, claim.free_nodes):
                break
            passed.append(PassedOver(job.id, bundles, workers))
            session.expunge(job)  # its row is queued again: no 'running' copy for a holder
            savepoint.rollback()
        job = None
    for skipped in passed:
        if claim.passed_over is not None:
            claim.passed_over(skipped)
    return job


def _run_claim(session: Session, statement: Update, params: dict[str, Any]) -> Job | None:
    return session.scalars(
        select(Job).from_statement(statement), params, execution_options={"populate_existing": True}
    ).one_or_none()
