"""The Optuna side on hand-made trials: the best trial and the Pareto front, points
asked inside the space (and the same point for the same history), each sampler."""

from __future__ import annotations

from typing import Any

import pytest

from service.schemas.sweeps import SweepSpec
from service.store.models import TrialState
from service.store.sweep_steps import TrialView
from tests.sweeps.conftest import sweep_spec
from workers.sweeps import study

PARAMETERS: dict[str, Any] = {
    "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "model.hidden_size": {"type": "int", "low": 8, "high": 64, "step": 8},
    "model.cell": {"type": "categorical", "choices": ["lstm", "gru"]},
}


def spec(**overrides: Any) -> SweepSpec:
    return SweepSpec.model_validate(sweep_spec(parameters=PARAMETERS, **overrides))


def completed(number: int, point: dict[str, Any]) -> TrialView:
    """A finished trial at `point` whose objective is its learning rate."""
    return TrialView(
        number=number,
        state=TrialState.COMPLETE,
        params=point,
        values=[point["optimizer.lr"]],
        intermediate={},
        system_attrs={},
        job_active=False,
    )


def view(
    number: int, values: list[float] | None, state: TrialState = TrialState.COMPLETE
) -> TrialView:
    return TrialView(
        number=number,
        state=state,
        params={"optimizer.lr": 0.01, "model.hidden_size": 16, "model.cell": "gru"},
        values=values,
        intermediate={},
        system_attrs={},
        job_active=False,
    )


def test_the_best_single_objective_trial_ignores_unfinished_and_failed_ones() -> None:
    maximize = spec(objectives=[{"metric": "val_accuracy", "direction": "maximize"}])
    trials = [
        view(0, [0.7]),
        view(1, None, TrialState.FAILED),
        view(2, [0.9]),
        view(3, None, TrialState.PRUNED),
        view(4, None, TrialState.RUNNING),
        view(5, [0.8]),
    ]
    assert study.best(maximize, trials) == [2]
    minimize = spec(objectives=[{"metric": "val_loss", "direction": "minimize"}])
    assert study.best(minimize, trials) == [0]
    assert study.best(minimize, [view(0, None, TrialState.RUNNING)]) == []


def test_the_pareto_front_of_accuracy_against_bytes() -> None:
    two = spec(
        objectives=[
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "bytes_up_total", "direction": "minimize"},
        ]
    )
    results = {
        0: [0.90, 800.0],  # front: most accurate
        1: [0.85, 300.0],  # front
        2: [0.80, 350.0],  # dominated by 1
        3: [0.60, 100.0],  # front: cheapest
        4: [0.85, 300.0],  # equal to 1: both on the front
        5: [0.90, 900.0],  # dominated by 0 (same accuracy, more bytes)
        6: [0.70, 300.0],  # dominated by 1 (same bytes, less accurate)
    }
    trials = [view(n, v) for n, v in results.items()] + [view(7, None, TrialState.FAILED)]
    assert study.best(two, trials) == [0, 1, 3, 4]


@pytest.mark.parametrize("sampler", ["gp", "tpe", "random"])
def test_asked_points_lie_in_the_space_and_follow_the_history(sampler: str) -> None:
    s = spec(sampler=sampler, startup_trials=2)
    history: list[TrialView] = []
    for number in range(4):
        (point,) = study.ask(s, history, 1)
        assert set(point) == set(PARAMETERS)
        assert 1e-4 <= point["optimizer.lr"] <= 1e-1
        assert point["model.hidden_size"] in range(8, 65, 8)
        assert point["model.cell"] in ("lstm", "gru")
        assert type(point["model.hidden_size"]) is int
        # The same history and trial number give the same point (a controller that
        # takes over repeats nothing it did not store).
        assert study.ask(s, history, 1) == [point]
        history.append(completed(number, point))
    # The startup trials are random draws.
    assert len({h.params["optimizer.lr"] for h in history[:2]}) == 2
    # Parallel asks see each other: two points at once differ.
    first, second = study.ask(s, history, 2)
    assert first != second


def test_a_point_at_a_log_ranges_bound_is_the_bound_itself() -> None:
    """The GP sampler, minimising lr, reaches the range's corner; on a log scale it
    computes exp(log(1e-4)) = 1.0000000000000009e-4, which a trial's spec carried."""
    s = spec(sampler="gp", startup_trials=2)
    history: list[TrialView] = []
    for number in range(6):
        (point,) = study.ask(s, history, 1)
        history.append(completed(number, point))
    lrs = [h.params["optimizer.lr"] for h in history]
    assert 1e-4 in lrs, lrs
    assert all(lr == 1e-4 or abs(lr / 1e-4 - 1) > 1e-9 for lr in lrs), lrs
