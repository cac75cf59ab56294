"""sequence_classification: one label per sequence, predicted from the last step.

Data: `builtin:digits` (scikit-learn's 8x8 digits, 8 steps of 8 pixels in [0, 1])
or an uploaded labelled-sequence CSV (format in workers/training/data_files.py and
docs/tasks.md). 20 % of the samples (at most 1,024) are held out for validation
before the rest is sharded: `iid` at random, `non_iid` sorted by label into
contiguous blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from service.schemas.resolved import ResolvedSpec
from workers.training.data_files import load_labelled_sequences
from workers.training.models import RecurrentNet, build_model
from workers.training.tasks.base import Batch, DatasetResolver
from workers.training.tasks.sharded import InMemoryTask
from workers.training.tasks.splits import chance_accuracy, holdout_split


class SequenceClassificationTask(InMemoryTask):
    def __init__(
        self,
        spec: ResolvedSpec,
        *,
        dtype: torch.dtype,
        device: torch.device | str,
        resolve_dataset: DatasetResolver | None = None,
    ) -> None:
        super().__init__(spec, dtype=dtype, device=device)
        assert spec.task.dataset is not None and spec.task.seq_len is not None
        sequences, labels = load_labelled_sequences(
            spec.task.dataset, spec.task.seq_len, resolve_dataset
        )
        self.num_classes = int(labels.max()) + 1
        if self.num_classes < 2:
            raise ValueError("task.dataset: sequence_classification needs at least two classes")
        self.num_features = int(sequences.shape[2])
        if len(labels) < self.num_workers + 1:
            raise ValueError(
                f"distributed.workers: the dataset has {len(labels)} samples; it needs at "
                f"least workers + 1 = {self.num_workers + 1} (one per worker plus validation)"
            )
        train_rows, val_rows = holdout_split(len(labels), seed=self.seed)
        self._set_data(
            inputs=sequences,
            targets=labels,
            input_dtype=dtype,
            target_dtype=torch.int64,
            train_rows=train_rows,
            val_rows=val_rows,
            sort_keys=labels,
        )
        self.chance_accuracy = chance_accuracy(labels[val_rows])

    def _build(self, generator: torch.Generator) -> RecurrentNet:
        return build_model(
            self.spec.model,
            head="classify",
            out_features=self.num_classes,
            generator=generator,
            dtype=self.dtype,
            device=self.device,
            input_size=self.num_features,
        )

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(model(batch.inputs), batch.targets)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        total_loss = 0.0
        correct = 0
        count = 0
        for logits, batch in self._outputs_on_validation(model):
            total_loss += float(F.cross_entropy(logits, batch.targets, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == batch.targets).sum())
            count += batch.size
        return {
            "val_loss": total_loss / count,
            "val_accuracy": correct / count,
            "chance_accuracy": self.chance_accuracy,  # the baseline beside it
        }


def build_sequence_classification_task(
    spec: ResolvedSpec,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    resolve_dataset: DatasetResolver | None = None,
) -> SequenceClassificationTask:
    return SequenceClassificationTask(
        spec, dtype=dtype, device=device, resolve_dataset=resolve_dataset
    )
