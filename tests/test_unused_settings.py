"""A setting the chosen optimizer or task never reads is a 422 at its field when set
to a value that would change something; a resolved spec submitted again (it carries
every field, default or not) is accepted for every task, rule and optimizer."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from service.schemas.jobspec import OptimizerName, Strategy, TaskKind
from service.schemas.resolve import SpecError, resolve

DIGITS = {"kind": "sequence_classification", "dataset": "builtin:digits"}


def _problem_fields(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as error:
        resolve(spec)
    return [field for field, _message in error.value.problems]


def test_optimizer_knobs_of_the_other_optimizer_are_refused() -> None:
    assert _problem_fields({"task": DIGITS, "optimizer": {"name": "sgd", "amsgrad": True}}) == [
        "optimizer.amsgrad"
    ]
    assert _problem_fields(
        {"task": DIGITS, "optimizer": {"name": "sgd", "beta1": 0.5, "eps": 1e-3}}
    ) == ["optimizer.beta1", "optimizer.eps"]
    assert _problem_fields({"task": DIGITS, "optimizer": {"momentum": 0.9}}) == [
        "optimizer.momentum"
    ]
    # The paper task's optimizer is sgd when the request leaves the name out.
    paper = {"kind": "lag_paper_linreg"}
    assert _problem_fields({"task": paper, "optimizer": {"beta2": 0.9}}) == ["optimizer.beta2"]
    # Values that change nothing pass: the defaults, and what sgd resolves to.
    resolve({"task": DIGITS, "optimizer": {"name": "sgd", "amsgrad": False, "beta1": 0.9}})
    resolve({"task": DIGITS, "optimizer": {"name": "adam", "momentum": 0.0}})
    resolve({"task": paper, "optimizer": {"momentum": 0.5}})


def test_the_paper_task_refuses_a_recurrent_model_and_a_split() -> None:
    paper = {"kind": "lag_paper_linreg"}
    assert _problem_fields(
        {"task": paper, "model": {"cell": "gru", "hidden_size": 512, "dtype": "float32"}}
    ) == ["model.cell", "model.hidden_size"]
    assert _problem_fields({"task": paper, "distributed": {"split": "iid"}}) == [
        "distributed.split"
    ]


@pytest.mark.parametrize("kind", get_args(TaskKind))
def test_a_resolved_spec_submitted_again_is_accepted(kind: str) -> None:
    checked = 0
    for strategy in get_args(Strategy):
        for optimizer in get_args(OptimizerName):
            request = {
                "task": {"kind": kind},
                "aggregation": {"strategy": strategy},
                "optimizer": {"name": optimizer},
            }
            try:
                first = resolve(request)
            except SpecError:  # e.g. lag_ps off the paper task
                continue
            again = resolve(first.model_dump(mode="json"))
            assert again == first, (kind, strategy, optimizer)
            checked += 1
    assert checked > 0
