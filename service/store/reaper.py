"""The reaper: attempts whose lease expired (their dispatcher died, paused or lost
the database) end, and their jobs go back to the queue or finish. Dispatchers run it
in their maintenance, the API server at start."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store import lifecycle
from service.store.db import db_now
from service.store.models import ACTIVE, Job, JobStatus


def requeue_expired(
    *, session: Session, now: datetime | None = None, actor: str = "reaper"
) -> list[int]:
    """End every attempt whose lease expired (outcome 'lost'): running jobs go back to
    queued, or to failed once they have used max_attempts; cancelling jobs become
    cancelled. Returns the ids of the jobs it changed. `now`: the time to judge and
    stamp by (tests); None: the database's clock, and each change is stamped by
    lifecycle.transition once it holds the job (a change committed after the clock
    was read for the judgement, e.g. a dispatcher's note, comes before it)."""
    expired = session.scalars(
        select(Job)
        .where(
            Job.status.in_([s.value for s in ACTIVE]),
            Job.lease_expires_at < (now or db_now(session)),
        )
        .order_by(Job.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).all()
    for job in expired:
        attempts = f"{job.attempt} attempt{'s' if job.attempt != 1 else ''}"
        if job.status == JobStatus.CANCELLING.value:
            to, reason = lifecycle.end_of_cancelling(
                session=session, job=job, how="lease expired while cancelling"
            )
        elif job.attempt >= job.max_attempts:
            to, reason = JobStatus.FAILED, f"lease expired after {attempts}"
        else:
            to, reason = JobStatus.QUEUED, f"lease expired (after {attempts}); requeued"
        lifecycle.transition(
            session=session,
            job=job,
            to=to,
            actor=actor,
            reason=reason,
            attempt_outcome="lost",
            now=now,
        )
    return [job.id for job in expired]
