"""The resolved JobSpec: what `service.schemas.resolve.resolve` makes of a request,
with every default filled in. Frozen, and no field has a default, so reading a
stored spec can never invent a value: the dispatcher, the Ray path, the reference
runner and the benchmarks all consume exactly what the API stored and shows.

A None left here is a real setting, not a missing one: `dataset`, `seq_len` and
`max_chars` for tasks that do not use them, `clip_grad_norm` = no clipping,
`max_staleness` = never forced.
"""

from __future__ import annotations

from pydantic import ConfigDict, model_validator

from service.schemas.jobspec import (
    BatchSize,
    Beta,
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

    @model_validator(mode="after")
    def _batch_positive(self) -> ResolvedSchedule:
        check_batch_size(self.batch_size)
        return self

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
