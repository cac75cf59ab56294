"""The job lifecycle (DESIGN §3). `transition` is the only code that writes
`jobs.status` and `job_events`: every change, the submit and the claim included,
goes through it and appends one event (who, when, from, to, why); the submit's and
the claim's single statements are built beside it (new_job, claim). `ALLOWED` is the
rule set; terminal states never change.

Fencing: a caller presenting a lease token (`expect_token`, or `lease_holder` for
writes that change no status) is checked against the job's current lease under a
row lock before anything else, so a dispatcher that lost its lease always gets
StaleLease, whatever happened since (its job deleted included).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import overload

from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session

from service.errors import InvalidTransition, NotFound, StaleLease

# Claim and JOBS_CHANNEL are re-exported: callers name them as lifecycle's.
from service.store.claim import Claim as Claim
from service.store.claim import start_attempt
from service.store.db import db_now
from service.store.models import (
    ACTIVE,
    TERMINAL,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
    table_of,
)
from service.store.new_job import insert_new
from service.store.notify import FEED_CHANNEL, event_insert, event_row
from service.store.notify import JOBS_CHANNEL as JOBS_CHANNEL

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

    Raises StaleLease if `expect_token` is given and is not the current lease token
    (or the job has been deleted meanwhile: NotFound without `expect_token`),
    InvalidTransition for a forbidden edge (every edge out of a terminal status).
    Leaving running/cancelling ends the open attempt (`attempt_outcome`, default by
    target) and drops the lease; a failure's `reason` becomes the job's error.
    Entering queued NOTIFYs dispatchers, and any change but the submit the API's SSE feeds
    (PostgreSQL, delivered at commit; in the event's INSERT)."""
    to = JobStatus(to)
    from_status: JobStatus | None
    if isinstance(job, Claim):
        if to is not JobStatus.RUNNING:
            raise InvalidTransition(f"a claim makes a job running, not {to}")
        claimed = start_attempt(session=session, claim=job, now=now)
        if claimed is None:
            return None
        (job, now), from_status = claimed, JobStatus.QUEUED
        reason = reason or f"attempt {job.attempt} of {job.max_attempts}"
    elif inspect(job).transient:
        if to is not JobStatus.QUEUED:
            raise InvalidTransition(f"a new job starts queued, not {to}")
        job.status = to.value
        job.created_at = now = now or db_now(session)
        insert_new(session=session, job=job, actor=actor, reason=reason)
        session.flush()
        return job
    else:
        from_status, now = _check_and_leave(
            session, job, to, reason, expect_token, attempt_outcome, now
        )
        job.status = to.value
    channels = [JOBS_CHANNEL, FEED_CHANNEL] if to is JobStatus.QUEUED else [FEED_CHANNEL]
    session.connection().execute(
        event_insert(session=session, channels=channels),
        event_row(job, now, actor, from_status, to, reason),
    )
    session.flush()
    return job


def note(*, session: Session, job_id: int, token: str, actor: str, reason: str) -> Job:
    """Append an event that changes no status (from = to = the current one), for
    something a job's owner should see in its history, e.g. a resume that fell back
    to an older checkpoint. Fenced like every write of a lease holder."""
    job = lease_holder(session=session, job_id=job_id, token=token)
    session.connection().execute(
        event_insert(session=session, channels=[FEED_CHANNEL]),
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


# The reason's prefix when the time limit (max_job_hours) asks a job to stop.
TIME_LIMIT = "time limit"


def end_of_cancelling(*, session: Session, job: Job, how: str | None) -> tuple[JobStatus, str]:
    """What a cancelling job ends as, and why, whoever ends it: `how` its attempt
    ended (a failure, a hand-back, an expired lease), None for the dispatcher's
    acknowledgement of the stop. Failed, with the time limit's reason (then `how`),
    when the time limit asked it to stop (max_job_hours ends a job failed, DESIGN
    §11); else cancelled. Read from the event that moved it to cancelling, not the
    latest: notes may follow it."""
    asked = session.scalar(
        select(JobEvent.reason)
        .where(
            JobEvent.job_id == job.id,
            JobEvent.to_status == JobStatus.CANCELLING.value,
            JobEvent.from_status != JobStatus.CANCELLING.value,
        )
        .order_by(JobEvent.id.desc())
        .limit(1)
    )
    if asked is not None and asked.startswith(TIME_LIMIT):
        return JobStatus.FAILED, asked if how is None else f"{asked}; {how}"
    return JobStatus.CANCELLED, how or "stopped on request"


def lease_holder(*, session: Session, job_id: int, token: str) -> Job:
    """The job, locked and re-read, if `token` is its current lease token; for fenced
    writes (metrics, checkpoints, the final status). StaleLease otherwise, also when
    the job no longer exists."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise gone_with_its_lease(job_id)
    if job.lease_token is None or job.lease_token != token:
        raise StaleLease(f"job {job_id}: the lease token is not current (job is {job.status})")
    return job


def relock(session: Session, job: Job) -> bool:
    """Lock `job`'s row and re-read it into `job`, discarding unflushed changes to it
    (as session.refresh would); False if the row is gone. Not session.refresh itself:
    it raises InvalidRequestError for a row deleted since `job` was read, and a
    finished job may be deleted at any time (DELETE /v1/jobs/{id})."""
    # Without no_autoflush, get would first write the unflushed changes to `job`
    # that refresh discards; with it, populate_existing overwrites them.
    with session.no_autoflush:
        fresh = session.get(Job, job.id, with_for_update=True, populate_existing=True)
    assert fresh is None or fresh is job, "relock needs a job of this session"
    return fresh is not None


def gone_with_its_lease(job_id: int) -> StaleLease:
    """What a fenced call about a job that is no longer there raises. Only a finished
    job is deleted, and its lease ended when it finished (the reaper may end a job
    whose dispatcher is paused), so its dispatcher lost the lease as surely as to a
    rerun: StaleLease makes it stop as it would then, where a NotFound would read as
    an unexpected error (retried every beat, a traceback each time)."""
    return StaleLease(f"job {job_id} no longer exists; its lease ended with it")


def _check_and_leave(
    session: Session,
    job: Job,
    to: JobStatus,
    reason: str | None,
    expect_token: str | None,
    attempt_outcome: str | None,
    now: datetime | None,
) -> tuple[JobStatus, datetime]:
    """For a stored job: lock and re-read it, check the edge to `to`, and make the
    changes besides the status itself (attempt, lease, times, error); returns the
    status it leaves and the change's time.

    The clock is read once the row lock is held (`now` None): a time read before
    waiting for the lock would precede the change of whoever held it (on PostgreSQL;
    SQLite's BEGIN IMMEDIATE already orders whole transactions). Callers that lock
    the row first (request_cancel, lease_holder) are safe either way."""
    if not relock(session, job):
        if expect_token is not None:
            raise gone_with_its_lease(job.id)
        raise NotFound(f"job {job.id} not found")
    now = now or db_now(session)
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
    return current, now


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
