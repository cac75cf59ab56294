"""The Optuna side on hand-made trials: points asked inside the space (and the same
point for the same history), each sampler. (The best trials: test_best_trials.py.)"""

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
