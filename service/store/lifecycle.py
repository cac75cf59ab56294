"""The job lifecycle (DESIGN §3). `transition` is the only code that writes
`jobs.status` and `job_events`: every change, the submit and the claim included,
goes through it and appends one event (who, when, from, to, why). `ALLOWED` is the
rule set; terminal states never change.

Fencing: a caller presenting a lease token (`expect_token`, or `lease_holder` for
writes that change no status) is checked against the job's current lease under a
row lock before anything else, so a dispatcher that lost its lease always gets
StaleLease, whatever happened since.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import overload

from sqlalchemy import String, Update, bindparam, func, insert, inspect, select, text, update
from sqlalchemy.orm import Session

from service.errors import InvalidTransition, NotFound, StaleLease
from service.schemas.quota import QuotaDefaults
from service.store.db import db_now
from service.store.models import (
    ACTIVE,
    TERMINAL,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
    UtcDateTime,
    table_of,
)
from service.store.queue_order import next_candidate

# Dispatchers LISTEN on this channel (PostgreSQL); the payload is the job id.
JOBS_CHANNEL = "lagtrain_jobs"
# API servers' SSE feeds LISTEN on this one: a watched job has a new status or new
# metric records (the payload is the job id).
FEED_CHANNEL = "lagtrain_job_feed"

ALLOWED: Mapping[JobStatus, frozenset[JobStatus]] = {
    # claim; cancel before start; unschedulable (gang larger than the cluster)
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    # done; failed; cancel asked; lease lost or retryable failure -> next attempt
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLING, JobStatus.QUEUED}
    ),
    # stopped as asked; or it finished/failed before it could stop
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED, JobStatus.SUCCEEDED, JobStatus.FAILED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}
# Only the lease holder can declare success.
FENCED_TARGETS: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED})

# How the open attempt ends when the job leaves an ACTIVE status (overridable).
_ATTEMPT_OUTCOME: Mapping[JobStatus, str] = {
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.QUEUED: "requeued",
}


@dataclass(frozen=True)
class Claim:
    """`transition(job=Claim(...), to=running)`: start whichever queued job the queue
    order picks for a dispatcher that sees these free resources."""

    dispatcher_id: str
    lease_seconds: float
    free_cpus: float
    free_gpus: float
    # The server's quota defaults (settings) for users without their own; None: such
    # users are not limited (store-level callers; dispatchers always pass settings').
    quota_defaults: QuotaDefaults | None = None


def _claim_statement() -> Update:
    """The claim as ONE statement: queued -> running with a fresh lease, for the job
    queue_order.next_candidate selects (SKIP LOCKED on PostgreSQL; on SQLite the
    UPDATE ... WHERE id = (SELECT ...) RETURNING runs under BEGIN IMMEDIATE).
    WHERE status = 'queued' enforces the edge in SQL."""
    jobs = table_of(Job)
    return (
        update(jobs)
        .where(jobs.c.id == next_candidate(), jobs.c.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.RUNNING.value,
            attempt=jobs.c.attempt + 1,
            lease_token=bindparam("token", type_=String()),
            lease_expires_at=bindparam("expires", type_=UtcDateTime()),
            dispatcher_id=bindparam("dispatcher_id", type_=String()),
            started_at=func.coalesce(
                jobs.c.started_at, bindparam("claim_now", type_=UtcDateTime())
            ),
        )
        .returning(*jobs.c)
    )


# Built once: composing this statement costs more than running it.
_CLAIM = _claim_statement()


@overload
def transition(
    *,
    session: Session,
    job: Job,
    to: JobStatus,
    actor: str,
    reason: str | None = None,
    expect_token: str | None = None,
    attempt_outcome: str | None = None,
    now: datetime | None = None,
) -> Job: ...
@overload
def transition(
    *,
    session: Session,
    job: Claim,
    to: JobStatus,
    actor: str,
    reason: str | None = None,
    expect_token: str | None = None,
    attempt_outcome: str | None = None,
    now: datetime | None = None,
) -> Job | None: ...
def transition(
    *,
    session: Session,
    job: Job | Claim,
    to: JobStatus,
    actor: str,
    reason: str | None = None,
    expect_token: str | None = None,
    attempt_outcome: str | None = None,
    now: datetime | None = None,
) -> Job | None:
    """Move a job to `to` and append its event. `job` says which job and which edge:

    - a new Job (not stored yet): the submit, none -> queued; the row is added;
    - a Claim: the queue's claim, queued -> running, as one UPDATE that picks the job
      and gives it a new lease; the attempt row records the lease's fencing token.
      Returns None when no job is eligible. Only a claim makes a job running, because
      only a claim creates a lease;
    - a stored Job: any other edge of ALLOWED, after re-reading the row under a lock
      (unflushed changes to `job` are discarded: make other changes after).

    Raises StaleLease if `expect_token` is given and is not the current lease token,
    InvalidTransition for a forbidden edge (every edge out of a terminal status).
    Leaving running/cancelling ends the open attempt (`attempt_outcome`, default by
    target) and drops the lease; a failure's `reason` becomes the job's error.
    Entering queued NOTIFYs dispatchers (PostgreSQL, delivered at commit)."""
    to = JobStatus(to)
    now = now or db_now(session)
    from_status: JobStatus | None
    if isinstance(job, Claim):
        if to is not JobStatus.RUNNING:
            raise InvalidTransition(f"a claim makes a job running, not {to}")
        claimed = _start_attempt(session, job, now)
        if claimed is None:
            return None
        job, from_status = claimed, JobStatus.QUEUED
        reason = reason or f"attempt {job.attempt} of {job.max_attempts}"
    elif inspect(job).transient:
        if to is not JobStatus.QUEUED:
            raise InvalidTransition(f"a new job starts queued, not {to}")
        from_status = None
        job.status = to.value
        job.created_at = now
        session.add(job)
        session.flush()
    else:
        from_status = _check_and_leave(session, job, to, reason, expect_token, attempt_outcome, now)
        job.status = to.value
    session.execute(
        insert(table_of(JobEvent)),
        {
            "job_id": job.id,
            "at": now,
            "actor": actor,
            "from_status": from_status.value if from_status is not None else None,
            "to_status": to.value,
            "attempt": job.attempt,
            "reason": reason,
        },
    )
    channels = [JOBS_CHANNEL] if to is JobStatus.QUEUED else []
    if from_status is not None:  # a new job has no watchers yet
        channels.append(FEED_CHANNEL)
    _notify(session, channels, job.id)
    session.flush()
    return job


def notify_feed(*, session: Session, job_id: int) -> None:
    """Tell the API servers' SSE feeds that `job_id` has something new (PostgreSQL;
    delivered at commit)."""
    _notify(session, [FEED_CHANNEL], job_id)


def _notify(session: Session, channels: list[str], job_id: int) -> None:
    # Delivered at commit, so a listener never wakes for a row it cannot see yet. One
    # statement whatever the number of channels.
    if not channels or session.get_bind().dialect.name != "postgresql":
        return
    calls = ", ".join(f"pg_notify(:channel{i}, :payload)" for i in range(len(channels)))
    params: dict[str, str] = {f"channel{i}": c for i, c in enumerate(channels)}
    session.execute(text(f"SELECT {calls}"), {**params, "payload": str(job_id)})


def note(*, session: Session, job_id: int, token: str, actor: str, reason: str) -> Job:
    """Append an event that changes no status (from = to = the current one), for
    something a job's owner should see in its history, e.g. a resume that fell back
    to an older checkpoint. Fenced like every write of a lease holder."""
    job = lease_holder(session=session, job_id=job_id, token=token)
    session.execute(
        insert(table_of(JobEvent)),
        {
            "job_id": job.id,
            "at": db_now(session),
            "actor": actor,
            "from_status": job.status,
            "to_status": job.status,
            "attempt": job.attempt,
            "reason": reason,
        },
    )
    session.flush()
    return job


def lease_holder(*, session: Session, job_id: int, token: str) -> Job:
    """The job, locked and re-read, if `token` is its current lease token; for fenced
    writes (metrics, checkpoints, the final status)."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.lease_token is None or job.lease_token != token:
        raise StaleLease(f"job {job_id}: the lease token is not current (job is {job.status})")
    return job


