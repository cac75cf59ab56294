"""Building the recurrent tasks from small specs in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from workers.training.tasks.registry import build_task
from workers.training.tasks.sharded import ShardedTask

# Small enough that building a task costs milliseconds.
SMALL_TASKS: dict[str, dict[str, Any]] = {
    "sequence_classification": {"kind": "sequence_classification"},
    "char_lm": {"kind": "char_lm", "max_chars": 20_000, "seq_len": 32},
    "adding": {"kind": "adding", "num_samples": 512, "seq_len": 20},
    "copy_memory": {"kind": "copy_memory", "num_samples": 512, "seq_len": 12, "copy_length": 8},
}


def no_uploads(dataset_id: str) -> Path:
    raise AssertionError(f"unexpected upload lookup {dataset_id!r}")


# CADA2 (LASG-WK2 under Adam) on minibatches of the paper's task: the sections the
# rule-equivalence tests give linreg_spec (and tests/workers' own linreg).
CADA2_MINIBATCH: dict[str, dict[str, Any]] = {
    "optimizer": {"name": "adam", "lr": 0.05},
    "schedule": {"batch_size": 10},
    "aggregation": {"max_staleness": 7},
}


def linreg_spec(strategy: str, **sections: Any) -> ResolvedSpec:
    """The LAG paper's task under `strategy`, 4 workers, 30 rounds; each section
    given is merged into these (a key given replaces the one here)."""
    spec: dict[str, Any] = {
        "task": {"kind": "lag_paper_linreg"},
        "distributed": {"workers": 4},
        "aggregation": {"strategy": strategy},
        "schedule": {"rounds": 30, "eval_every": 10},
    }
    for key, value in sections.items():
        spec[key] = {**spec.get(key, {}), **value}
    return resolve(spec)


def make_spec(task: dict[str, Any], **sections: Any) -> ResolvedSpec:
    if task.get("kind") != "lag_paper_linreg":  # a linear model: no recurrent sizes
        sections.setdefault("model", {"hidden_size": 16})
    return resolve({"task": task, **sections})


def make_task(
    spec: ResolvedSpec,
    *,
    dtype: torch.dtype = torch.float32,
    uploads: dict[str, Path] | None = None,
) -> ShardedTask:
    def resolve(dataset_id: str) -> Path:
        if uploads is None or dataset_id not in uploads:
            return no_uploads(dataset_id)
        return uploads[dataset_id]

    task = build_task(spec, dtype=dtype, device="cpu", resolve_dataset=resolve)
    assert isinstance(task, ShardedTask)
    return task
