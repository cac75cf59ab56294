"""A sweep whose step could only watch its running trials is not stepped again until
something it reads changes (workers.sweeps.idle_sweeps), on the real store (SQLite and
PostgreSQL): one narrow read a poll instead of five write transactions over every
trial. A trial's job ending, a pruning sweep's new records, the sweep's cancel and
the periodic full step each step it."""

from __future__ import annotations

from typing import Any

import pytest

from service.store import sweep_steps
from service.store.db import read_transaction, transaction
from service.store.models import Sweep
from service.store.sweep_idle import watch_only_inputs
from tests.hand_clock import Clock
from tests.sweeps.conftest import Lab
from workers.sweeps.controller import SweepController
from workers.sweeps.idle_sweeps import FULL_STEP_SECONDS, IdleSweeps


class Steps:
    """Counts the steps taken (each takes the step lease first)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = 0
        take = sweep_steps.take_step

        def counted(**kwargs: Any) -> Any:
            self.taken += 1
            return take(**kwargs)

        monkeypatch.setattr(sweep_steps, "take_step", counted)

    def during(self, controller: SweepController, polls: int) -> int:
        before = self.taken
        for _ in range(polls):
            controller.poll()
        return self.taken - before


def watched(lab: Lab, clock: Clock, **spec: Any) -> tuple[int, SweepController]:
    """A sweep whose two trials run, its budget asked: its step can only watch."""
    sweep_id = lab.submit(trials=2, parallel=2, **spec)
    controller = lab.controller()
    controller.idle = IdleSweeps(lab.sessions, clock=clock)
    controller.poll()
    assert len(lab.jobs(sweep_id)) == 2
    lab.claim_all()
    return sweep_id, controller


def test_a_watch_only_sweep_is_stepped_again_only_when_a_trial_changes(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    sweep_id, controller = watched(lab, clock)
    steps = Steps(monkeypatch)
    # The step after a change reads what it acts on; the polls after it, nothing new.
    assert steps.during(controller, 1) == 1
    assert steps.during(controller, 3) == 0

    first, second = lab.active_jobs(sweep_id)
    lab.succeed(first.id, {"optimality_gap": 0.5})
    assert steps.during(controller, 1) == 1
    assert lab.trials(sweep_id)[0].state == "complete"
    assert steps.during(controller, 1) == 1  # on what that step wrote
    assert steps.during(controller, 2) == 0

    clock.now += FULL_STEP_SECONDS + 1  # a full step all the same, now and then
    assert steps.during(controller, 1) == 1
    assert steps.during(controller, 1) == 0

    lab.cancel(sweep_id)
    assert steps.during(controller, 1) == 1
    lab.succeed(second.id, {"optimality_gap": 0.25})
    controller.poll()
    assert lab.sweep(sweep_id).status in {"cancelled", "succeeded"}


def test_a_pruning_sweeps_new_records_step_it(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    pruner = {"type": "median", "startup_trials": 1}
    sweep_id, controller = watched(lab, clock, pruner=pruner)
    steps = Steps(monkeypatch)
    steps.during(controller, 2)
    assert steps.during(controller, 2) == 0
    job = lab.active_jobs(sweep_id)[0]
    lab.report(job.id, {9: {"optimality_gap": 0.3}})
    assert steps.during(controller, 1) == 1
    [trial] = [t for t in lab.trials(sweep_id) if t.job_id == job.id]
    assert trial.intermediate == {"9": 0.3}


def test_a_spec_this_version_cannot_read_is_never_judged_idle(lab: Lab) -> None:
    """A newer lagtrain's spec without `parallel` (renamed): the sweep's steps are left
    to the controller that reads it, not a failure every poll."""
    sweep_id = lab.submit(trials=2, parallel=2)
    with transaction(lab.sessions) as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        spec = {k: v for k, v in sweep.spec.items() if k != "parallel"}
        sweep.spec = {**spec, "status": "running"}
        sweep.status = "running"
    with read_transaction(lab.sessions) as session:
        assert watch_only_inputs(session=session, sweep_id=sweep_id) is None
