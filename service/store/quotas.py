"""Quotas in force and usage per user, and the submit-time checks (429 naming the
quota). The running/CPU/GPU quotas are the claim's (service.store.queue_order): they
make a job wait, never refuse it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from service.errors import QuotaExceeded
from service.schemas.quota import QUOTA_FIELDS, QuotaDefaults, QuotaIn, QuotaOut, UsageOut
from service.store.models import (
    ACTIVE,
    Job,
    JobStatus,
    User,
    UtcDateTime,
    table_of,
    utcnow,
)
from service.store.queue_order import exceeds
from service.store.stored_bytes import (
    checkpoint_bytes,
    checkpoint_bytes_by_owner,
    upload_bytes,
    upload_bytes_by_owner,
)


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


@dataclass(frozen=True)
class RunningUsage:
    """What a user's running (and cancelling) jobs hold: all of usage that the claim's
    quotas, and explain's reasons for them, read."""

    running_jobs: int = 0
    cpus: float = 0.0
    gpus: float = 0.0


def running_usage(*, session: Session, user_ids: list[int]) -> dict[int, RunningUsage]:
    """RunningUsage of each user, in one read of the live jobs (the status index):
    what explain needs, without `usage`'s counts over the users' whole history and
    its storage sums over their checkpoints."""
    held = dict.fromkeys(user_ids, RunningUsage())
    if user_ids:
        for owner_id, n, cpus, gpus in session.execute(
            select(
                Job.owner_id,
                func.count(),
                func.sum(Job.cpus_required),
                func.sum(Job.gpus_required),
            )
            .where(Job.status.in_([s.value for s in ACTIVE]), Job.owner_id.in_(user_ids))
            .group_by(Job.owner_id)
        ):
            held[owner_id] = RunningUsage(int(n), float(cpus or 0.0), float(gpus or 0.0))
    return held


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
        for by_owner in (upload_bytes_by_owner(user_ids), checkpoint_bytes_by_owner(user_ids)):
            for owner_id, n in session.execute(by_owner):
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


# What the submit-time checks need (they run on every submit): the user's own limits
# (NULL: the server's default), their queued jobs and their stored bytes (uploads
# plus checkpoints: stored_bytes), as columns correlated to the `users` row. Built
# once per dialect.
_JOBS = table_of(Job)


def _standing_columns(
    *, postgres: bool
) -> tuple[QueryableAttribute[Any] | ColumnElement[Any], ...]:
    """The standing's columns; `postgres`: its dialect (stored_bytes' two forms)."""
    return (
        User.max_queued_jobs,
        User.max_storage_bytes,
        User.max_cpus,
        User.max_gpus,
        select(func.count())
        .select_from(_JOBS)
        .where(_JOBS.c.owner_id == User.id, _JOBS.c.status == JobStatus.QUEUED.value)
        .scalar_subquery()
        .label("queued"),
        upload_bytes().label("uploads"),
        checkpoint_bytes(postgres=postgres).label("checkpoints"),
    )


_SUBMIT_STANDING = select(*_standing_columns(postgres=False)).where(User.id == bindparam("user_id"))
# On PostgreSQL it also reads db_now's clock: the submit's timestamp, without a round
# trip of its own.
_SUBMIT_STANDING_PG = select(
    *_standing_columns(postgres=True), func.clock_timestamp(type_=UtcDateTime()).label("clock")
).where(User.id == bindparam("user_id"))
# FOR NO KEY UPDATE: it waits for another transaction's check of the same user, but
# not for inserts that merely reference the user (jobs, datasets: FOR KEY SHARE).
_LOCK_OWNER = select(User.id).where(User.id == bindparam("user_id")).with_for_update(key_share=True)


def lock_owner(*, session: Session, user_id: int) -> None:
    """Hold the user's quota lock until the transaction ends, so that two concurrent
    submits (or uploads) of one user cannot both pass a check that counts what the
    other is adding. PostgreSQL: the `users` row, locked in this statement, so that
    the standing, read in a later one, sees every job and dataset committed before
    it (at READ COMMITTED a statement reads what was committed when it began: a lock
    taken by the same statement that counts would count too early). SQLite: nothing
    to do, a write transaction (BEGIN IMMEDIATE) already excludes every other."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(_LOCK_OWNER, {"user_id": user_id}).one()


@dataclass(frozen=True)
class Standing:
    """A user's quotas in force and what counts against them, as a submit reads them."""

    max_queued_jobs: int
    max_storage_bytes: int
    max_cpus: float
    max_gpus: float
    queued_jobs: int
    storage_bytes: int
    now: datetime  # the database's clock (db_now)


