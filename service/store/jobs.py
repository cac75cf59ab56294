"""Reading jobs for the API: visibility (owner or admin), lists, status history."""

from __future__ import annotations

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.schemas.resolved import ResolvedSpec
from service.store.models import Job, JobEvent
from service.store.queue import enqueue
from service.store.users import Principal


def get_visible_job(session: Session, *, job_id: int, viewer: Principal) -> Job:
    """The job if the viewer owns it or is an admin. Another user's job is reported
    exactly like a missing one, so ids do not leak who submitted what."""
    job = session.get(Job, job_id)
    if job is None or (job.owner_id != viewer.user_id and not viewer.is_admin):
        raise NotFound(f"job {job_id} not found")
    return job


def list_jobs(
    session: Session,
    *,
    viewer: Principal,
    owner_id: int | None,
    status: str | None,
    limit: int,
    before_id: int | None,
) -> list[Job]:
    """Newest first. Non-admins only ever see their own jobs, whatever owner_id says."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if not viewer.is_admin:
        query = query.where(Job.owner_id == viewer.user_id)
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    if status is not None:
        query = query.where(Job.status == status)
    if before_id is not None:
        query = query.where(Job.id < before_id)
    return list(session.scalars(query))


def latest_event(session: Session, *, job_id: int) -> JobEvent | None:
    return session.scalar(
        select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id.desc()).limit(1)
    )


def events_after(session: Session, *, job_id: int, after_id: int) -> list[JobEvent]:
    return list(
        session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
            .order_by(JobEvent.id)
        )
    )


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {key: value for key, value in rows}


def submit_job(
    session: Session,
    *,
    owner_id: int,
    spec: ResolvedSpec,
    idempotency_key: str | None,
    request_sha256: str | None,
) -> tuple[Job, bool]:
    """queue.enqueue, telling a new job (True) from an idempotent replay (False),
    including a replay that lost a race to a concurrent first use of the key."""
    created: list[object] = []

    def on_persist(_session: Session, instance: object) -> None:
        created.append(instance)

    event.listen(session, "pending_to_persistent", on_persist)
    try:
        job = enqueue(
            session,
            owner_id=owner_id,
            spec=spec,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
        )
    finally:
        event.remove(session, "pending_to_persistent", on_persist)
    return job, any(obj is job for obj in created)
