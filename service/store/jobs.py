"""Jobs: submit (enqueue), read (visibility, lists, status history), cancel
requests, and failing queued jobs that can never run. Status changes go through
lifecycle.transition."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import IdempotencyConflict, NotFound
from service.schemas.audit import AuditAction
from service.schemas.gang import gang_totals, replica_bundle
from service.schemas.resolved import ResolvedSpec
from service.store import audit, lifecycle
from service.store.models import Job, JobEvent, JobStatus, table_of
from service.store.spec_checks import job_cost
from service.store.users import Principal


def enqueue(
    *,
    session: Session,
    owner_id: int,
    spec: ResolvedSpec,
    name: str | None = None,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
    sweep_id: int | None = None,
    key_unused: bool = False,
    now: datetime | None = None,
    audit_actor: Principal | None = None,
) -> tuple[Job, bool]:
    """Queue a job (row + 'queued' event; NOTIFY on PostgreSQL); returns (job, True).
    `sweep_id`: the sweep whose trial the job is (the sweep controller's submit).
    `audit_actor`: whose submit it is (the owner); the one `job.submitted` audit row of
    every submit is written here, a trial's as its sweep acting for the owner. None:
    no audit row (store-level callers that fill the queue: tests, benchmarks).

    With an idempotency key already used by this owner: the same request_sha256
    returns (the existing job unchanged, False) with no new row or event, a different
    one raises IdempotencyConflict. Concurrent first uses of one key are resolved the
    same way. `key_unused`: the caller has just looked the key up in this transaction
    and found nothing (the look-up is not repeated). `now`: the database's clock, if
    the caller has read it in this transaction (else the lifecycle reads it)."""
    if idempotency_key is not None and not key_unused:
        existing = find_by_idempotency_key(
            session=session, owner_id=owner_id, idempotency_key=idempotency_key
        )
        if existing is not None:
            return replay(existing, request_sha256), False
    cpus, gpus = gang_totals(spec)
    replica = replica_bundle(spec)
    # Ray reserves this as each bundle's memory (service.schemas.gang); trials of a
    # sweep get it here too.
    cost = job_cost(session=session, spec=spec, owner_id=owner_id)
    job = Job(
        owner_id=owner_id,
        name=name if name is not None else spec.name,
        spec=spec.model_dump(mode="json"),
        priority=spec.priority,
        sweep_id=sweep_id,
        cpus_required=cpus,
        gpus_required=gpus,
        replica_cpus=replica.get("CPU", 0.0),
        replica_gpus=replica.get("GPU", 0.0),
        replica_memory_bytes=cost.replica_bytes,
        coordinator_memory_bytes=cost.coordinator_bytes,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        attempt=0,
        max_attempts=spec.max_attempts,
        progress_round=0,
        progress_rounds=spec.schedule.rounds,
        last_seq=0,
    )
    actor = f"user:{owner_id}" if sweep_id is None else f"sweep:{sweep_id}"
    if idempotency_key is None:
        lifecycle.transition(session=session, job=job, to=JobStatus.QUEUED, actor=actor, now=now)
    else:
        try:
            with session.begin_nested():
                lifecycle.transition(
                    session=session, job=job, to=JobStatus.QUEUED, actor=actor, now=now
                )
        except IntegrityError:
            # Another transaction used the key first (PostgreSQL waits for it to commit).
            existing = find_by_idempotency_key(
                session=session, owner_id=owner_id, idempotency_key=idempotency_key
            )
            if existing is None:
                raise
            return replay(existing, request_sha256), False
    if audit_actor is not None:
        audit.record(
            session=session,
            actor=audit_actor,
            via=None if sweep_id is None else f"sweep:{sweep_id}",
            action=AuditAction.JOB_SUBMITTED,
            target=f"job:{job.id}",
            detail={"name": job.name, **_sweep_of(job)},
        )
    return job, True


def _sweep_of(job: Job) -> dict[str, int]:
    """The audit detail that names a trial job's sweep ({} for a plain job)."""
    return {} if job.sweep_id is None else {"sweep_id": job.sweep_id}


def find_by_idempotency_key(*, session: Session, owner_id: int, idempotency_key: str) -> Job | None:
    return session.scalars(
        select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == idempotency_key)
    ).one_or_none()


def replay(existing: Job, request_sha256: str | None) -> Job:
    """The job an earlier request with the same Idempotency-Key created, if this
    request is the same (IdempotencyConflict if not)."""
    if existing.request_sha256 != request_sha256:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body"
        )
    return existing


def get_job(*, session: Session, job_id: int) -> Job:
    """The job as stored now (re-read), whoever owns it: for internal readers."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def get_visible_job(*, session: Session, job_id: int, viewer: Principal) -> Job:
    """The job if the viewer owns it or is an admin. Another user's job is reported
    exactly like a missing one, so ids do not leak who submitted what."""
    job = session.get(Job, job_id)
    if job is None or (job.owner_id != viewer.user_id and not viewer.is_admin):
        raise NotFound(f"job {job_id} not found")
    return job


class JobsQuery(TypedDict):
    """A listing's filters: list_jobs' and jobs_fingerprint's arguments but the session."""

    viewer: Principal
    owner_id: int | None
    status: str | None
    sweep_id: int | None
    # Only rows finished before this time; a row not finished (finished_at null) never
    # matches. Aware: UtcDateTime converts it to the UTC the columns store.
    finished_before: datetime | None
    limit: int
    before_id: int | None


