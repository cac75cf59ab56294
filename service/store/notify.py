"""PostgreSQL notifications the store sends (delivered at commit; nothing on
SQLite): dispatchers LISTEN for queued jobs, API servers' SSE feeds for watched jobs
that changed."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Insert, String, cast, func, insert, text
from sqlalchemy.orm import Session

from service.store.models import Job, JobEvent, JobStatus, table_of

# Dispatchers LISTEN on this channel (PostgreSQL); the payload is the job id.
JOBS_CHANNEL = "lagtrain_jobs"
# API servers' SSE feeds LISTEN on this one: a watched job has a new status or new
# metric records (the payload is the job id).
FEED_CHANNEL = "lagtrain_job_feed"


def notify_feed(*, session: Session, job_id: int) -> None:
    """Tell the API servers' SSE feeds that `job_id` has something new (PostgreSQL;
    delivered at commit)."""
    notify(session=session, channels=[FEED_CHANNEL], job_id=job_id)


def notify(*, session: Session, channels: list[str], job_id: int) -> None:
    # Delivered at commit, so a listener never wakes for a row it cannot see yet. One
    # statement whatever the number of channels.
    if not channels or session.get_bind().dialect.name != "postgresql":
        return
    calls = ", ".join(f"pg_notify(:channel{i}, :payload)" for i in range(len(channels)))
    params: dict[str, str] = {f"channel{i}": c for i, c in enumerate(channels)}
    session.execute(text(f"SELECT {calls}"), {**params, "payload": str(job_id)})


def event_insert(*, session: Session, channels: Sequence[str]) -> Insert:
    """The INSERT of one job event that also NOTIFYs `channels` in the same round trip
    (PostgreSQL: RETURNING pg_notify(channel, the row's job_id), once per inserted
    row; a plain INSERT elsewhere). Built once per dialect and channel list: a
    statement built per call costs its cache key on every event."""
    postgres = session.get_bind().dialect.name == "postgresql"
    return _event_insert(tuple(channels) if postgres else ())


@functools.cache
def _event_insert(channels: tuple[str, ...]) -> Insert:
    events = table_of(JobEvent)
    statement = insert(events)
    if not channels:
        return statement
    payload = cast(events.c.job_id, String)
    return statement.returning(*(func.pg_notify(channel, payload) for channel in channels))


def event_row(
    job: Job,
    at: datetime,
    actor: str,
    from_status: JobStatus | None,
    to: JobStatus,
    reason: str | None,
) -> dict[str, object]:
    """The parameters of event_insert for `job` moving from `from_status` (None: a new
    job) to `to`."""
    return {
        "job_id": job.id,
        "at": at,
        "actor": actor,
        "from_status": from_status.value if from_status is not None else None,
        "to_status": to.value,
        "attempt": job.attempt,
        "reason": reason,
    }
