"""sweeps.best on hand-made trial rows: the best trial and the Pareto front
(store.sweep_trials.best_trials), the same as Optuna's own best_trial(s) on the same
results, and written by a cancel that ends the sweep (no controller steps it after)."""

from __future__ import annotations

import random
from typing import Any, Literal

import optuna
import pytest

from service.store.models import SweepTrial, TrialState
from service.store.sweep_trials import best_trials
from tests.sweeps.conftest import Lab

Direction = Literal["minimize", "maximize"]


def objectives(*directions: Direction) -> dict[str, Any]:
    return {"objectives": [{"metric": f"m{i}", "direction": d} for i, d in enumerate(directions)]}


def row(
    number: int, values: list[float] | None, state: TrialState = TrialState.COMPLETE
) -> SweepTrial:
    return SweepTrial(number=number, state=state.value, values=values)


def test_the_best_single_objective_trial_ignores_unfinished_and_failed_ones() -> None:
    trials = [
        row(0, [0.7]),
        row(1, None, TrialState.FAILED),
        row(2, [0.9]),
        row(3, None, TrialState.PRUNED),
        row(4, None, TrialState.RUNNING),
        row(5, [0.8]),
        row(6, [0.9]),  # equal to 2: the earlier one is the best
    ]
    assert best_trials(objectives("maximize"), trials) == [2]
    assert best_trials(objectives("minimize"), trials) == [0]
    assert best_trials(objectives("minimize"), [row(0, None, TrialState.RUNNING)]) == []


def test_the_pareto_front_of_accuracy_against_bytes() -> None:
    results = {
        0: [0.90, 800.0],  # front: most accurate
        1: [0.85, 300.0],  # front
        2: [0.80, 350.0],  # dominated by 1
        3: [0.60, 100.0],  # front: cheapest
        4: [0.85, 300.0],  # equal to 1: both on the front
        5: [0.90, 900.0],  # dominated by 0 (same accuracy, more bytes)
        6: [0.70, 300.0],  # dominated by 1 (same bytes, less accurate)
    }
    trials = [row(n, v) for n, v in results.items()] + [row(7, None, TrialState.FAILED)]
    assert best_trials(objectives("maximize", "minimize"), trials) == [0, 1, 3, 4]


@pytest.mark.parametrize(
    "directions",
    [("minimize",), ("maximize",), ("maximize", "minimize"), ("minimize",) * 3],
)
def test_the_best_trials_are_optunas(directions: tuple[Direction, ...]) -> None:
    """What the controller had Optuna compute: the rule moved into the store, where a
    cancel writes it too (the API server does not import Optuna)."""
    rng = random.Random(len(directions))
    for _ in range(20):
        # Few distinct values, so that ties and equal trials are common.
        trials = [
            row(n, [float(rng.randint(0, 6)) for _ in directions])
            if rng.random() < 0.8
            else row(n, None, TrialState.FAILED)
            for n in range(rng.randint(1, 40))
        ]
        study = optuna.create_study(directions=list(directions))
        for t in trials:
            complete = t.values is not None
            study.add_trial(
                optuna.trial.create_trial(
                    state=optuna.trial.TrialState.COMPLETE
                    if complete
                    else optuna.trial.TrialState.FAIL,
                    values=t.values,
                )
            )
        if not any(t.values is not None for t in trials):
            expected: list[int] = []
        elif len(directions) == 1:
            expected = [study.best_trial.number]
        else:
            expected = sorted(t.number for t in study.best_trials)
        assert best_trials(objectives(*directions), trials) == expected


def test_a_cancel_that_ends_the_sweep_writes_its_best_trial(lab: Lab) -> None:
    """Both trial jobs succeeded before any controller step saw them: the cancel
    records their results and ends the sweep at once, so no step writes best after
    it (it stayed [] with two complete trials)."""
    sweep_id = lab.submit(trials=2, parallel=2)
    lab.controller().poll()
    for claimed, gap in zip(lab.claim_all(), (0.2, 0.1), strict=True):
        lab.succeed(claimed.job_id, {"optimality_gap": gap})
    lab.cancel(sweep_id)
    sweep = lab.sweep(sweep_id)
    assert sweep.status == "cancelled"
    trials = lab.trials(sweep_id)
    assert [(t.state, t.values) for t in trials] == [("complete", [0.2]), ("complete", [0.1])]
    assert sweep.best == [1]
