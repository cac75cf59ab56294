"""What a sweep's next step would act on, in one narrow read: the sweep controller
skips a step whose inputs have not changed since a step that could only watch
(workers.sweeps.idle_sweeps). A step reads every trial and its job (spec included) in
five write transactions: 0.2 to 0.5 s a poll for a 1000-trial sweep with 100 trials
running, SQLite's one write lock held meanwhile, every second (a review)."""

from __future__ import annotations

from collections.abc import Hashable

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.models import TERMINAL, Job, Sweep, SweepStatus, SweepTrial, TrialState
from service.store.sweeps import OPEN_TRIAL

_TERMINAL_JOB = frozenset(s.value for s in TERMINAL)
_OPEN = frozenset(s.value for s in OPEN_TRIAL)


def watch_only_inputs(*, session: Session, sweep_id: int) -> Hashable | None:
    """A fingerprint of what the sweep's step reads, when that step could only watch
    its running trials: the sweep `running`, no trial pending (waiting to be
    submitted: the owner's room can change with no row of the sweep changing), and no
    room to ask a point (its open trials fill `parallel`, or its budget is asked).
    Then only a trial or its job changing (a status, a job's records when the sweep
    prunes, a job deleted) or the sweep's own status gives the step something to do,
    and all of those are in the fingerprint. None where the step may act anyway."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or sweep.status != SweepStatus.RUNNING.value:
        return None
    try:  # a newer lagtrain's spec may name them otherwise: its steps are not ours
        parallel, budget = int(sweep.spec["parallel"]), int(sweep.spec["trials"])
    except (KeyError, TypeError, ValueError):
        return None
    pruning = sweep.spec.get("pruner") is not None
    rows = session.execute(
        select(SweepTrial.number, SweepTrial.state, SweepTrial.job_id, Job.status, Job.last_seq)
        .outerjoin(Job, Job.id == SweepTrial.job_id)
        .where(SweepTrial.sweep_id == sweep_id)
        .order_by(SweepTrial.number)
    ).all()
    if any(state == TrialState.PENDING.value for _n, state, *_rest in rows):
        return None
    open_ = sum(
        1
        for _n, state, _job, status, _seq in rows
        if state in _OPEN or (status is not None and status not in _TERMINAL_JOB)
    )
    if open_ < parallel and len(rows) < budget:
        return None
    return (
        sweep.status,
        tuple(
            (number, state, job_id, status, seq if pruning else None)
            for number, state, job_id, status, seq in rows
        ),
    )
