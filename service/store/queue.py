"""Queue operations (DESIGN §4): submit, claim, cancel, reap, dispatcher registry.

Store functions: `session` keyword-only, they flush and never commit; the caller owns
the transaction. Status changes go through service.store.lifecycle. The fenced writes
a dispatcher makes while it holds a lease live in service.store.attempts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, ScalarSelect, bindparam, case, cast, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import IdempotencyConflict, NotFound
from service.schemas.gang import gang_totals
from service.store import lifecycle
from service.store.attempts import (
    HeartbeatReply,
    MetricIn,
    acknowledge_cancel,
    append_metrics,
    fail,
    finish,
    heartbeat,
    record_checkpoint,
)
from service.store.lifecycle import ACTIVE, JobStatus
from service.store.models import Checkpoint, Dispatcher, Job, User, table_of, utcnow

if TYPE_CHECKING:
    from service.schemas.resolved import ResolvedSpec

__all__ = [  # the fenced writes live in service.store.attempts; re-exported here
    "CheckpointRef",
    "ClaimedJob",
    "HeartbeatReply",
    "MetricIn",
    "acknowledge_cancel",
    "append_metrics",
    "checkpoint_ref",
    "claim_next",
    "enqueue",
    "fail",
    "fail_queued",
    "finish",
    "heartbeat",
    "latest_checkpoint",
    "record_checkpoint",
    "request_cancel",
    "requeue_expired",
    "upsert_dispatcher",
]

# The gang's size is the sum of its bundles (service.schemas.gang), which is also
# what the placement group reserves, so the claim's "fits" test counts what Ray does.
# Float slack so that e.g. 3 x 0.1 CPUs fits into 0.3 free CPUs.
RESOURCE_EPSILON = 1e-9
# Stands in for a zero share weight: such a user is served only when nobody else waits.
MIN_SHARE_WEIGHT = 1e-9


@dataclass(frozen=True)
class CheckpointRef:
    id: int
    attempt: int
    round: int
    seq: int
    uri: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class ClaimedJob:
    """What a dispatcher needs to run one attempt (plain data: it may cross to Ray)."""

    job_id: int
    owner_id: int
    attempt: int
    fencing_token: str
    lease_expires_at: datetime
    spec: dict[str, Any]
    # Newest checkpoint to resume from (None: start at round 0), and the last metric
    # seq already stored: records up to it are ignored when sent again.
    resume: CheckpointRef | None
    last_seq: int


def enqueue(
    session: Session,
    *,
    owner_id: int,
    spec: ResolvedSpec,
    name: str | None = None,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
) -> Job:
    """Queue a job (row + 'queued' event; NOTIFY on PostgreSQL).

    With an idempotency key already used by this owner: the same request_sha256
    returns the existing job unchanged (no new row or event), a different one raises
    IdempotencyConflict. Concurrent first uses of one key are resolved the same way."""
    if idempotency_key is not None:
        existing = _find_by_idempotency_key(
            session, owner_id=owner_id, idempotency_key=idempotency_key
        )
        if existing is not None:
            return _replay(existing, request_sha256)
    cpus, gpus = gang_totals(spec)
    job = Job(
        owner_id=owner_id,
        name=name if name is not None else spec.name,
        spec=spec.model_dump(mode="json"),
        priority=spec.priority,
        cpus_required=cpus,
        gpus_required=gpus,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        attempt=0,
        max_attempts=spec.max_attempts,
        progress_round=0,
        progress_rounds=spec.schedule.rounds,
        last_seq=0,
    )
    if idempotency_key is None:
        return lifecycle.submit(session, job=job, actor=f"user:{owner_id}")
    try:
        with session.begin_nested():
            return lifecycle.submit(session, job=job, actor=f"user:{owner_id}")
    except IntegrityError:
        # Another transaction used the key first (PostgreSQL waits for it to commit).
        existing = _find_by_idempotency_key(
            session, owner_id=owner_id, idempotency_key=idempotency_key
        )
        if existing is None:
            raise
        return _replay(existing, request_sha256)


def _find_by_idempotency_key(
    session: Session, *, owner_id: int, idempotency_key: str
) -> Job | None:
    return session.scalars(
        select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == idempotency_key)
    ).one_or_none()


def _replay(existing: Job, request_sha256: str | None) -> Job:
    if existing.request_sha256 != request_sha256:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body"
        )
    return existing


def claim_next(
    session: Session,
    *,
    dispatcher_id: str,
    lease_seconds: float,
    free_cpus: float,
    free_gpus: float,
    now: datetime | None = None,
) -> ClaimedJob | None:
    """Claim the next eligible job, or None. The claim itself is one UPDATE statement
    (lifecycle.start_attempt over `_next_candidate`); the attempt row, the running
    event and the resume lookup follow in the caller's transaction."""
    job = lifecycle.start_attempt(
        session,
        claim=_CLAIM,
        params={"free_cpus": free_cpus, "free_gpus": free_gpus},
        dispatcher_id=dispatcher_id,
        lease_seconds=lease_seconds,
        now=now,
    )
    if job is None:
        return None
    assert job.lease_token is not None and job.lease_expires_at is not None
    # Checkpoints are written by a lease holder, so a first attempt has none.
    checkpoint = None if job.attempt == 1 else latest_checkpoint(session, job_id=job.id)
    return ClaimedJob(
        job_id=job.id,
        owner_id=job.owner_id,
        attempt=job.attempt,
        fencing_token=job.lease_token,
        lease_expires_at=job.lease_expires_at,
        spec=dict(job.spec),
        resume=None if checkpoint is None else checkpoint_ref(checkpoint),
        last_seq=job.last_seq,
    )


