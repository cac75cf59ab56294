"""char_lm: next-character prediction on `builtin:shakespeare` or an uploaded text.

The text (at most task.max_chars characters) is encoded over its sorted set of
characters. The last 10 % is validation; the first 90 % is cut into
non-overlapping windows of seq_len + 1 characters (inputs and next-character
targets), and those windows are the samples that are sharded: `non_iid` gives each
replica one contiguous block of the text (different plays, speakers, style), `iid`
deals windows at random. Validation uses at most 32,768 target characters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from service.schemas.data_limits import text_split, text_windows
from service.schemas.resolved import ResolvedSpec
from workers.training.data_files import load_text
from workers.training.models import RecurrentNet, build_model
from workers.training.tasks.base import Batch, DatasetResolver
from workers.training.tasks.sharded import ShardedTask, tensor_batches
from workers.training.tasks.splits import shard_indices


def windows(codes: torch.Tensor, starts: torch.Tensor, seq_len: int) -> Batch:
    """Inputs codes[s : s+T] and targets codes[s+1 : s+T+1] for every start s."""
    offsets = torch.arange(seq_len, device=codes.device)
    positions = starts.to(codes.device).unsqueeze(1) + offsets
    return Batch(codes[positions], codes[positions + 1])


class CharLMTask(ShardedTask):
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
        assert spec.task.max_chars is not None
        self.seq_len = spec.task.seq_len
        text = load_text(spec.task.dataset, spec.task.max_chars, resolve_dataset)
        self.vocabulary: list[str] = sorted(set(text))
        if len(self.vocabulary) < 2:
            raise ValueError("task.dataset: the text needs at least two distinct characters")
        lookup = {char: code for code, char in enumerate(self.vocabulary)}
        codes = np.fromiter((lookup[c] for c in text), dtype=np.int64, count=len(text))
        split_at = text_split(len(codes))[0]
        train_codes, val_codes = codes[:split_at], codes[split_at:]
        train_windows, val_windows = text_windows(len(codes), self.seq_len)
        if val_windows < 1:
            raise ValueError(
                f"task.seq_len: {self.seq_len} is longer than the validation text "
                f"({len(val_codes)} characters, 10 % of the corpus); shorten seq_len or "
                "raise task.max_chars"
            )
        self._set_shards(
            shard_indices(train_windows, self.num_workers, spec.distributed.split, seed=self.seed)
        )
        self.train_codes = torch.from_numpy(train_codes).to(self.device)
        val_starts = torch.arange(val_windows) * self.seq_len
        val = windows(torch.from_numpy(val_codes).to(self.device), val_starts, self.seq_len)
        self.val_inputs, self.val_targets = val.inputs, val.targets
        self.unigram_perplexity = _unigram_perplexity(val.targets.cpu().numpy())

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def _rows(self, rows: torch.Tensor) -> Batch:
        return windows(self.train_codes, rows * self.seq_len, self.seq_len)

    def _val_batches(self) -> Iterator[Batch]:
        return tensor_batches(self.val_inputs, self.val_targets)

    def _build(self, generator: torch.Generator) -> RecurrentNet:
        return build_model(
            self.spec.model,
            head="language_model",
            out_features=self.vocab_size,
            generator=generator,
            dtype=self.dtype,
            device=self.device,
            vocab_size=self.vocab_size,
        )

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.inputs)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), batch.targets.reshape(-1))

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        total = 0.0
        count = 0
        for logits, batch in self._outputs_on_validation(model):
            flat_logits = logits.reshape(-1, self.vocab_size)
            total += float(F.cross_entropy(flat_logits, batch.targets.reshape(-1), reduction="sum"))
            count += batch.targets.numel()
        val_loss = total / count
        perplexity = math.exp(min(val_loss, 700.0))
        # The baseline beside it, so a reader sees what "better than nothing" is.
        return {
            "val_loss": val_loss,
            "val_perplexity": perplexity,
            "unigram_perplexity": self.unigram_perplexity,
        }


def _unigram_perplexity(val_targets: np.ndarray) -> float:
    """Perplexity on the validation targets of their own character frequencies: the
    best of a model that ignores its inputs (one distribution at every step), as the
    other tasks' chance baselines are (the baseline a model must beat)."""
    _chars, counts = np.unique(val_targets, return_counts=True)
    shares = counts / counts.sum()
    return float(np.exp(-(shares * np.log(shares)).sum()))


def build_char_lm_task(
    spec: ResolvedSpec,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    resolve_dataset: DatasetResolver | None = None,
) -> CharLMTask:
    return CharLMTask(spec, dtype=dtype, device=device, resolve_dataset=resolve_dataset)
