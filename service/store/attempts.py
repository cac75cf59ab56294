"""Attempts: a dispatcher claims a job, holds its lease (heartbeat) and ends the
attempt (finish, fail, acknowledge a cancel); the reaper (service.store.reaper,
re-exported here) ends attempts whose lease expired.

Every call after the claim presents the attempt's fencing token and raises
StaleLease unless it is the job's current lease token: a dispatcher that lost its
lease (paused, partitioned, reaped) cannot touch the rerun. Status changes go
through lifecycle.transition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.errors import StaleLease
from service.schemas.gang import GangMemory
from service.schemas.node_fit import ClusterRoom, NodeShape, PassedOver
from service.schemas.quota import QuotaDefaults
from service.store import lifecycle
from service.store.checkpoints import CheckpointRef, checkpoint_ref, latest_checkpoint
from service.store.claim import Claim
from service.store.db import db_now
from service.store.lifecycle import lease_holder
from service.store.models import ACTIVE, TERMINAL, Job, JobAttempt, JobStatus, json_safe, table_of
from service.store.reaper import requeue_expired as requeue_expired
from service.store.time_limit import over_time_limit


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
    # Each Ray bundle's memory reservation (None for jobs from before migration 0007).
    memory: GangMemory | None = None


@dataclass(frozen=True)
class HeartbeatReply:
    status: JobStatus
    # True once someone asked to cancel: stop, then acknowledge_cancel().
    cancel_requested: bool
    lease_expires_at: datetime


def claim_next(
    *,
    session: Session,
    dispatcher_id: str,
    lease_seconds: float,
    free_cpus: float,
    free_gpus: float,
    free_nodes: tuple[NodeShape, ...] | None = None,
    passed_over: Callable[[PassedOver], None] | None = None,
    known_unfit: tuple[int, ...] = (),
    now: datetime | None = None,
    quota_defaults: QuotaDefaults | None = None,
    fair_share_window: timedelta = timedelta(0),
    hold_room_after: timedelta | None = None,
    room: ClusterRoom | None = None,
) -> ClaimedJob | None:
    """Claim the next eligible job (service.store.queue_order), or None: the Claim's
    transition (its fields say what the arguments mean); the resume lookup follows in
    the caller's transaction."""
    job = lifecycle.transition(
        session=session,
        job=Claim(
            dispatcher_id=dispatcher_id,
            lease_seconds=lease_seconds,
            free_cpus=free_cpus,
            free_gpus=free_gpus,
            free_nodes=free_nodes,
            passed_over=passed_over,
            known_unfit=known_unfit,
            quota_defaults=quota_defaults,
            fair_share_window=fair_share_window,
            hold_room_after=hold_room_after,
            room=room,
        ),
        to=JobStatus.RUNNING,
        actor=f"dispatcher:{dispatcher_id}",
        now=now,
    )
    if job is None:
        return None
    assert job.lease_token is not None and job.lease_expires_at is not None
    # Checkpoints are written by a lease holder, so a first attempt has none.
    checkpoint = None if job.attempt == 1 else latest_checkpoint(session=session, job_id=job.id)
    return ClaimedJob(
        job_id=job.id,
        owner_id=job.owner_id,
        attempt=job.attempt,
        fencing_token=job.lease_token,
        lease_expires_at=job.lease_expires_at,
        spec=dict(job.spec),
        resume=None if checkpoint is None else checkpoint_ref(checkpoint),
        last_seq=job.last_seq,
        memory=None
        if job.replica_memory_bytes is None or job.coordinator_memory_bytes is None
        else GangMemory(job.replica_memory_bytes, job.coordinator_memory_bytes),
    )


def heartbeat(
    *,
    session: Session,
    job_id: int,
    token: str,
    lease_seconds: float,
    progress_round: int | None = None,
    default_max_job_hours: float,
    now: datetime | None = None,
) -> HeartbeatReply:
    """Renew the lease by `lease_seconds` from now, optionally recording progress.

    A lease that has expired but was not reaped yet is renewed: nobody else holds it.
    A running job past its owner's max_job_hours (their own, else the
    server's `default_max_job_hours`) is asked to stop here: the
    reply says cancel, and acknowledge_cancel ends it failed ("time limit ...")."""
    given_now, now = now, now or db_now(session)
    expires = now + timedelta(seconds=lease_seconds)
    jobs = table_of(Job)
    values: dict[str, Any] = {"lease_expires_at": expires}
    if progress_round is not None:
        values["progress_round"] = progress_round
    # One guarded UPDATE, no row lock first: the beat is the most frequent write.
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
        current = session.scalar(select(Job.status).where(Job.id == job_id))
        if current is None:
            raise lifecycle.gone_with_its_lease(job_id)
        raise StaleLease(f"job {job_id}: the lease token is not current (job is {current})")
    attempts = table_of(JobAttempt)
    session.execute(
        update(attempts)
        .where(attempts.c.job_id == job_id, attempts.c.fencing_token == token)
        .values(lease_expires_at=expires)
    )
    current_status = JobStatus(status)
    if current_status is JobStatus.RUNNING:
        over = over_time_limit(
            session=session, job_id=job_id, now=now, default_hours=default_max_job_hours
        )
        if over is not None:
            job = lease_holder(session=session, job_id=job_id, token=token)
            lifecycle.transition(
                session=session,
                job=job,
                to=JobStatus.CANCELLING,
                actor="time-limit",
                reason=over,
                now=given_now,  # None: stamped once it holds the lock
            )
            current_status = JobStatus.CANCELLING
    return HeartbeatReply(
        status=current_status,
        cancel_requested=current_status is JobStatus.CANCELLING,
        lease_expires_at=expires,
    )


