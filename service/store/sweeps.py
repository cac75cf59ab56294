"""Sweeps: submit (idempotent, like jobs), read (visibility, trial budgets), cancel
requests, and `set_status`, the only writer of sweeps.status. The listing and the
trials as the API shows them are in service.store.sweep_listing; the controller's side
of a step (lease, observe, trials, settle) is in service.store.sweep_steps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import IdempotencyConflict, InvalidTransition, NotFound
from service.schemas.audit import AuditAction
from service.store import audit, jobs
from service.store.models import (
    TERMINAL,
    Job,
    JobStatus,
    Sweep,
    SweepStatus,
    SweepTrial,
    TrialState,
    User,
    utcnow,
)
from service.store.sweep_trials import best_trials, objective_metrics, record_result
from service.store.users import Principal

# A controller steps sweeps in these statuses.
ACTIVE_SWEEP: frozenset[SweepStatus] = frozenset(
    {SweepStatus.QUEUED, SweepStatus.RUNNING, SweepStatus.CANCELLING}
)
SWEEP_ALLOWED: Mapping[SweepStatus, frozenset[SweepStatus]] = {
    # first trial submitted; cancel (with or without trial jobs to stop); broken spec
    SweepStatus.QUEUED: frozenset(
        {SweepStatus.RUNNING, SweepStatus.CANCELLING, SweepStatus.CANCELLED, SweepStatus.FAILED}
    ),
    SweepStatus.RUNNING: frozenset(
        {
            SweepStatus.SUCCEEDED,
            SweepStatus.FAILED,
            SweepStatus.CANCELLING,
            SweepStatus.CANCELLED,
        }
    ),
    SweepStatus.CANCELLING: frozenset({SweepStatus.CANCELLED}),
    SweepStatus.SUCCEEDED: frozenset(),
    SweepStatus.FAILED: frozenset(),
    SweepStatus.CANCELLED: frozenset(),
}
SWEEP_TERMINAL: frozenset[SweepStatus] = frozenset(
    s for s, targets in SWEEP_ALLOWED.items() if not targets
)
# Trials still waiting for a result (their point is asked; they hold a parallel slot).
OPEN_TRIAL: frozenset[TrialState] = frozenset({TrialState.PENDING, TrialState.RUNNING})
# Sweeps that may still ask points and queue trials (while their owner is enabled).
ASKING_SWEEP: frozenset[SweepStatus] = frozenset({SweepStatus.QUEUED, SweepStatus.RUNNING})
_TERMINAL_JOB = [s.value for s in TERMINAL]


def adds_trials(*, session: Session, sweep: Sweep) -> bool:
    """May a step ask new points and submit trial jobs? Only for a queued or running
    sweep whose owner is enabled: a disabled owner's sweep waits (status unchanged,
    nothing new created) and goes on where it stopped when an admin enables them."""
    if SweepStatus(sweep.status) not in ASKING_SWEEP:
        return False
    return session.scalar(select(User.disabled_at).where(User.id == sweep.owner_id)) is None


def set_status(
    *,
    session: Session,
    sweep: Sweep,
    to: SweepStatus,
    error: str | None = None,
    now: datetime | None = None,
) -> Sweep:
    """Move a sweep to `to` (an edge of SWEEP_ALLOWED; InvalidTransition otherwise).
    The caller holds the sweep's row lock. A terminal status stamps finished_at; a
    failure keeps its reason as the sweep's error."""
    current = SweepStatus(sweep.status)
    if to not in SWEEP_ALLOWED[current]:
        raise InvalidTransition(f"sweep {sweep.id}: {current} -> {to} is not allowed")
    sweep.status = to.value
    if to in SWEEP_TERMINAL:
        sweep.finished_at = now or utcnow()
    if to is SweepStatus.FAILED:
        sweep.error = error
    session.flush()
    return sweep


def create_sweep(
    *,
    session: Session,
    owner_id: int,
    spec: dict[str, Any],
    name: str | None,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
) -> tuple[Sweep, bool]:
    """Store a new sweep (queued; a controller submits its trials); returns (sweep,
    True). The caller looked its Idempotency-Key up first (sweep_for_key, under the
    owner's quota lock); should another transaction still have used the key since,
    the same request_sha256 returns (that sweep, False), another raises
    IdempotencyConflict."""
    sweep = Sweep(
        owner_id=owner_id,
        name=name,
        status=SweepStatus.QUEUED.value,
        spec=spec,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        best=[],
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(sweep)
            session.flush()
            return sweep, True
    except IntegrityError:
        # Another transaction used the key first (PostgreSQL waits for it to commit).
        existing = _by_key(session, owner_id, idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, request_sha256), False


def sweep_for_key(
    *, session: Session, owner_id: int, idempotency_key: str, request_sha256: str
) -> Sweep | None:
    """The owner's sweep submitted with this Idempotency-Key, if any (a retry: its
    answer needs no quota); IdempotencyConflict when it came with another body."""
    existing = _by_key(session, owner_id, idempotency_key)
    return None if existing is None else _replay(existing, request_sha256)


def _by_key(session: Session, owner_id: int, key: str) -> Sweep | None:
    return session.scalars(
        select(Sweep).where(Sweep.owner_id == owner_id, Sweep.idempotency_key == key)
    ).one_or_none()


def _replay(existing: Sweep, request_sha256: str | None) -> Sweep:
    if existing.request_sha256 != request_sha256:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body"
        )
    return existing


