"""Fenced writes by the dispatcher that holds a job's lease (DESIGN §3).

Every function takes the attempt's fencing token and raises StaleLease unless it is
the job's current lease token: a dispatcher that lost its lease (paused,
partitioned, reaped) cannot touch the rerun. The job row is locked first, so a
write and a concurrent reap or claim never interleave. Store functions: `session`
keyword-only, flush only. (service.store.queue re-exports these names.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.errors import NotFound, SequenceGap, StaleLease
from service.store import lifecycle
from service.store.lifecycle import ACTIVE, JobStatus
from service.store.models import Checkpoint, Job, JobAttempt, Metric, table_of, utcnow


@dataclass(frozen=True)
class HeartbeatReply:
    status: JobStatus
    # True once someone asked to cancel: stop, then acknowledge_cancel().
    cancel_requested: bool
    lease_expires_at: datetime


@dataclass(frozen=True)
class MetricIn:
    seq: int
    round: int
    values: Mapping[str, float | int | None]
    time: datetime | None = None


def heartbeat(
    session: Session,
    *,
    job_id: int,
    token: str,
    lease_seconds: float,
    progress_round: int | None = None,
    now: datetime | None = None,
) -> HeartbeatReply:
    """Renew the lease by `lease_seconds` from now, optionally recording progress.

    A lease that has expired but was not reaped yet is renewed: nobody else holds it."""
    now = now or utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    jobs = table_of(Job)
    values: dict[str, Any] = {"lease_expires_at": expires}
    if progress_round is not None:
        values["progress_round"] = progress_round
    status = session.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.lease_token == token,
            jobs.c.status.in_([s.value for s in ACTIVE]),
        )
        .values(**values)
        .returning(jobs.c.status)
    ).scalar_one_or_none()
    if status is None:
        _raise_not_holder(session, job_id)
    attempts = table_of(JobAttempt)
    session.execute(
        update(attempts)
        .where(attempts.c.job_id == job_id, attempts.c.fencing_token == token)
        .values(lease_expires_at=expires)
    )
    current = JobStatus(status)
    return HeartbeatReply(
        status=current,
        cancel_requested=current is JobStatus.CANCELLING,
        lease_expires_at=expires,
    )


def append_metrics(
    session: Session,
    *,
    job_id: int,
    token: str,
    attempt: int,
    records: Sequence[MetricIn],
    now: datetime | None = None,
) -> int:
    """Store metric records; returns how many were new.

    Idempotent on (job, seq): a record whose seq is already stored is ignored (a
    re-sent batch, or a resumed attempt replaying rounds after its checkpoint). The
    new records must continue job.last_seq without a gap, else SequenceGap and
    nothing is written. Non-finite values (a diverged loss) are stored as null."""
    now = now or utcnow()
    job = _lease_holder(session, job_id, token)
    if attempt != job.attempt:
        raise StaleLease(f"job {job_id}: attempt {attempt} is not the current one")
    fresh: dict[int, MetricIn] = {}
    for record in records:
        if record.seq < 1:
            raise SequenceGap(f"job {job_id}: metric seq must be >= 1, got {record.seq}")
        if record.seq > job.last_seq:
            fresh.setdefault(record.seq, record)
    expected = job.last_seq + 1
    for seq in sorted(fresh):
        if seq != expected:
            raise SequenceGap(
                f"job {job_id}: metric seq {seq} leaves a gap, expected {expected} "
                f"(stored up to {job.last_seq})"
            )
        expected += 1
    ordered = [fresh[seq] for seq in sorted(fresh)]
    session.add_all(
        Metric(
            job_id=job_id,
            seq=r.seq,
            attempt=attempt,
            round=r.round,
            time=r.time or now,
            values=_json_safe(r.values),
        )
        for r in ordered
    )
    if ordered:
        job.last_seq = ordered[-1].seq
        # progress.round counts rounds completed (round is 0-based): 300/300 when done.
        job.progress_round = max(job.progress_round, max(r.round for r in ordered) + 1)
    session.flush()
    return len(ordered)


def record_checkpoint(
    session: Session,
    *,
    job_id: int,
    token: str,
    round: int,
    seq: int,
    uri: str,
    sha256: str,
    bytes: int,
    now: datetime | None = None,
) -> Checkpoint:
    """Record the checkpoint written at `round` (covering metrics up to `seq`). A
    resumed attempt that reaches a round its lost predecessor checkpointed replaces
    that row: the newest file for a round wins."""
    now = now or utcnow()
    job = _lease_holder(session, job_id, token)
    checkpoint = session.scalars(
        select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.round == round)
    ).one_or_none()
    if checkpoint is None:
        checkpoint = Checkpoint(job_id=job_id, round=round)
        session.add(checkpoint)
    checkpoint.attempt = job.attempt
    checkpoint.seq = seq
    checkpoint.uri = uri
    checkpoint.sha256 = sha256
    checkpoint.bytes = bytes
    checkpoint.created_at = now
    session.flush()
    return checkpoint


def finish(
    session: Session, *, job_id: int, token: str, summary: Mapping[str, Any] | None = None
) -> Job:
    """running/cancelling -> succeeded, with the run's summary."""
    job = _lease_holder(session, job_id, token)
    lifecycle.transition(
        session, job=job, to=JobStatus.SUCCEEDED, actor=_actor(job), expect_token=token
    )
    job.summary = dict(summary) if summary is not None else None
    session.flush()
    return job


def fail(session: Session, *, job_id: int, token: str, reason: str, retryable: bool) -> Job:
    """End the attempt as failed. Retryable with attempts left: back to queued (the
    next claim increments `attempt` and resumes from the newest checkpoint).
    Otherwise failed with `reason`. While cancelling, a retryable failure ends as
    cancelled (nobody wants a retry) and a permanent one as failed."""
    job = _lease_holder(session, job_id, token)
    if job.status == JobStatus.CANCELLING.value:
        to = JobStatus.CANCELLED if retryable else JobStatus.FAILED
    elif retryable and job.attempt < job.max_attempts:
        to = JobStatus.QUEUED
    else:
        to = JobStatus.FAILED
        if retryable:
            reason = f"{reason} (gave up after {job.attempt} of {job.max_attempts} attempts)"
    return lifecycle.transition(
        session,
        job=job,
        to=to,
        actor=_actor(job),
        reason=reason,
        expect_token=token,
        attempt_outcome="failed",
    )


def acknowledge_cancel(session: Session, *, job_id: int, token: str) -> Job:
    """cancelling -> cancelled, once the dispatcher has stopped the gang."""
    job = _lease_holder(session, job_id, token)
    return lifecycle.transition(
        session,
        job=job,
        to=JobStatus.CANCELLED,
        actor=_actor(job),
        reason="stopped on request",
        expect_token=token,
    )


def _lease_holder(session: Session, job_id: int, token: str) -> Job:
    """The job, locked, if `token` is its current lease token."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.lease_token is None or job.lease_token != token:
        raise StaleLease(f"job {job_id}: the lease token is not current (job is {job.status})")
    return job


def _raise_not_holder(session: Session, job_id: int) -> NoReturn:
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    if status is None:
        raise NotFound(f"job {job_id} not found")
    raise StaleLease(f"job {job_id}: the lease token is not current (job is {status})")


def _actor(job: Job) -> str:
    return f"dispatcher:{job.dispatcher_id}"


def _json_safe(values: Mapping[str, float | int | None]) -> dict[str, float | int | None]:
    # PostgreSQL's json type rejects NaN and Infinity.
    return {
        name: None if isinstance(v, float) and not math.isfinite(v) else v
        for name, v in values.items()
    }