def _quota_params(defaults: QuotaDefaults | None) -> dict[str, float]:
    if defaults is None:
        return {
            "default_max_running_jobs": UNLIMITED,
            "default_max_cpus": UNLIMITED,
            "default_max_gpus": UNLIMITED,
        }
    return {
        "default_max_running_jobs": defaults.max_running_jobs,
        "default_max_cpus": defaults.max_cpus,
        "default_max_gpus": defaults.max_gpus,
    }


UNLIMITED = 2**31 - 1


def _start_attempt(session: Session, claim: Claim, now: datetime) -> Job | None:
    token = secrets.token_hex(16)
    expires = now + timedelta(seconds=claim.lease_seconds)
    job: Job | None = session.scalars(
        select(Job).from_statement(_CLAIM),
        {
            "free_cpus": claim.free_cpus,
            "free_gpus": claim.free_gpus,
            **_quota_params(claim.quota_defaults),
            "token": token,
            "expires": expires,
            "dispatcher_id": claim.dispatcher_id,
            "claim_now": now,
        },
        execution_options={"populate_existing": True},
    ).one_or_none()
    if job is None:
        return None
    session.execute(
        insert(table_of(JobAttempt)),
        {
            "job_id": job.id,
            "number": job.attempt,
            "fencing_token": token,
            "dispatcher_id": claim.dispatcher_id,
            "lease_expires_at": expires,
            "started_at": now,
        },
    )
    return job


