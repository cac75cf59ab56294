"""Each task's baseline is what the task's own evaluation gives the best model that
ignores its inputs: the same samples, steps and formula as the headline it is read
against, so a hold-out or slicing mistake on either side shows here (docs/tasks.md,
docs/decisions.md "Each task's baseline …")."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from service.schemas.metric_names import BASELINES, EVAL_METRICS
from tests.training.task_helpers import SMALL_TASKS, make_spec, make_task
from workers.training.tasks.synthetic import COPY_VOCAB


class InputFree(nn.Module):
    """Answers `output` for every sample, whatever its inputs."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.answer = output  # no parameter and no buffer: nothing to train or move

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.answer.expand(inputs.shape[0], *self.answer.shape)


def _one_hot_logits(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Logits that answer `labels` (one per step, or one label)."""
    return 10.0 * nn.functional.one_hot(labels, classes).float()


def _majority(labels: torch.Tensor) -> torch.Tensor:
    """Each column's most frequent label, for labels of shape (samples, columns)."""
    return torch.mode(labels, dim=0).values


def _best_input_free_model(kind: str, task: Any) -> nn.Module:
    """`task` is any of the four tasks (each has its own validation attributes)."""
    val: torch.Tensor = task.val_targets
    if kind == "sequence_classification":
        return InputFree(_one_hot_logits(_majority(val[:, None])[0], task.num_classes))
    if kind == "copy_memory":
        return InputFree(_one_hot_logits(_majority(val), COPY_VOCAB))
    if kind == "adding":
        return InputFree(val.double().mean().float()[None])
    assert kind == "char_lm"
    counts = val.flatten().bincount(minlength=task.vocab_size).double()
    shares = counts / counts.sum()
    log_shares = torch.where(shares > 0, shares.log(), torch.tensor(-1e4, dtype=torch.float64))
    return InputFree(log_shares.float().expand(val.shape[1], -1).clone())


# Each task with a baseline, by the headline metric it reports (metric_names' rules).
HEADLINES: dict[str, str] = {
    kind: headline
    for kind, names in EVAL_METRICS.items()
    for headline in names
    if headline in BASELINES
}


def test_the_four_tasks_with_a_baseline_are_built_here() -> None:
    assert set(HEADLINES) == set(SMALL_TASKS)


@pytest.mark.parametrize("kind", sorted(HEADLINES))
def test_the_best_input_free_model_scores_the_baseline(kind: str) -> None:
    task = make_task(make_spec(SMALL_TASKS[kind]))
    headline = HEADLINES[kind]
    metrics = task.evaluate(_best_input_free_model(kind, task))
    baseline = BASELINES[headline]
    assert metrics[headline] == pytest.approx(metrics[baseline], rel=1e-5), metrics
