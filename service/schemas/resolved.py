"""The resolved JobSpec: what `service.schemas.resolve.resolve` makes of a request,
with every default filled in. Frozen, and no field has a default, so reading a
stored spec can never invent a value: the dispatcher, the Ray path, the reference
runner and the benchmarks all consume exactly what the API stored and shows.

A None left here is a real setting, not a missing one: `dataset`, `seq_len` and
`max_chars` for tasks that do not use them, `clip_grad_norm` = no clipping,
`max_staleness` = never forced.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, field_validator, model_validator

from service.schemas.jobspec import (
    BatchSize,
    Beta,
    Bits,
    Cell,
    ClipNorm,
    CopyLength,
    CpusPerWorker,
    DatasetRef,
    Dim,
    Dropout,
    EmbeddingDim,
    Eps,
    Every,
    GpusPerWorker,
    HiddenSize,
    JobName,
    LearningRate,
    LocalSteps,
    MaxAttempts,
    MaxChars,
    MaxStaleness,
    ModelDType,
    Momentum,
    NumLayers,
    NumSamples,
    OptimizerName,
    Priority,
    Rounds,
    Seed,
    SeqLen,
    Split,
    Strategy,
    Strict,
    TaskKind,
    Uniform,
    Window,
    Workers,
    Xi,
    check_batch_size,
)


class Frozen(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResolvedTask(Frozen):
    kind: TaskKind
    dataset: DatasetRef | None
    seq_len: SeqLen | None
    max_chars: MaxChars | None
    copy_length: CopyLength
    num_samples: NumSamples
    uniform: Uniform
    dim: Dim


class ResolvedModel(Frozen):
    cell: Cell
    hidden_size: HiddenSize
    num_layers: NumLayers
    dropout: Dropout
    embedding_dim: EmbeddingDim
    dtype: ModelDType


class ResolvedOptimizer(Frozen):
    name: OptimizerName
    lr: LearningRate
    momentum: Momentum
    beta1: Beta
    beta2: Beta
    eps: Eps
    amsgrad: bool
    bias_correction: bool
    clip_grad_norm: ClipNorm | None


class ResolvedAggregation(Frozen):
    strategy: Strategy
    window: Window
    xi: Xi
    max_staleness: MaxStaleness | None
    local_steps: LocalSteps
    warmup_full_upload: bool
    bits: Bits
    per_replica_metrics: bool


class ResolvedDistributed(Frozen):
    workers: Workers
    split: Split
    cpus_per_worker: CpusPerWorker
    gpus_per_worker: GpusPerWorker


class ResolvedSchedule(Frozen):
    rounds: Rounds
    batch_size: BatchSize
    eval_every: Every
    checkpoint_every: Every
    seed: Seed

    @field_validator("batch_size")
    @classmethod
    def _batch_in_range(cls, batch_size: int | str) -> int | str:
        check_batch_size(batch_size)
        return batch_size

    @property
    def minibatch(self) -> int | None:
        """Samples per gradient evaluation; None = the whole shard (full batch)."""
        return None if self.batch_size == "full" else self.batch_size

    def checkpoint_due(self, round_: int) -> bool:
        """A checkpoint follows every `checkpoint_every`-th round and the final one."""
        done = round_ + 1
        return done % self.checkpoint_every == 0 or done == self.rounds

    def eval_due(self, round_: int) -> bool:
        """Validation metrics follow every `eval_every`-th round and the final one."""
        done = round_ + 1
        return done % self.eval_every == 0 or done == self.rounds


# Fields added after specs were first stored, with the value every stored spec ran
# with: a job queued before the upgrade keeps meaning what it meant (float32 was the
# only precision; laq did not exist, so its bit width is never read; no job reported
# per-replica figures).
_STORED_BEFORE: dict[str, dict[str, Any]] = {
    "model": {"dtype": "float32"},
    "aggregation": {"bits": 4, "per_replica_metrics": False},
}


class ResolvedSpec(Frozen):
    name: JobName | None
    task: ResolvedTask
    model: ResolvedModel
    optimizer: ResolvedOptimizer
    aggregation: ResolvedAggregation
    distributed: ResolvedDistributed
    schedule: ResolvedSchedule
    priority: Priority
    max_attempts: MaxAttempts

    @model_validator(mode="before")
    @classmethod
    def _stored_before_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        upgraded = dict(data)
        for section, fields in _STORED_BEFORE.items():
            part = upgraded.get(section)
            if isinstance(part, dict) and not fields.keys() <= part.keys():
                upgraded[section] = {**fields, **part}
        return upgraded
