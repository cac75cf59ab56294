"""PostgreSQL notifications the store sends (delivered at commit; nothing on
SQLite): dispatchers LISTEN for queued jobs, API servers' SSE feeds for watched jobs
that changed."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Executable, Insert, func, text
from sqlalchemy.orm import Session

# Dispatchers LISTEN on this channel (PostgreSQL); the payload is the job id.
JOBS_CHANNEL = "lagtrain_jobs"
# API servers' SSE feeds LISTEN on this one: a watched job has a new status or new
# metric records (the payload is the job id).
FEED_CHANNEL = "lagtrain_job_feed"


def notify_feed(*, session: Session, job_id: int) -> None:
    """Tell the API servers' SSE feeds that `job_id` has something new (PostgreSQL;
    delivered at commit)."""
    notify(session, [FEED_CHANNEL], job_id)


def notify(session: Session, channels: list[str], job_id: int) -> None:
    # Delivered at commit, so a listener never wakes for a row it cannot see yet. One
    # statement whatever the number of channels.
    if not channels or session.get_bind().dialect.name != "postgresql":
        return
    calls = ", ".join(f"pg_notify(:channel{i}, :payload)" for i in range(len(channels)))
    params: dict[str, str] = {f"channel{i}": c for i, c in enumerate(channels)}
    session.execute(text(f"SELECT {calls}"), {**params, "payload": str(job_id)})


def with_notify(
    statement: Insert, *, session: Session, channels: Sequence[str], job_id: int
) -> Executable:
    """`statement` (an INSERT of one row) made to NOTIFY `channels` as well, in the same
    round trip: RETURNING pg_notify(...) runs once per inserted row (PostgreSQL;
    `statement` unchanged elsewhere)."""
    if not channels or session.get_bind().dialect.name != "postgresql":
        return statement
    payload = str(job_id)
    return statement.returning(*(func.pg_notify(channel, payload) for channel in channels))
