"""The contract between a task (data + model + loss + evaluation) and the training
loop. Pure PyTorch: no DB, HTTP or Ray imports anywhere under workers/training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

# Maps an uploaded dataset's id (the part after "upload:") to a local file path.
DatasetResolver = Callable[[str], Path]


@dataclass(frozen=True)
class Batch:
    inputs: torch.Tensor
    targets: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.inputs.shape[0])


class Task(Protocol):
    """One training problem split over `num_workers` shards.

    Everything is deterministic from the spec's seed: `build_model` returns the same
    initial weights every time, and `batch(rank, round, n)` returns the same minibatch
    for the same arguments in any process, so the in-process runner, the Ray path and
    a resumed attempt all see identical data.
    """

    num_workers: int
    # Per-worker smoothness constants L_m, where the task knows them (lag_ps needs them).
    smoothness: Sequence[float] | None

    def build_model(self) -> nn.Module: ...

    def shard_size(self, rank: int) -> int: ...

    def batch(self, rank: int, round_: int, batch_size: int | None) -> Batch:
        """Minibatch of `batch_size` samples from shard `rank` for `round_`;
        `None` means the whole shard (full-batch gradient)."""
        ...

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean loss over the batch (a scalar tensor with grad)."""
        ...

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics: `val_loss` and one of `val_accuracy`,
        `val_perplexity`, `val_mse` or `optimality_gap`."""
        ...


@runtime_checkable
class RoundMetrics(Protocol):
    """A task whose own figures are cheap enough for every round's record (not only
    evaluation rounds): the coordinator adds `round_metrics(θ)` after each step."""

    def round_metrics(self, params: torch.Tensor) -> dict[str, float]: ...