def _standing(
    session: Session, user_id: int, defaults: QuotaDefaults, *, owner_locked: bool
) -> Standing:
    """The user's standing, under their quota lock (taken here unless `owner_locked`:
    the caller's statement took it, e.g. the submit's token check)."""
    if not owner_locked:
        lock_owner(session=session, user_id=user_id)
    postgres = session.get_bind().dialect.name == "postgresql"
    query = _SUBMIT_STANDING_PG if postgres else _SUBMIT_STANDING
    # Core rows on the session's connection: the ORM's execution layer costs more CPU
    # than the statement's own client side (issue 13). Its autoflush is kept: a job
    # added in this transaction counts as queued.
    session.flush()
    row = session.connection().execute(query, {"user_id": user_id}).one()

    def own(name: str) -> Any:
        value = getattr(row, name)
        return value if value is not None else getattr(defaults, name)

    return Standing(
        max_queued_jobs=own("max_queued_jobs"),
        max_storage_bytes=own("max_storage_bytes"),
        max_cpus=own("max_cpus"),
        max_gpus=own("max_gpus"),
        queued_jobs=int(row.queued),
        storage_bytes=int(row.uploads) + int(row.checkpoints),
        now=row.clock if postgres else utcnow(),
    )


def check_can_submit(
    *,
    session: Session,
    user_id: int,
    defaults: QuotaDefaults,
    jobs: int = 1,
    cpus: float = 0.0,
    gpus: float = 0.0,
    owner_locked: bool = False,
    new: str = "new",
) -> datetime:
    """QuotaExceeded (429) unless the user may queue `jobs` more jobs (`new` names
    them in the message) whose gangs need `cpus`/`gpus` each: under max_queued_jobs,
    under max_storage_bytes, and no gang larger than the CPU/GPU quota (such a job
    could never start). Takes the user's quota lock (lock_owner) unless
    `owner_locked`, and holds it to the end of the transaction, in which the caller
    inserts the jobs. Returns the database's clock (db_now), read in the same
    statement, for the submit's timestamp."""
    st = _standing(session, user_id, defaults, owner_locked=owner_locked)
    if st.queued_jobs + jobs > st.max_queued_jobs:
        raise QuotaExceeded(
            f"max_queued_jobs: {st.queued_jobs} queued + {jobs} {new} exceeds the quota of "
            f"{st.max_queued_jobs}"
        )
    _check_storage(st.storage_bytes, st.max_storage_bytes, adding=0)
    if why := _gang_over(st, cpus, gpus):
        raise QuotaExceeded(why)
    return st.now


def gang_over_quota(
    *, session: Session, user_id: int, defaults: QuotaDefaults, cpus: float, gpus: float
) -> str | None:
    """Why a gang of `cpus`/`gpus` could never start under the user's CPU/GPU quota,
    or None: a sweep's trial point, judged as its submit was at the space's corners,
    under the quota as it is now (an admin may have lowered it since)."""
    return _gang_over(_standing(session, user_id, defaults, owner_locked=False), cpus, gpus)


def _gang_over(st: Standing, cpus: float, gpus: float) -> str | None:
    """A gang over the quota by itself could never start: say what sizes it."""
    if exceeds(cpus, st.max_cpus):
        return (
            f"max_cpus: the gang needs {cpus:g} CPUs (the coordinator's and "
            f"distributed.workers x cpus_per_worker), the quota is {st.max_cpus:g}; it could "
            "never start: fewer workers or CPUs per worker, or ask an admin to raise the quota"
        )
    if exceeds(gpus, st.max_gpus):
        return (
            f"max_gpus: the gang needs {gpus:g} GPUs (distributed.workers x gpus_per_worker), "
            f"the quota is {st.max_gpus:g}; it could never start: fewer workers or GPUs per "
            "worker, or ask an admin to raise the quota"
        )
    return None


def _check_storage(used: int, quota: int, *, adding: int) -> None:
    """QuotaExceeded unless storing `adding` more bytes keeps the user within
    max_storage_bytes (a submit adds 0 but is refused once the quota is full, its
    checkpoints being stored; a quota of 0 is full from the start)."""
    if used + adding > quota or (adding == 0 and used >= quota):
        over = (
            f"{used:,} bytes stored + {adding:,} new exceeds the quota of {quota:,}"
            if adding
            else f"{used:,} bytes stored: the quota of {quota:,} is full"
            if used == quota
            else f"{used:,} bytes stored exceeds the quota of {quota:,}"
        )
        raise QuotaExceeded(
            f"max_storage_bytes: {over}; deleting finished jobs' checkpoints, "
            "finished jobs or uploads frees it"
        )


def check_upload_storage(
    *, session: Session, user_id: int, defaults: QuotaDefaults, adding: int
) -> None:
    """QuotaExceeded unless `adding` more stored bytes fit the user's storage quota;
    takes the user's quota lock (lock_owner) for the rest of the transaction."""
    st = _standing(session, user_id, defaults, owner_locked=False)
    _check_storage(st.storage_bytes, st.max_storage_bytes, adding=adding)
