"""The queue's claim as one statement (queued -> running with a new lease and its
attempt row), for lifecycle.transition, which alone makes a job running."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, Update, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from service.schemas.quota import QuotaDefaults
from service.store.models import Job, JobAttempt, JobStatus, UtcDateTime, table_of
from service.store.queue_order import next_candidate


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


def start_attempt(session: Session, claim: Claim, now: datetime) -> Job | None:
    """Claim a job and open its attempt; None when none is eligible. The claim is a
    status change: only lifecycle.transition calls this (and appends the event)."""
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
