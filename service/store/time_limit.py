"""The time limit (max_job_hours): whether a running job has run past its owner's
limit, checked by the heartbeat (service.store.attempts), which then asks it to stop."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store import lifecycle
from service.store.models import Job, User


def over_time_limit(
    *, session: Session, job_id: int, now: datetime, default_hours: float
) -> str | None:
    """The reason to stop a running job past its owner's max_job_hours (counted from
    its first start, requeues included), or None. `default_hours`: the server's, for
    an owner without their own."""
    row = session.execute(
        select(Job.started_at, User.max_job_hours)
        .join(User, User.id == Job.owner_id)
        .where(Job.id == job_id)
    ).one()
    hours = default_hours if row.max_job_hours is None else row.max_job_hours
    if row.started_at is None or now - row.started_at <= timedelta(hours=hours):
        return None
    return (
        f"{lifecycle.TIME_LIMIT}: ran {_duration(now - row.started_at)}, "
        f"the owner's max_job_hours is {hours:g}"
    )


def _duration(span: timedelta) -> str:
    """A run's length as a person reads it: '1 h 1 min', '11 s' (a limit of a few
    seconds read 'ran 0.00 h')."""
    seconds = round(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
