"""The metric names a sweep may name as objectives (service.schemas.metric_names)
are the ones the training core really reports: every task's final record, run
through the reference runner, carries each declared round and evaluation metric."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from service.schemas.jobspec import TaskKind
from service.schemas.metric_names import (
    BASELINES,
    EVAL_METRICS,
    HEADLINE_METRICS,
    ROUND_METRICS,
)
from tests.training.task_helpers import SMALL_TASKS, make_spec
from workers.training.runner import run_reference

TASKS: dict[str, dict[str, Any]] = {**SMALL_TASKS, "lag_paper_linreg": {"kind": "lag_paper_linreg"}}


def test_every_task_has_its_evaluation_metrics_declared() -> None:
    assert set(EVAL_METRICS) == set(get_args(TaskKind)) == set(TASKS)


def test_each_task_has_one_headline_so_the_first_found_is_its_own() -> None:
    """The CLI and the dashboard show the first of HEADLINE_METRICS a job reports: that
    is its task's headline only while every task has exactly one besides val_loss."""
    for kind, names in EVAL_METRICS.items():
        headline = [name for name in names if name not in ("val_loss", *BASELINES.values())]
        assert "val_loss" in names and len(headline) == 1, (kind, names)
        assert headline[0] in HEADLINE_METRICS


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_the_final_record_carries_every_declared_metric(kind: TaskKind) -> None:
    spec = make_spec(
        TASKS[kind],
        distributed={"workers": 2},
        schedule={"rounds": 2, "batch_size": 8 if kind != "lag_paper_linreg" else "full"},
    )
    records: list[dict[str, float]] = []
    run_reference(spec, on_record=lambda _round, values: records.append(values))
    final = set(records[-1])
    assert set(ROUND_METRICS) <= final, set(ROUND_METRICS) - final
    assert set(EVAL_METRICS[kind]) <= final, set(EVAL_METRICS[kind]) - final


def test_each_baseline_is_reported_beside_its_headline_by_the_same_tasks() -> None:
    for headline, baseline in BASELINES.items():
        kinds = {kind for kind, names in EVAL_METRICS.items() if baseline in names}
        assert kinds and kinds == {k for k, names in EVAL_METRICS.items() if headline in names}
        assert baseline not in HEADLINE_METRICS
