"""A sweep controller's side of the store. A *step* advances one sweep: observe its
trials' jobs, persist what the sampler and pruner decided, submit pending trials, and
settle the sweep's status. One controller at a time holds a sweep's step lease
(`take_step`); every write of the step presents its token (`step_holder`, under the
sweep's row lock), so a controller that lost the lease (paused past it, partitioned)
gets StaleLease and cannot add a trial or submit a job twice.

An asked point is stored as a `pending` trial before its job is submitted (two
transactions): a crash between them leaves a pending trial that the next step
submits; a crash before the first loses only an ask nobody saw.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound, StaleLease
from service.store import jobs, lifecycle
from service.store.db import db_now
from service.store.models import (
    TERMINAL,
    Job,
    JobStatus,
    Sweep,
    SweepStatus,
    SweepTrial,
    TrialState,
    table_of,
    utcnow,
)
from service.store.sweep_snapshot import SweepSnapshot, TrialView
from service.store.sweep_trials import (
    best_trials,
    objective_metrics,
    read_intermediate,
    record_result,
)
from service.store.sweeps import (
    ACTIVE_SWEEP,
    OPEN_TRIAL,
    SWEEP_TERMINAL,
    active_trial_jobs,
    adds_trials,
    set_status,
)
from service.store.users import acting_for

__all__ = ["SweepSnapshot", "TrialView"]  # the controller and the sampler take them here


def active_sweep_ids(*, session: Session) -> list[int]:
    """Oldest first: a poll steps (and queues the trials of) sweeps in the order they
    were submitted, not in whatever order the table's pages hold them."""
    return list(
        session.scalars(
            select(Sweep.id)
            .where(Sweep.status.in_([s.value for s in ACTIVE_SWEEP]))
            .order_by(Sweep.id)
        )
    )


