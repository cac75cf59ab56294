"""`build_task`: the one place that maps `spec.task.kind` to a Task. Each entry
takes the spec plus the keyword arguments below and returns a Task."""

from __future__ import annotations

from typing import Protocol

import torch

from service.schemas.resolved import ResolvedSpec
from workers.training.tasks.base import DatasetResolver, Task
from workers.training.tasks.char_lm import build_char_lm_task
from workers.training.tasks.linreg import build_linreg_task
from workers.training.tasks.sequence import build_sequence_classification_task
from workers.training.tasks.synthetic import build_adding_task, build_copy_memory_task


class TaskBuilder(Protocol):
    def __call__(
        self,
        spec: ResolvedSpec,
        *,
        dtype: torch.dtype,
        device: str,
        resolve_dataset: DatasetResolver | None,
    ) -> Task: ...


TASK_BUILDERS: dict[str, TaskBuilder] = {
    "lag_paper_linreg": build_linreg_task,
    "char_lm": build_char_lm_task,
    "sequence_classification": build_sequence_classification_task,
    "adding": build_adding_task,
    "copy_memory": build_copy_memory_task,
}


def build_task(
    spec: ResolvedSpec,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    resolve_dataset: DatasetResolver | None = None,
) -> Task:
    builder = TASK_BUILDERS.get(spec.task.kind)
    if builder is None:
        raise ValueError(f"task.kind: no builder registered for {spec.task.kind!r}")
    return builder(spec, dtype=dtype, device=device, resolve_dataset=resolve_dataset)