def _jobs_query(q: JobsQuery) -> Select[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(q["limit"])
    # With a sweep, its few rows are the ones to read (ix_jobs_sweep_id), not every job
    # of the owner: `owner_id + 0` keeps the owner's index out of the choice. SQLite,
    # without statistics, otherwise picks either index by their order in the schema,
    # which a batch migration's table rebuild leaves arbitrary.
    owner = Job.owner_id if q["sweep_id"] is None else Job.owner_id + 0
    if not q["viewer"].is_admin:
        query = query.where(owner == q["viewer"].user_id)
    if q["owner_id"] is not None:
        query = query.where(owner == q["owner_id"])
    if q["status"] is not None:
        query = query.where(Job.status == q["status"])
    # A sweep's trial jobs are its owner's: another user's sweep lists nothing to a
    # non-admin (the owner rule above), as an unknown sweep does to anyone.
    if q["sweep_id"] is not None:
        query = query.where(Job.sweep_id == q["sweep_id"])
    if q["finished_before"] is not None:
        query = query.where(Job.finished_at < q["finished_before"])
    if q["before_id"] is not None:
        query = query.where(Job.id < q["before_id"])
    return query


def list_jobs(*, session: Session, **query: Unpack[JobsQuery]) -> list[Job]:
    """Newest first. Non-admins only ever see their own jobs, whatever owner_id says."""
    return list(session.scalars(_jobs_query(query)))


# What list_jobs' rows can change in without a fingerprint change: the spec (fixed
# at submit, and the bulk of a row) and the lease (not shown; renewed every few
# seconds while a job runs).
_UNSHOWN_OR_FIXED = frozenset({"spec", "lease_token", "lease_expires_at", "dispatcher_id"})
_FINGERPRINT = [c for c in table_of(Job).c if c.name not in _UNSHOWN_OR_FIXED]


def jobs_fingerprint(*, session: Session, **query: Unpack[JobsQuery]) -> list[tuple[Any, ...]]:
    """list_jobs' rows without their specs: equal fingerprints, equal pages (the
    live jobs feed rebuilds a page only when this changes)."""
    rows = session.execute(_jobs_query(query).with_only_columns(*_FINGERPRINT))
    return [tuple(row) for row in rows]


def latest_event(*, session: Session, job_id: int) -> JobEvent | None:
    return session.scalar(
        select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id.desc()).limit(1)
    )


def events_after(*, session: Session, job_id: int, after_id: int) -> list[JobEvent]:
    return list(
        session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
            .order_by(JobEvent.id)
        )
    )


def request_cancel(
    *,
    session: Session,
    job: Job,
    actor: str,
    reason: str | None = None,
    audit_actor: Principal | None = None,
    via: str | None = None,
) -> Job:
    """Ask for `job` to stop: queued -> cancelled at once, running -> cancelling (the
    dispatcher sees it in its next heartbeat). Cancelling or terminal: a no-op that
    returns the job as it is, so repeating a cancel is harmless. `reason` goes into
    the event (default: who asked; a sweep's pruner says "pruned"). `audit_actor`
    (and `via`, see audit.record): who asked, for the one `job.cancelled` audit row
    of every cancel that changed the job; None: no audit row (store-level callers).
    NotFound if the job was deleted (it had finished) since `job` was read."""
    # A finished job may be deleted between the caller's read and this lock (or
    # while this waits for the delete's lock): to the caller it is simply not found.
    if not lifecycle.relock(session, job):
        raise NotFound(f"job {job.id} not found")
    status = JobStatus(job.status)
    if status is JobStatus.QUEUED:
        to, default_reason = JobStatus.CANCELLED, f"cancelled by {actor}"
    elif status is JobStatus.RUNNING:
        to, default_reason = JobStatus.CANCELLING, f"cancel by {actor}"
    else:
        return job
    job = lifecycle.transition(
        session=session, job=job, to=to, actor=actor, reason=reason or default_reason
    )
    if audit_actor is not None:
        detail: dict[str, object] = {"owner_id": job.owner_id, "was": status.value}
        if reason is not None:
            detail["reason"] = reason
        audit.record(
            session=session,
            actor=audit_actor,
            via=via,
            action=AuditAction.JOB_CANCELLED,
            target=f"job:{job.id}",
            detail={**detail, **_sweep_of(job)},
        )
    return job


def fail_queued(*, session: Session, job_id: int, actor: str, reason: str) -> Job:
    """queued -> failed, for a job that can never run (e.g. its gang is larger than the
    whole cluster); `reason` should name the resource."""
    # Locked and re-read: a dispatcher may have claimed it since it was looked at.
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.status != JobStatus.QUEUED.value:
        return job
    return lifecycle.transition(
        session=session, job=job, to=JobStatus.FAILED, actor=actor, reason=reason
    )