def take_step(
    *,
    session: Session,
    sweep_id: int,
    controller_id: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> str | None:
    """The sweep's step lease for this controller (a new token), or None if another
    controller holds an unexpired one or the sweep is not active. One guarded UPDATE:
    of two controllers racing, one gets the row. Judged and written by the database's
    clock (db_now): controllers on hosts whose clocks differ see one expiry. A lease
    this controller still holds is taken again: its release failed (a store outage
    in the middle of a step), and a controller steps its sweeps one at a time, so no
    step of its own holds it now — the sweep waited out the whole lease before."""
    now = now or db_now(session)
    token = secrets.token_hex(16)
    sweeps = table_of(Sweep)
    taken = session.execute(
        update(sweeps)
        .where(
            sweeps.c.id == sweep_id,
            sweeps.c.status.in_([s.value for s in ACTIVE_SWEEP]),
            or_(
                sweeps.c.step_expires_at.is_(None),
                sweeps.c.step_expires_at < now,
                sweeps.c.controller_id == controller_id,
            ),
        )
        .values(
            step_token=token,
            step_expires_at=now + timedelta(seconds=lease_seconds),
            controller_id=controller_id,
        )
        .returning(sweeps.c.id)
    ).scalar_one_or_none()
    return token if taken is not None else None


def step_holder(*, session: Session, sweep_id: int, token: str) -> Sweep:
    """The sweep, locked and re-read, if `token` is its current step token."""
    sweep = session.get(Sweep, sweep_id, with_for_update=True, populate_existing=True)
    if sweep is None:
        raise NotFound(f"sweep {sweep_id} not found")
    if sweep.step_token != token:
        raise StaleLease(f"sweep {sweep_id}: the step token is not current")
    return sweep


def renew_step(*, session: Session, sweep_id: int, token: str, lease_seconds: float) -> None:
    """The step lease `token` holds, extended to `lease_seconds` from now (the
    database's clock); StaleLease if it is no longer the sweep's. A step whose asks
    outlast the lease renews it between asks: before, another controller took the
    expired lease, the first then lost its writes, and each took it from the other
    in turn for ever, no trial recorded (a review)."""
    sweeps = table_of(Sweep)
    renewed = session.execute(
        update(sweeps)
        .where(sweeps.c.id == sweep_id, sweeps.c.step_token == token)
        .values(step_expires_at=db_now(session) + timedelta(seconds=lease_seconds))
        .returning(sweeps.c.id)
    ).scalar_one_or_none()
    if renewed is None:
        raise StaleLease(f"sweep {sweep_id}: the step token is not current")


def release_step(*, session: Session, sweep_id: int, token: str) -> None:
    sweeps = table_of(Sweep)
    session.execute(
        update(sweeps)
        .where(sweeps.c.id == sweep_id, sweeps.c.step_token == token)
        .values(step_token=None, step_expires_at=None, controller_id=None)
    )


def observe(*, session: Session, sweep_id: int, token: str) -> SweepSnapshot:
    """Record the results of trials whose jobs finished, read new intermediate values
    (when the sweep prunes), and return the sweep as the sampler needs it."""
    sweep = step_holder(session=session, sweep_id=sweep_id, token=token)
    now = utcnow()
    metrics = objective_metrics(sweep.spec)
    pruning = sweep.spec.get("pruner") is not None
    rows = session.execute(
        select(SweepTrial, Job)
        .outerjoin(Job, Job.id == SweepTrial.job_id)
        .where(SweepTrial.sweep_id == sweep_id)
        .order_by(SweepTrial.number)
    ).all()
    views = []
    for trial, job in rows:
        if pruning and job is not None and trial.state == TrialState.RUNNING.value:
            read_intermediate(session=session, trial=trial, job=job, metric=metrics[0])
        record_result(trial, job, metrics, now)
        views.append(
            TrialView(
                number=trial.number,
                state=TrialState(trial.state),
                params=dict(trial.params),
                values=list(trial.values) if trial.values is not None else None,
                intermediate={int(k): float(v) for k, v in trial.intermediate.items()},
                system_attrs=dict(trial.system_attrs),
                job_active=job is not None and JobStatus(job.status) not in TERMINAL,
                failed_unstarted=(
                    job is not None and job.status == JobStatus.FAILED.value and job.attempt == 0
                ),
                error=trial.error,
                rounds=int(job.spec["schedule"]["rounds"]) if job is not None else None,
            )
        )
    session.flush()
    return SweepSnapshot(
        sweep_id=sweep.id,
        owner_id=sweep.owner_id,
        status=SweepStatus(sweep.status),
        spec=dict(sweep.spec),
        trials=tuple(views),
        adds_trials=adds_trials(session=session, sweep=sweep),
    )


def _trials(session: Session, sweep_id: int) -> list[SweepTrial]:
    return list(
        session.scalars(
            select(SweepTrial).where(SweepTrial.sweep_id == sweep_id).order_by(SweepTrial.number)
        )
    )


def record_decisions(
    *,
    session: Session,
    sweep_id: int,
    token: str,
    system_attrs: Mapping[int, dict[str, Any]],
    prune: Sequence[int],
    points: Sequence[Mapping[str, Any]],
    first_number: int,
) -> list[int]:
    """Store one step's decisions: the pruner's per-trial state, the pruned trials
    (their jobs cancelled with the reason "pruned"), and the asked points as pending
    trials numbered from `first_number`; and the best trials of the results that
    `observe` recorded. No point is added unless the sweep still `adds_trials`.
    Returns the pruned trial numbers."""
    sweep = step_holder(session=session, sweep_id=sweep_id, token=token)
    now = utcnow()
    trials = {t.number: t for t in _trials(session, sweep_id)}
    sweep.best = best_trials(sweep.spec, trials.values())
    for number, attrs in system_attrs.items():
        trials[number].system_attrs = dict(attrs)
    pruned = [n for n in prune if _prune(session, sweep, trials[n], now)]
    if points and adds_trials(session=session, sweep=sweep):
        if len(trials) != first_number:
            raise Conflict(f"sweep {sweep_id}: has {len(trials)} trials, expected {first_number}")
        session.add_all(
            SweepTrial(
                sweep_id=sweep_id,
                number=first_number + i,
                state=TrialState.PENDING.value,
                params=dict(point),
                intermediate={},
                metric_seq=0,
                system_attrs={},
                created_at=now,
            )
            for i, point in enumerate(points)
        )
    session.flush()
    return pruned


def _prune(session: Session, sweep: Sweep, trial: SweepTrial, now: datetime) -> bool:
    """Cancel a running trial's job with the reason "pruned"; the trial counts as
    finished at once. False if its job finished or is being cancelled meanwhile."""
    job = session.get(Job, trial.job_id) if trial.job_id is not None else None
    if trial.state != TrialState.RUNNING.value or job is None:
        return False
    # relock, not session.refresh, which raises for a deleted row. A trial's job is
    # deleted only with its finished sweep (job_removal); if one were gone, it has
    # nothing left to prune.
    if not lifecycle.relock(session, job):
        return False
    if job.status not in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
        return False
    jobs.request_cancel(
        session=session,
        job=job,
        actor=f"sweep:{sweep.id}",
        reason="pruned",
        audit_actor=acting_for(session=session, user_id=sweep.owner_id),
        via=f"sweep:{sweep.id}",
    )
    trial.state, trial.finished_at = TrialState.PRUNED.value, now
    return True


def pending_trials(*, session: Session, sweep: Sweep) -> list[SweepTrial]:
    """The trials whose jobs are to be submitted now ([] unless the sweep
    `adds_trials`); `sweep` comes from step_holder in the same transaction."""
    if not adds_trials(session=session, sweep=sweep):
        return []
    return [t for t in _trials(session, sweep.id) if t.state == TrialState.PENDING.value]


def settle(*, session: Session, sweep_id: int, token: str) -> SweepStatus:
    """Finish the sweep when nothing is left to do: every trial of the budget has a
    result and no trial job still holds resources. Succeeded if a trial completed,
    else failed; a cancelling sweep becomes cancelled. Returns the status."""
    sweep = step_holder(session=session, sweep_id=sweep_id, token=token)
    status = SweepStatus(sweep.status)
    # A cancel that landed during this step may have ended the sweep already (its
    # trials all finished): the step holds the lease, but the status is the cancel's.
    if status in SWEEP_TERMINAL:
        return status
    trials = _trials(session, sweep_id)
    if any(TrialState(t.state) in OPEN_TRIAL for t in trials) or active_trial_jobs(
        session=session, sweep_id=sweep_id
    ):
        return status
    if status is SweepStatus.CANCELLING:
        return _to(session, sweep, SweepStatus.CANCELLED)
    if len(trials) < int(sweep.spec["trials"]):
        return status
    # (Still queued with the budget spent: every point failed before it had a job.)
    if any(t.state == TrialState.COMPLETE.value for t in trials):
        return _to(session, sweep, SweepStatus.SUCCEEDED)
    counts = {s: sum(t.state == s.value for t in trials) for s in TrialState}
    error = "no trial completed: " + ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    return _to(session, sweep, SweepStatus.FAILED, error)


def _to(session: Session, sweep: Sweep, to: SweepStatus, error: str | None = None) -> SweepStatus:
    set_status(session=session, sweep=sweep, to=to, error=error)
    return to


def fail_sweep(*, session: Session, sweep_id: int, token: str, error: str) -> None:
    """Fail a queued or running sweep with why: its first trials all failed before
    they started (none is open: SweepSnapshot.why_stop_unstarted)."""
    sweep = step_holder(session=session, sweep_id=sweep_id, token=token)
    if SweepStatus(sweep.status) in (SweepStatus.QUEUED, SweepStatus.RUNNING):
        set_status(session=session, sweep=sweep, to=SweepStatus.FAILED, error=error[:500])