def _next_candidate() -> ScalarSelect[int]:
    """The id of the job to run next: queued, gang fits the free resources, owner
    under quota; ordered by fair share (owner's running jobs / share_weight, least
    first), then priority (high first), then submit time and id.

    Quota and fair share read committed state: on PostgreSQL, N dispatchers claiming
    at the same instant can put an owner up to N-1 jobs over max_running_jobs (SQLite
    serialises claims, so there it is exact)."""
    active = table_of(Job).alias("active")
    candidate = table_of(Job).alias("candidate")
    users = table_of(User)
    usage = (
        select(active.c.owner_id, func.count().label("running"))
        .where(active.c.status.in_([s.value for s in ACTIVE]))
        .group_by(active.c.owner_id)
        # Computed once per claim whatever the planner guesses (fresh tables have no
        # statistics, and a nested loop would re-aggregate for every queued job).
        .cte("usage")
        .prefix_with("MATERIALIZED")
    )
    running = func.coalesce(usage.c.running, 0)
    weight = case(
        (users.c.share_weight > MIN_SHARE_WEIGHT, users.c.share_weight),
        else_=literal(MIN_SHARE_WEIGHT),
    )
    return (
        select(candidate.c.id)
        .select_from(
            candidate.join(users, users.c.id == candidate.c.owner_id).outerjoin(
                usage, usage.c.owner_id == candidate.c.owner_id
            )
        )
        .where(
            candidate.c.status == JobStatus.QUEUED.value,
            candidate.c.cpus_required <= bindparam("free_cpus", type_=Float()) + RESOURCE_EPSILON,
            candidate.c.gpus_required <= bindparam("free_gpus", type_=Float()) + RESOURCE_EPSILON,
            or_(users.c.max_running_jobs.is_(None), running < users.c.max_running_jobs),
        )
        .order_by(
            (cast(running, Float) / weight).asc(),
            candidate.c.priority.desc(),
            candidate.c.created_at.asc(),
            candidate.c.id.asc(),
        )
        .limit(1)
        .with_for_update(skip_locked=True, of=candidate)
        .scalar_subquery()
    )


