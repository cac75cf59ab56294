"""The pruners' settings count rounds done, on hand-made trials: successive halving's
first rung is the evaluation after `min_rounds` rounds and the median pruner prunes
from `warmup_rounds` rounds on (a record's round is 0-based: the evaluation after 20
rounds is round 19's)."""

from __future__ import annotations

from typing import Any

from service.schemas.sweeps import SweepSpec
from service.store.models import TrialState
from service.store.sweep_steps import TrialView
from tests.sweeps.conftest import BASE, sweep_spec
from workers.sweeps import study

# Evaluations after 20 and 40 rounds: records of rounds 19 and 39.
TWICE = {**BASE, "schedule": {"rounds": 40, "eval_every": 20}}


def spec(pruner: dict[str, Any]) -> SweepSpec:
    return SweepSpec.model_validate(sweep_spec(base=TWICE, pruner=pruner))


def trial(
    number: int,
    intermediate: dict[int, float],
    state: TrialState = TrialState.COMPLETE,
    system_attrs: dict[str, Any] | None = None,
) -> TrialView:
    complete = state is TrialState.COMPLETE
    return TrialView(
        number=number,
        state=state,
        params={"optimizer.lr": 0.1},
        values=[intermediate[max(intermediate)]] if complete else None,
        intermediate=intermediate,
        system_attrs=system_attrs or {},
        job_active=not complete,
    )


def test_successive_halvings_first_rung_is_after_min_rounds_rounds() -> None:
    """With min_rounds 20 the rung was looked for after 21 rounds: the evaluation
    after 20 (round 19) was ignored, and nothing was ever pruned."""
    finished = [
        trial(n, {19: 0.1, 39: 0.05}, system_attrs={"completed_rung_0": 0.1}) for n in range(4)
    ]
    poor = trial(4, {19: 9.0}, TrialState.RUNNING)
    halving = {"type": "successive_halving", "reduction_factor": 2}
    assert study.prune(spec({**halving, "min_rounds": 20}), [*finished, poor]).prune == [4]
    decision = study.prune(spec({**halving, "min_rounds": 21}), [*finished, poor])
    assert decision.prune == [] and decision.system_attrs == {}


def test_the_median_pruner_prunes_from_warmup_rounds_rounds_on() -> None:
    finished = trial(0, {19: 0.1, 39: 0.05})
    poor = trial(1, {19: 9.0}, TrialState.RUNNING)
    median = {"type": "median", "startup_trials": 1}
    assert study.prune(spec({**median, "warmup_rounds": 20}), [finished, poor]).prune == [1]
    assert study.prune(spec({**median, "warmup_rounds": 21}), [finished, poor]).prune == []
