"""Sweeps as the API lists and shows them: a page of the sweeps a viewer may see,
and each sweep's trials with their jobs' statuses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from service.store.models import Job, Sweep, SweepTrial
from service.store.users import Principal


def list_sweeps(
    *,
    session: Session,
    viewer: Principal,
    owner_id: int | None,
    status: str | None,
    finished_before: datetime | None,
    limit: int,
    before_id: int | None,
) -> list[Sweep]:
    """Newest first. Non-admins only ever see their own sweeps. `finished_before`
    (aware): only sweeps finished before it; an unfinished one (finished_at null)
    never matches."""
    query = select(Sweep).order_by(Sweep.id.desc()).limit(limit)
    if not viewer.is_admin:
        query = query.where(Sweep.owner_id == viewer.user_id)
    if owner_id is not None:
        query = query.where(Sweep.owner_id == owner_id)
    if status is not None:
        query = query.where(Sweep.status == status)
    if finished_before is not None:
        query = query.where(Sweep.finished_at < finished_before)
    if before_id is not None:
        query = query.where(Sweep.id < before_id)
    return list(session.scalars(query))


@dataclass(frozen=True)
class TrialRow:
    trial: SweepTrial
    job_status: str | None  # None until the trial's job is submitted


def trials_of(*, session: Session, sweep_ids: list[int]) -> dict[int, list[TrialRow]]:
    """Each sweep's trials in number order, with their jobs' statuses; a trial's
    pruning series and Optuna attributes (large) stay unread, and raise if touched."""
    found: dict[int, list[TrialRow]] = {sweep_id: [] for sweep_id in sweep_ids}
    unread = (SweepTrial.intermediate, SweepTrial.system_attrs)
    rows = session.execute(
        select(SweepTrial, Job.status)
        .options(*(defer(column, raiseload=True) for column in unread))
        .outerjoin(Job, Job.id == SweepTrial.job_id)
        .where(SweepTrial.sweep_id.in_(sweep_ids))
        .order_by(SweepTrial.sweep_id, SweepTrial.number)
    ).all()
    for trial, status in rows:
        found[trial.sweep_id].append(TrialRow(trial=trial, job_status=status))
    return found
