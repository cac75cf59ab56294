"""Shared plumbing of the recurrent tasks: training samples held as tensors on the
task's device, index shards per replica, seeded minibatches and a bounded
validation pass. Subclasses supply the model, the loss and the metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from service.schemas.resolved import ResolvedSpec
from workers.training.models import RecurrentNet
from workers.training.tasks.base import Batch
from workers.training.tasks.splits import (
    STREAM_BATCH,
    STREAM_MODEL,
    shard_indices,
    torch_generator,
)

EVAL_BATCH = 256


class ShardedTask(ABC):
    """Samples are rows 0..N-1 of the training data; `shards[rank]` lists the rows
    that replica `rank` owns. Subclasses set the data, then call `_set_shards`."""

    smoothness: Sequence[float] | None = None

    def __init__(
        self, spec: ResolvedSpec, *, dtype: torch.dtype, device: torch.device | str
    ) -> None:
        self.spec = spec
        self.seed = spec.schedule.seed
        self.num_workers: int = spec.distributed.workers
        self.dtype = dtype
        self.device = torch.device(device)
        self._shards: list[torch.Tensor] = []

    # -- data ---------------------------------------------------------------------

    def _set_shards(self, shards: list[np.ndarray]) -> None:
        self._shards = [torch.from_numpy(np.ascontiguousarray(s)) for s in shards]

    @abstractmethod
    def _rows(self, rows: torch.Tensor) -> Batch:
        """The training samples at `rows` (CPU int64 indices)."""

    @abstractmethod
    def _val_batches(self) -> Iterator[Batch]:
        """The validation set in evaluation-sized batches."""

    def shard_size(self, rank: int) -> int:
        return int(self._shards[rank].numel())

    def batch(self, rank: int, round_: int, batch_size: int | None) -> Batch:
        shard = self._shards[rank]
        if batch_size is None or batch_size >= shard.numel():
            return self._rows(shard)
        generator = torch_generator(self.seed, STREAM_BATCH, rank, round_)
        picks = torch.randperm(int(shard.numel()), generator=generator)[:batch_size]
        return self._rows(shard[picks])

    # -- model --------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        return self._build(torch_generator(self.seed, STREAM_MODEL))

    @abstractmethod
    def _build(self, generator: torch.Generator) -> RecurrentNet:
        """A fresh network whose initial weights come from `generator`."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean loss over the batch."""

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics, `val_loss` first."""

    # -- evaluation ---------------------------------------------------------------

    def _outputs_on_validation(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, Batch]]:
        """Model outputs per validation batch, in eval mode without gradients; the
        model's training flag is restored afterwards."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for batch in self._val_batches():
                    yield model(batch.inputs), batch
        finally:
            model.train(was_training)


def tensor_batches(inputs: torch.Tensor, targets: torch.Tensor) -> Iterator[Batch]:
    for start in range(0, int(inputs.shape[0]), EVAL_BATCH):
        yield Batch(inputs[start : start + EVAL_BATCH], targets[start : start + EVAL_BATCH])


def on_device(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device=device, dtype=dtype)


class InMemoryTask(ShardedTask):
    """A task whose samples are rows of (inputs, targets) tensors."""

    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    val_inputs: torch.Tensor
    val_targets: torch.Tensor

    def _set_data(
        self,
        *,
        inputs: np.ndarray,
        targets: np.ndarray,
        input_dtype: torch.dtype,
        target_dtype: torch.dtype,
        val_rows: np.ndarray,
        train_rows: np.ndarray,
        sort_keys: np.ndarray | None,
    ) -> None:
        """Hold out `val_rows`, keep `train_rows` and shard them by the job's split
        (non_iid ordered by `sort_keys` of the training rows)."""
        self._set_shards(
            shard_indices(
                len(train_rows),
                self.num_workers,
                self.spec.distributed.split,
                seed=self.seed,
                sort_keys=None if sort_keys is None else sort_keys[train_rows],
            )
        )
        self.train_inputs = on_device(inputs[train_rows], input_dtype, self.device)
        self.train_targets = on_device(targets[train_rows], target_dtype, self.device)
        self.val_inputs = on_device(inputs[val_rows], input_dtype, self.device)
        self.val_targets = on_device(targets[val_rows], target_dtype, self.device)

    def _rows(self, rows: torch.Tensor) -> Batch:
        rows = rows.to(self.device)
        return Batch(self.train_inputs[rows], self.train_targets[rows])

    def _val_batches(self) -> Iterator[Batch]:
        return tensor_batches(self.val_inputs, self.val_targets)
