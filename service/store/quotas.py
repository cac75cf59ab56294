"""Quotas in force and usage per user, and the submit-time checks (429 naming the
quota). The running/CPU/GPU quotas are the claim's (service.store.queue_order): they
make a job wait, never refuse it."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import QuotaExceeded
from service.schemas.quota import QUOTA_FIELDS, QuotaDefaults, QuotaIn, QuotaOut, UsageOut
from service.store.models import ACTIVE, Checkpoint, Dataset, Job, JobStatus, User


def quota_in_force(user: User, defaults: QuotaDefaults) -> QuotaOut:
    """The user's own value for each quota, else the server's default."""
    values = {}
    for name in QUOTA_FIELDS:
        own = getattr(user, name)
        values[name] = own if own is not None else getattr(defaults, name)
    return QuotaOut.model_validate(values)


def set_quota(*, session: Session, user: User, change: QuotaIn) -> dict[str, object]:
    """Apply the fields `change` sets (null = back to the default); returns
    {field: [old, new]} for the audit log."""
    changed: dict[str, object] = {}
    for name in change.model_fields_set:
        old, new = getattr(user, name), getattr(change, name)
        if old != new:
            setattr(user, name, new)
            changed[name] = [old, new]
    session.flush()
    return changed


def usage(*, session: Session, user_ids: list[int]) -> dict[int, UsageOut]:
    """Each user's usage: jobs by status, CPUs/GPUs held by running jobs, and storage
    (uploads plus every stored checkpoint of their jobs)."""
    by_status: dict[int, dict[str, int]] = {uid: {} for uid in user_ids}
    held: dict[int, tuple[float, float]] = {}
    storage: dict[int, int] = dict.fromkeys(user_ids, 0)
    if user_ids:
        for owner_id, status, n in session.execute(
            select(Job.owner_id, Job.status, func.count())
            .where(Job.owner_id.in_(user_ids))
            .group_by(Job.owner_id, Job.status)
        ):
            by_status[owner_id][status] = n
        for owner_id, cpus, gpus in session.execute(
            select(Job.owner_id, func.sum(Job.cpus_required), func.sum(Job.gpus_required))
            .where(Job.owner_id.in_(user_ids), Job.status.in_([s.value for s in ACTIVE]))
            .group_by(Job.owner_id)
        ):
            held[owner_id] = (float(cpus or 0.0), float(gpus or 0.0))
        for owner_id, n in session.execute(
            select(Dataset.owner_id, func.sum(Dataset.bytes))
            .where(Dataset.owner_id.in_(user_ids))
            .group_by(Dataset.owner_id)
        ):
            storage[owner_id] += int(n or 0)
        for owner_id, n in session.execute(
            select(Job.owner_id, func.sum(Checkpoint.bytes))
            .join(Job, Job.id == Checkpoint.job_id)
            .where(Job.owner_id.in_(user_ids))
            .group_by(Job.owner_id)
        ):
            storage[owner_id] += int(n or 0)
    out: dict[int, UsageOut] = {}
    for uid in user_ids:
        counts = by_status[uid]
        cpus, gpus = held.get(uid, (0.0, 0.0))
        out[uid] = UsageOut(
            running_jobs=sum(counts.get(s.value, 0) for s in ACTIVE),
            queued_jobs=counts.get(JobStatus.QUEUED.value, 0),
            cpus=cpus,
            gpus=gpus,
            storage_bytes=storage[uid],
            jobs_total=sum(counts.values()),
            jobs_by_status=counts,
        )
    return out


def check_can_submit(
    *,
    session: Session,
    user_id: int,
    defaults: QuotaDefaults,
    jobs: int = 1,
    cpus: float = 0.0,
    gpus: float = 0.0,
) -> None:
    """QuotaExceeded (429) unless the user may queue `jobs` more jobs whose gangs
    need `cpus`/`gpus` each: under max_queued_jobs, under max_storage_bytes, and no
    gang larger than the CPU/GPU quota (such a job could never start)."""
    user = session.get(User, user_id)
    assert user is not None
    quota = quota_in_force(user, defaults)
    used = usage(session=session, user_ids=[user_id])[user_id]
    if used.queued_jobs + jobs > quota.max_queued_jobs:
        raise QuotaExceeded(
            f"max_queued_jobs: {used.queued_jobs} queued + {jobs} new exceeds the quota of "
            f"{quota.max_queued_jobs}"
        )
    check_storage(quota=quota, used=used, adding=0)
    if cpus > quota.max_cpus:
        raise QuotaExceeded(
            f"max_cpus: the gang needs {cpus:g} CPUs, the quota is {quota.max_cpus:g}"
        )
    if gpus > quota.max_gpus:
        raise QuotaExceeded(
            f"max_gpus: the gang needs {gpus:g} GPUs, the quota is {quota.max_gpus:g}"
        )


def check_storage(*, quota: QuotaOut, used: UsageOut, adding: int) -> None:
    """QuotaExceeded unless storing `adding` more bytes keeps the user within
    max_storage_bytes (a submit adds 0 but is refused once the quota is full)."""
    if used.storage_bytes + adding > quota.max_storage_bytes or (
        adding == 0 and used.storage_bytes >= quota.max_storage_bytes > 0
    ):
        raise QuotaExceeded(
            f"max_storage_bytes: {used.storage_bytes:,} bytes stored"
            + (f" + {adding:,} new" if adding else "")
            + f" exceeds the quota of {quota.max_storage_bytes:,}"
        )


def check_upload_storage(
    *, session: Session, user_id: int, defaults: QuotaDefaults, adding: int
) -> None:
    """QuotaExceeded unless `adding` more stored bytes fit the user's storage quota."""
    user = session.get(User, user_id)
    assert user is not None
    used = usage(session=session, user_ids=[user_id])[user_id]
    check_storage(quota=quota_in_force(user, defaults), used=used, adding=adding)