def _check_and_leave(
    session: Session,
    job: Job,
    to: JobStatus,
    reason: str | None,
    expect_token: str | None,
    attempt_outcome: str | None,
    now: datetime,
) -> JobStatus:
    """For a stored job: lock and re-read it, check the edge to `to`, and make the
    changes besides the status itself (attempt, lease, times, error); returns the
    status it leaves."""
    session.refresh(job, with_for_update=True)
    current = JobStatus(job.status)
    if expect_token is not None and expect_token != job.lease_token:
        raise StaleLease(f"job {job.id}: the lease token is not current (job is {current})")
    if current in TERMINAL:
        raise InvalidTransition(f"job {job.id} is {current}; a finished job never changes")
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"job {job.id}: {current} -> {to} is not allowed")
    if to is JobStatus.RUNNING:
        raise InvalidTransition(f"job {job.id}: only a claim starts a job")
    if to in FENCED_TARGETS and expect_token is None:
        raise InvalidTransition(f"job {job.id}: only the lease holder can make it {to}")
    if current in ACTIVE and to not in ACTIVE:
        _end_attempt(session, job, attempt_outcome or _ATTEMPT_OUTCOME[to], reason, now)
        job.lease_token = None
        job.lease_expires_at = None
    if to is JobStatus.QUEUED:
        job.dispatcher_id = None
    if to in TERMINAL:
        job.finished_at = now
    if to is JobStatus.FAILED:
        job.error = reason
    return current


def _end_attempt(
    session: Session, job: Job, outcome: str, error: str | None, now: datetime
) -> None:
    attempts = table_of(JobAttempt)
    session.execute(
        update(attempts)
        .where(
            attempts.c.job_id == job.id,
            attempts.c.number == job.attempt,
            attempts.c.ended_at.is_(None),
        )
        .values(
            ended_at=now,
            outcome=outcome,
            error=error if outcome not in ("succeeded", "cancelled") else None,
        )
    )