def get_visible_sweep(*, session: Session, sweep_id: int, viewer: Principal) -> Sweep:
    """The sweep if the viewer owns it or is an admin; another user's sweep is
    reported exactly like a missing one."""
    sweep = session.get(Sweep, sweep_id, populate_existing=True)
    if sweep is None or (sweep.owner_id != viewer.user_id and not viewer.is_admin):
        raise NotFound(f"sweep {sweep_id} not found")
    return sweep


def trials_to_come(*, session: Session, owner_id: int) -> tuple[int, int]:
    """(active sweeps, trials they may still queue) of the user: for each sweep that
    may still ask points, its budget (`trials`) less its trials past `pending` (queued
    as jobs, or finished without one: an invalid point). What a new sweep's budget is
    held to beside the queue (api.sweeps): without it, sweeps waiting for room were
    accepted without limit, each costing every controller poll."""
    budgets: dict[int, dict[str, Any]] = {
        sweep_id: spec
        for sweep_id, spec in session.execute(
            select(Sweep.id, Sweep.spec).where(
                Sweep.owner_id == owner_id, Sweep.status.in_([s.value for s in ASKING_SWEEP])
            )
        )
    }
    if not budgets:
        return 0, 0
    spent: dict[int, int] = {
        sweep_id: count
        for sweep_id, count in session.execute(
            select(SweepTrial.sweep_id, func.count())
            .where(
                SweepTrial.sweep_id.in_(list(budgets)),
                SweepTrial.state != TrialState.PENDING.value,
            )
            .group_by(SweepTrial.sweep_id)
        )
    }
    to_come = sum(
        max(0, int(spec["trials"]) - spent.get(sweep_id, 0)) for sweep_id, spec in budgets.items()
    )
    return len(budgets), to_come


def active_trial_jobs(*, session: Session, sweep_id: int) -> int:
    """Trial jobs of the sweep that are not finished (queued, running, cancelling)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.sweep_id == sweep_id, Job.status.not_in(_TERMINAL_JOB))
        )
        or 0
    )


def request_cancel(
    *, session: Session, sweep: Sweep, actor: str, audit_actor: Principal | None = None
) -> Sweep:
    """Cancel a sweep: no new trials; pending trials are cancelled; every queued or
    running trial job is cancelled through the jobs' own cancel path; the results of
    trials whose jobs had finished are recorded, and the best trials with them. The
    sweep is cancelled at once if no trial job is left running, else cancelling until
    a controller sees them all stopped. Repeating it, or cancelling a finished sweep,
    changes nothing. `audit_actor`: who asked, for the `sweep.cancelled` audit row and
    each trial job's `job.cancelled` (None: no audit rows, store-level callers)."""
    # Locked and re-read: of two concurrent cancels one changes (and audits) it. Not
    # session.refresh: a finished sweep deleted since it was read would raise there.
    if session.get(Sweep, sweep.id, with_for_update=True, populate_existing=True) is None:
        raise NotFound(f"sweep {sweep.id} not found")
    was = SweepStatus(sweep.status)
    if was in SWEEP_TERMINAL | {SweepStatus.CANCELLING}:
        return sweep
    if audit_actor is not None:
        audit.record(
            session=session,
            actor=audit_actor,
            action=AuditAction.SWEEP_CANCELLED,
            target=f"sweep:{sweep.id}",
            detail={"owner_id": sweep.owner_id, "was": was.value},
        )
    now = utcnow()
    trials = session.scalars(
        select(SweepTrial).where(SweepTrial.sweep_id == sweep.id).order_by(SweepTrial.number)
    ).all()
    reason = f"sweep {sweep.id} cancelled by {actor}"
    metrics = objective_metrics(sweep.spec)
    for trial in trials:
        if trial.state == TrialState.PENDING.value:  # (no longer waiting for quota)
            trial.state, trial.finished_at, trial.error = TrialState.CANCELLED.value, now, None
        elif trial.job_id is not None:
            job = session.get(Job, trial.job_id)
            if job is not None and job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                job = jobs.request_cancel(
                    session=session, job=job, actor=actor, reason=reason, audit_actor=audit_actor
                )
            # A queued job is cancelled at once: its trial is finished now.
            record_result(trial, job, metrics, now)
    # Results recorded here may be the sweep's last: no controller steps a sweep
    # cancelled at once, and best would keep what the last step saw.
    sweep.best = best_trials(sweep.spec, trials)
    session.flush()
    still_open = any(t.state in OPEN_TRIAL for t in trials)
    if still_open or active_trial_jobs(session=session, sweep_id=sweep.id):
        return set_status(session=session, sweep=sweep, to=SweepStatus.CANCELLING, now=now)
    return set_status(session=session, sweep=sweep, to=SweepStatus.CANCELLED, now=now)
