"""The two classic long-range-dependency problems, generated from schedule.seed
(task.num_samples sequences; 20 % of them, at most 1,024, held out for validation).

adding (Hochreiter & Schmidhuber, 1997): seq_len steps of two channels, a value
U(0, 1) and a marker that is 1 at exactly two steps (one in each half of the
sequence); the target is the sum of the two marked values. Predicting the mean
scores MSE ~ 1/6 ~ 0.167 (`chance_mse`). non_iid shards are sorted by target.

copy_memory (Arjovsky et al., 2016): copy_length symbols from {1..8}, a delay of
seq_len steps (blanks 0, the last one the delimiter 9), then copy_length blanks
during which the network must reproduce the symbols. Targets are blank everywhere
except the last copy_length steps. The loss is the per-step cross-entropy over the
whole sequence; val_accuracy counts the copied symbols only. A network without
memory scores `chance_loss` = copy_length * ln 8 / (seq_len + 2 copy_length).
non_iid shards are sorted by the first symbol.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from service.schemas.resolved import ResolvedSpec
from workers.training.models import RecurrentNet, build_model
from workers.training.tasks.base import Batch, DatasetResolver
from workers.training.tasks.sharded import InMemoryTask
from workers.training.tasks.splits import STREAM_DATA, chance_accuracy, holdout_split, numpy_rng

COPY_SYMBOLS = 8
COPY_BLANK = 0
COPY_DELIMITER = COPY_SYMBOLS + 1
COPY_VOCAB = COPY_SYMBOLS + 2


def make_adding(num_samples: int, seq_len: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N, seq_len, 2) and targets (N,)."""
    rng = numpy_rng(seed, STREAM_DATA)
    values = rng.random((num_samples, seq_len))
    half = seq_len // 2
    rows = np.arange(num_samples)
    first = rng.integers(0, half, num_samples)
    second = rng.integers(half, seq_len, num_samples)
    markers = np.zeros_like(values)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=2), targets


def make_copy_memory(
    num_samples: int, seq_len: int, copy_length: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token inputs and targets, both (N, seq_len + 2 * copy_length)."""
    rng = numpy_rng(seed, STREAM_DATA)
    symbols = rng.integers(1, COPY_SYMBOLS + 1, (num_samples, copy_length))
    length = seq_len + 2 * copy_length
    inputs = np.full((num_samples, length), COPY_BLANK, dtype=np.int64)
    inputs[:, :copy_length] = symbols
    inputs[:, copy_length + seq_len - 1] = COPY_DELIMITER
    targets = np.full((num_samples, length), COPY_BLANK, dtype=np.int64)
    targets[:, copy_length + seq_len :] = symbols
    return inputs, targets


class _GeneratedTask(InMemoryTask):
    def _hold_out(self) -> tuple[np.ndarray, np.ndarray]:
        return holdout_split(self.spec.task.num_samples, seed=self.seed)


class AddingTask(_GeneratedTask):
    def __init__(
        self, spec: ResolvedSpec, *, dtype: torch.dtype, device: torch.device | str
    ) -> None:
        super().__init__(spec, dtype=dtype, device=device)
        assert spec.task.seq_len is not None
        inputs, targets = make_adding(spec.task.num_samples, spec.task.seq_len, self.seed)
        train_rows, val_rows = self._hold_out()
        self._set_data(
            inputs=inputs,
            targets=targets,
            input_dtype=dtype,
            target_dtype=dtype,
            train_rows=train_rows,
            val_rows=val_rows,
            sort_keys=targets,
        )
        # The MSE of always answering the validation targets' mean, the best of a model
        # that ignores its inputs: the baseline each evaluation reports.
        self.chance_mse = float(np.var(targets[val_rows]))

    def _build(self, generator: torch.Generator) -> RecurrentNet:
        return build_model(
            self.spec.model,
            head="regress",
            out_features=1,
            generator=generator,
            dtype=self.dtype,
            device=self.device,
            input_size=2,
        )

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return F.mse_loss(model(batch.inputs).squeeze(-1), batch.targets)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        total = 0.0
        count = 0
        for outputs, batch in self._outputs_on_validation(model):
            total += float(F.mse_loss(outputs.squeeze(-1), batch.targets, reduction="sum"))
            count += batch.size
        mse = total / count
        return {"val_loss": mse, "val_mse": mse, "chance_mse": self.chance_mse}


class CopyMemoryTask(_GeneratedTask):
    def __init__(
        self, spec: ResolvedSpec, *, dtype: torch.dtype, device: torch.device | str
    ) -> None:
        super().__init__(spec, dtype=dtype, device=device)
        assert spec.task.seq_len is not None
        self.copy_length = spec.task.copy_length
        inputs, targets = make_copy_memory(
            spec.task.num_samples, spec.task.seq_len, self.copy_length, self.seed
        )
        train_rows, val_rows = self._hold_out()
        self._set_data(
            inputs=inputs,
            targets=targets,
            input_dtype=torch.int64,
            target_dtype=torch.int64,
            train_rows=train_rows,
            val_rows=val_rows,
            sort_keys=inputs[:, 0],
        )
        length = inputs.shape[1]
        self.chance_loss = self.copy_length * math.log(COPY_SYMBOLS) / length
        # A little over 1/8: each copied step's most frequent symbol in validation.
        self.chance_accuracy = chance_accuracy(targets[val_rows, length - self.copy_length :])

    def _build(self, generator: torch.Generator) -> RecurrentNet:
        return build_model(
            self.spec.model,
            head="language_model",
            out_features=COPY_VOCAB,
            generator=generator,
            dtype=self.dtype,
            device=self.device,
            vocab_size=COPY_VOCAB,
        )

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.inputs)
        return F.cross_entropy(logits.reshape(-1, COPY_VOCAB), batch.targets.reshape(-1))

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        total = 0.0
        tokens = 0
        correct = 0
        copied = 0
        for logits, batch in self._outputs_on_validation(model):
            flat = logits.reshape(-1, COPY_VOCAB)
            total += float(F.cross_entropy(flat, batch.targets.reshape(-1), reduction="sum"))
            tokens += batch.targets.numel()
            recalled = logits[:, -self.copy_length :].argmax(dim=-1)
            correct += int((recalled == batch.targets[:, -self.copy_length :]).sum())
            copied += recalled.numel()
        return {
            "val_loss": total / tokens,
            "val_accuracy": correct / copied,
            "chance_accuracy": self.chance_accuracy,
        }


def build_adding_task(
    spec: ResolvedSpec,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    resolve_dataset: DatasetResolver | None = None,
) -> AddingTask:
    return AddingTask(spec, dtype=dtype, device=device)


def build_copy_memory_task(
    spec: ResolvedSpec,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    resolve_dataset: DatasetResolver | None = None,
) -> CopyMemoryTask:
    return CopyMemoryTask(spec, dtype=dtype, device=device)
