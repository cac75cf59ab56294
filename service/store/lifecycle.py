"""The job lifecycle (DESIGN §3): the only module that writes `jobs.status`.

Three entry points, one rule set (`ALLOWED`), each appending a job_events row
(who, when, from, to, why) through `_append_event`:
- `submit` gives a new job its first status, queued;
- `start_attempt` runs the queue's claim, the queued -> running edge, as ONE UPDATE
  statement (`claim_statement`: WHERE status = 'queued' enforces the edge in SQL),
  and records the attempt row with its fencing token. It is the only way to running,
  because only it creates a lease;
- `transition` performs every other change, checked against `ALLOWED`.
Terminal states never change. A caller presenting a fencing token (`expect_token`)
is checked against the job's current lease before anything else, so a dispatcher
that lost its lease always gets StaleLease, whatever happened since.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ScalarSelect, String, Update, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from service.errors import InvalidTransition, StaleLease
from service.store.models import Job, JobAttempt, JobEvent, UtcDateTime, table_of, utcnow

# Dispatchers LISTEN on this channel (PostgreSQL); the payload is the job id.
JOBS_CHANNEL = "lagtrain_jobs"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
)
# Statuses in which a dispatcher holds the lease (and an open attempt row).
ACTIVE: frozenset[JobStatus] = frozenset({JobStatus.RUNNING, JobStatus.CANCELLING})

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


def submit(session: Session, *, job: Job, actor: str, now: datetime | None = None) -> Job:
    """Add a new job as queued, with its first event; wakes dispatchers."""
    now = now or utcnow()
    job.status = JobStatus.QUEUED.value
    job.created_at = now
    session.add(job)
    session.flush()
    _append_event(session, job=job, at=now, actor=actor, from_status=None, to=JobStatus.QUEUED)
    _notify_queued(session, job.id)
    session.flush()
    return job


def claim_statement(candidate: ScalarSelect[int]) -> Update:
    """The claim as ONE statement: queued -> running, with a fresh lease, for the job
    `candidate` selects (a scalar subquery yielding one queued job id: the queue's
    eligibility and order, SKIP LOCKED on PostgreSQL). Build it once and run it with
    `start_attempt`; it binds :token, :expires, :dispatcher_id, :claim_now plus
    whatever `candidate` binds."""
    jobs = table_of(Job)
    return (
        update(jobs)
        .where(jobs.c.id == candidate, jobs.c.status == JobStatus.QUEUED.value)
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


def start_attempt(
    session: Session,
    *,
    claim: Update,
    params: Mapping[str, Any],
    dispatcher_id: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> Job | None:
    """Run a `claim_statement` (with the candidate's `params`), then record the attempt
    row and the running event. Returns the claimed job (its lease_token is the new
    attempt's fencing token), or None when no job was eligible."""
    now = now or utcnow()
    token = secrets.token_hex(16)
    expires = now + timedelta(seconds=lease_seconds)
    job: Job | None = session.scalars(
        select(Job).from_statement(claim),
        {
            **params,
            "token": token,
            "expires": expires,
            "dispatcher_id": dispatcher_id,
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
            "dispatcher_id": dispatcher_id,
            "lease_expires_at": expires,
            "started_at": now,
        },
    )
    _append_event(
        session,
        job=job,
        at=now,
        actor=f"dispatcher:{dispatcher_id}",
        from_status=JobStatus.QUEUED,
        to=JobStatus.RUNNING,
        reason=f"attempt {job.attempt} of {job.max_attempts}",
    )
    return job


def transition(
    session: Session,
    *,
    job: Job,
    to: JobStatus,
    actor: str,
    reason: str | None = None,
    expect_token: str | None = None,
    attempt_outcome: str | None = None,
    now: datetime | None = None,
) -> Job:
    """Move `job` to `to`, re-reading it under a row lock first.

    Raises StaleLease if `expect_token` is given and is not the current lease token,
    InvalidTransition for a forbidden edge (every edge out of a terminal status).
    Leaving running/cancelling ends the open attempt (`attempt_outcome`, default by
    target) and drops the lease; a failure's `reason` becomes the job's error.
    The re-read discards unflushed changes to `job`: make other changes after."""
    to = JobStatus(to)
    session.refresh(job, with_for_update=True)
    current = JobStatus(job.status)
    if expect_token is not None and expect_token != job.lease_token:
        raise StaleLease(f"job {job.id}: the lease token is not current (job is {current})")
    if current in TERMINAL:
        raise InvalidTransition(f"job {job.id} is {current}; a finished job never changes")
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"job {job.id}: {current} -> {to} is not allowed")
    if to is JobStatus.RUNNING:
        raise InvalidTransition(f"job {job.id}: only a claim (start_attempt) starts a job")
    if to in FENCED_TARGETS and expect_token is None:
        raise InvalidTransition(f"job {job.id}: only the lease holder can make it {to}")

    now = now or utcnow()
    if current in ACTIVE and to not in ACTIVE:
        outcome = attempt_outcome or _ATTEMPT_OUTCOME[to]
        _end_attempt(session, job=job, outcome=outcome, error=reason, now=now)
        job.lease_token = None
        job.lease_expires_at = None
    if to is JobStatus.QUEUED:
        job.dispatcher_id = None
    if to in TERMINAL:
        job.finished_at = now
    if to is JobStatus.FAILED:
        job.error = reason
    job.status = to.value
    _append_event(session, job=job, at=now, actor=actor, from_status=current, to=to, reason=reason)
    if to is JobStatus.QUEUED:
        _notify_queued(session, job.id)
    session.flush()
    return job


def _end_attempt(
    session: Session, *, job: Job, outcome: str, error: str | None, now: datetime
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


def _append_event(
    session: Session,
    *,
    job: Job,
    at: datetime,
    actor: str,
    from_status: JobStatus | None,
    to: JobStatus,
    reason: str | None = None,
) -> None:
    session.execute(
        insert(table_of(JobEvent)),
        {
            "job_id": job.id,
            "at": at,
            "actor": actor,
            "from_status": from_status.value if from_status is not None else None,
            "to_status": to.value,
            "attempt": job.attempt,
            "reason": reason,
        },
    )


def _notify_queued(session: Session, job_id: int) -> None:
    # Delivered at commit, so a dispatcher never wakes for a job it cannot see yet.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": JOBS_CHANNEL, "payload": str(job_id)},
        )