def finish(
    *, session: Session, job_id: int, token: str, summary: Mapping[str, Any] | None = None
) -> Job:
    """running/cancelling -> succeeded, with the run's summary (NaN/inf stored as null)."""
    job = lease_holder(session=session, job_id=job_id, token=token)
    lifecycle.transition(
        session=session, job=job, to=JobStatus.SUCCEEDED, actor=_actor(job), expect_token=token
    )
    return _keep_summary(session, job, summary)


def fail(
    *,
    session: Session,
    job_id: int,
    token: str,
    reason: str,
    retryable: bool,
    summary: Mapping[str, Any] | None = None,
) -> Job:
    """End the attempt as failed. Retryable with attempts left: back to queued (the
    next claim increments `attempt` and resumes from the newest checkpoint).
    Otherwise failed with `reason`. While cancelling, a retryable failure ends as the
    stop would (nobody wants a retry: lifecycle.end_of_cancelling, which also names
    the time limit in the reason when it asked for the stop) and a permanent one as
    failed. `summary`: the rounds that ran (kept if the job ends, not if it retries)."""
    job = lease_holder(session=session, job_id=job_id, token=token)
    if job.status == JobStatus.CANCELLING.value:
        to, reason = lifecycle.end_of_cancelling(session=session, job=job, how=reason)
        if not retryable:  # a real error: the job failed, whoever asked for the stop
            to = JobStatus.FAILED
    elif retryable and job.attempt < job.max_attempts:
        to = JobStatus.QUEUED
    else:
        to = JobStatus.FAILED
        if retryable:
            reason = f"{reason} (gave up after {job.attempt} of {job.max_attempts} attempts)"
    lifecycle.transition(
        session=session,
        job=job,
        to=to,
        actor=_actor(job),
        reason=reason,
        expect_token=token,
        attempt_outcome="failed",
    )
    return _keep_summary(session, job, summary)


def release(
    *,
    session: Session,
    job_id: int,
    token: str,
    reason: str,
    summary: Mapping[str, Any] | None = None,
) -> Job:
    """Hand a running job back to the queue without consuming an attempt (a worker
    draining for a deploy): running -> queued, the attempt ends 'released', and
    max_attempts grows by one so the attempts left stay as they were. While
    cancelling, the job ends as the cancel would instead (nobody wants it rerun), with
    `summary`, the rounds that ran."""
    job = lease_holder(session=session, job_id=job_id, token=token)
    if job.status == JobStatus.CANCELLING.value:
        to, why = lifecycle.end_of_cancelling(session=session, job=job, how=reason)
        lifecycle.transition(
            session=session, job=job, to=to, actor=_actor(job), reason=why, expect_token=token
        )
        return _keep_summary(session, job, summary)
    lifecycle.transition(
        session=session,
        job=job,
        to=JobStatus.QUEUED,
        actor=_actor(job),
        reason=f"{reason}; handed back without using an attempt",
        expect_token=token,
        attempt_outcome="released",
    )
    # After the transition: it re-reads the row, discarding earlier changes.
    job.max_attempts += 1
    session.flush()
    return job


def acknowledge_cancel(
    *, session: Session, job_id: int, token: str, summary: Mapping[str, Any] | None = None
) -> Job:
    """cancelling -> cancelled, once the dispatcher has stopped the gang; -> failed
    when the time limit asked it to stop (its checkpoints are kept). `summary`: the
    rounds that ran."""
    job = lease_holder(session=session, job_id=job_id, token=token)
    to, why = lifecycle.end_of_cancelling(session=session, job=job, how=None)
    lifecycle.transition(
        session=session, job=job, to=to, actor=_actor(job), reason=why, expect_token=token
    )
    return _keep_summary(session, job, summary)


def _keep_summary(session: Session, job: Job, summary: Mapping[str, Any] | None) -> Job:
    """Store the run's summary (NaN/inf as null) with a job its dispatcher ended, after
    the transition (it re-reads the row). Every end, not only success: a job stopped
    or failed after 900 rounds keeps their traffic and last metrics. A job going back
    to the queue gets none: the attempt that ends it writes one."""
    if summary is not None and job.status in {s.value for s in TERMINAL}:
        job.summary = json_safe(dict(summary))
        session.flush()
    return job


def _actor(job: Job) -> str:
    return f"dispatcher:{job.dispatcher_id}"