# Built once: composing this statement costs more than running it.
_CLAIM = lifecycle.claim_statement(_next_candidate())


def request_cancel(session: Session, *, job: Job, actor: str) -> Job:
    """Ask for `job` to stop: queued -> cancelled at once, running -> cancelling (the
    dispatcher sees it in its next heartbeat). Cancelling or terminal: a no-op that
    returns the job as it is, so repeating a cancel is harmless."""
    session.refresh(job, with_for_update=True)
    status = JobStatus(job.status)
    if status is JobStatus.QUEUED:
        return lifecycle.transition(
            session, job=job, to=JobStatus.CANCELLED, actor=actor, reason=f"cancelled by {actor}"
        )
    if status is JobStatus.RUNNING:
        return lifecycle.transition(
            session, job=job, to=JobStatus.CANCELLING, actor=actor, reason=f"cancel by {actor}"
        )
    return job


def fail_queued(session: Session, *, job_id: int, actor: str, reason: str) -> Job:
    """queued -> failed, for a job that can never run (e.g. its gang is larger than the
    whole cluster); `reason` should name the resource."""
    # Locked and re-read: a dispatcher may have claimed it since it was looked at.
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.status != JobStatus.QUEUED.value:
        return job
    return lifecycle.transition(session, job=job, to=JobStatus.FAILED, actor=actor, reason=reason)


def requeue_expired(
    session: Session, *, now: datetime | None = None, actor: str = "reaper"
) -> list[int]:
    """End every attempt whose lease expired (outcome 'lost'): running jobs go back to
    queued, or to failed once they have used max_attempts; cancelling jobs become
    cancelled. Returns the ids of the jobs it changed."""
    now = now or utcnow()
    expired = session.scalars(
        select(Job.id)
        .where(Job.status.in_([s.value for s in ACTIVE]), Job.lease_expires_at < now)
        .order_by(Job.id)
        .with_for_update(skip_locked=True)
    ).all()
    for job_id in expired:
        job = _get_job(session, job_id)
        attempts = f"{job.attempt} attempt{'s' if job.attempt != 1 else ''}"
        if job.status == JobStatus.CANCELLING.value:
            to, reason = JobStatus.CANCELLED, "lease expired while cancelling"
        elif job.attempt >= job.max_attempts:
            to, reason = JobStatus.FAILED, f"lease expired after {attempts}"
        else:
            to, reason = JobStatus.QUEUED, f"lease expired (after {attempts}); requeued"
        lifecycle.transition(
            session, job=job, to=to, actor=actor, reason=reason, attempt_outcome="lost", now=now
        )
    return list(expired)


def latest_checkpoint(session: Session, *, job_id: int) -> Checkpoint | None:
    return session.scalars(
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id)
        .order_by(Checkpoint.round.desc())
        .limit(1)
    ).one_or_none()


def checkpoint_ref(checkpoint: Checkpoint) -> CheckpointRef:
    return CheckpointRef(
        id=checkpoint.id,
        attempt=checkpoint.attempt,
        round=checkpoint.round,
        seq=checkpoint.seq,
        uri=checkpoint.uri,
        sha256=checkpoint.sha256,
        bytes=checkpoint.bytes,
    )


def upsert_dispatcher(
    session: Session,
    *,
    dispatcher_id: str,
    hostname: str,
    resources: dict[str, Any],
    now: datetime | None = None,
) -> Dispatcher:
    """Register a dispatcher or refresh its hostname, resources and last_seen_at."""
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = table_of(Dispatcher)
    stmt = insert(table).values(
        id=dispatcher_id, hostname=hostname, resources=resources, started_at=now, last_seen_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={
                "hostname": stmt.excluded.hostname,
                "resources": stmt.excluded.resources,
                "last_seen_at": stmt.excluded.last_seen_at,
            },
        )
    )
    dispatcher = session.get(Dispatcher, dispatcher_id, populate_existing=True)
    assert dispatcher is not None  # just written
    return dispatcher


def _get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job
