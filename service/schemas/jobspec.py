"""The JobSpec contract (DESIGN §7): every field bounded, unknown fields rejected,
task-dependent defaults filled in so that the stored spec is fully explicit.

Pure pydantic: the training core parses the same model, so nothing here may import
FastAPI, SQLAlchemy or Ray.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.schemas.data_limits import check_data

TaskKind = Literal[
    "char_lm", "sequence_classification", "adding", "copy_memory", "lag_paper_linreg"
]
Cell = Literal["rnn", "lstm", "gru"]
Strategy = Literal["dense", "local_sgd", "lag_wk", "lag_ps", "lasg_wk2"]
OptimizerName = Literal["sgd", "adam"]
Split = Literal["iid", "non_iid"]

BUILTIN_DATASETS: dict[str, str] = {
    "builtin:shakespeare": "char_lm",
    "builtin:digits": "sequence_classification",
}
DEFAULT_DATASET: dict[str, str] = {
    "char_lm": "builtin:shakespeare",
    "sequence_classification": "builtin:digits",
}
DEFAULT_SEQ_LEN: dict[str, int] = {
    "char_lm": 64,
    "sequence_classification": 8,
    "adding": 50,
    "copy_memory": 50,
}
# Tasks that supply per-worker smoothness constants (needed by lag_ps).
TASKS_WITH_SMOOTHNESS: frozenset[str] = frozenset({"lag_paper_linreg"})
STOCHASTIC_DEFAULT_MAX_STALENESS = 50
ADAM_DEFAULT_XI = 1e-6
# Generated tasks are built whole in every replica: bound their size at submit.
MAX_GENERATED_STEPS = 20_000_000
# The coordinator's bundle in every gang; the claim's "fits" test and the placement
# group both use these.
COORDINATOR_CPUS = 1.0
COORDINATOR_GPUS = 0.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskSpec(_Strict):
    kind: TaskKind
    dataset: str | None = Field(
        default=None,
        max_length=200,
        description="builtin:shakespeare, builtin:digits or upload:<id>; null for generated tasks",
    )
    seq_len: int | None = Field(default=None, ge=2, le=4096)
    max_chars: int | None = Field(
        default=None, ge=1_000, le=20_000_000, description="char_lm: characters of the corpus used"
    )
    copy_length: int = Field(default=10, ge=1, le=100, description="copy_memory: symbols to copy")
    num_samples: int = Field(
        default=4096, ge=64, le=1_000_000, description="adding / copy_memory: generated sequences"
    )
    uniform: bool = Field(default=False, description="lag_paper_linreg: homogeneous control")
    dim: int = Field(default=50, ge=2, le=1000, description="lag_paper_linreg: dimension")


class ModelSpec(_Strict):
    cell: Cell = "lstm"
    hidden_size: int = Field(default=128, ge=1, le=4096)
    num_layers: int = Field(default=1, ge=1, le=8)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    embedding_dim: int = Field(default=32, ge=1, le=4096, description="text tasks only")


class OptimizerSpec(_Strict):
    name: OptimizerName = "adam"
    lr: float | None = Field(default=None, gt=0.0, le=100.0, description="null = task default")
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    eps: float = Field(default=1e-8, gt=0.0, le=1.0)
    amsgrad: bool | None = Field(default=None, description="null = true with lasg_wk2 (CADA2)")
    bias_correction: bool | None = Field(
        default=None, description="null = false with lasg_wk2 (CADA2), true otherwise"
    )
    clip_grad_norm: float | None = Field(default=1.0, gt=0.0, le=1e6)


class AggregationSpec(_Strict):
    strategy: Strategy = "dense"
    window: int = Field(default=10, ge=1, le=1000, description="D, rounds of parameter history")
    xi: float | None = Field(
        default=None,
        ge=0.0,
        le=1e6,
        description="scalar; xi_d = xi / D. null = 1.0 (10.0 for lag_ps, 1e-6 with adam)",
    )
    max_staleness: int | None = Field(
        default=None, ge=1, le=100_000, description="force an upload; null = 50 for lasg_wk2"
    )
    local_steps: int = Field(default=4, ge=1, le=10_000, description="local_sgd: H")
    warmup_full_upload: bool = True


class DistributedSpec(_Strict):
    workers: int | None = Field(default=None, ge=1, le=256, description="null = task default")
    split: Split = "non_iid"
    # Every replica holds some CPU (a GPU replica too): the claim's fit test and the
    # placement group then reserve exactly the same amounts.
    cpus_per_worker: float = Field(default=1.0, gt=0.0, le=256.0)
    gpus_per_worker: float = Field(default=0.0, ge=0.0, le=16.0)


BatchSize = int | Literal["full"]


class ScheduleSpec(_Strict):
    rounds: int = Field(default=500, ge=1, le=10_000_000)
    batch_size: Annotated[BatchSize, Field(union_mode="left_to_right")] | None = Field(
        default=None, description="int or 'full'; null = task default"
    )
    eval_every: int = Field(default=50, ge=1, le=10_000_000)
    checkpoint_every: int = Field(default=100, ge=1, le=10_000_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _batch_positive(self) -> ScheduleSpec:
        if isinstance(self.batch_size, int) and not 1 <= self.batch_size <= 65_536:
            raise ValueError("schedule.batch_size must be 'full' or an integer in 1..65536")
        return self


class JobSpec(_Strict):
    name: str | None = Field(default=None, max_length=200)
    task: TaskSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    aggregation: AggregationSpec = Field(default_factory=AggregationSpec)
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    priority: int = Field(default=0, ge=-100, le=100)
    max_attempts: int | None = Field(default=None, ge=1, le=20, description="null = server default")

    @model_validator(mode="before")
    @classmethod
    def _task_defaults_before(cls, data: Any) -> Any:
        # lag_paper_linreg's defaults change the optimizer and schedule before their
        # own defaults apply, so that the minimal spec reproduces the paper's run.
        if not isinstance(data, dict):
            return data
        task = data.get("task")
        if isinstance(task, dict) and task.get("kind") == "lag_paper_linreg":
            data = dict(data)
            opt = dict(data.get("optimizer") or {})
            opt.setdefault("name", "sgd")
            opt.setdefault("clip_grad_norm", None)
            data["optimizer"] = opt
            sched = dict(data.get("schedule") or {})
            sched.setdefault("batch_size", "full")
            sched.setdefault("rounds", 1000)
            data["schedule"] = sched
        return data

    @model_validator(mode="after")
    def _fill_and_check(self) -> JobSpec:
        kind = self.task.kind
        _fill_task(self.task)
        if self.distributed.workers is None:
            self.distributed.workers = 9 if kind == "lag_paper_linreg" else 4
        if self.schedule.batch_size is None:
            self.schedule.batch_size = 32
        agg, opt = self.aggregation, self.optimizer
        if agg.xi is None:
            agg.xi = _default_xi(agg.strategy, opt.name)
        if agg.max_staleness is None and agg.strategy == "lasg_wk2":
            agg.max_staleness = STOCHASTIC_DEFAULT_MAX_STALENESS
        if opt.amsgrad is None:
            opt.amsgrad = opt.name == "adam" and agg.strategy == "lasg_wk2"
        if opt.bias_correction is None:
            opt.bias_correction = agg.strategy != "lasg_wk2"
        if opt.lr is None:
            opt.lr = _default_lr(self)
        if agg.strategy == "lag_ps" and kind not in TASKS_WITH_SMOOTHNESS:
            raise ValueError(
                "aggregation.strategy: lag_ps needs per-worker smoothness constants, "
                f"which only {sorted(TASKS_WITH_SMOOTHNESS)} supplies"
            )
        workers = self.distributed.workers
        if kind == "lag_paper_linreg" and workers > self.task.dim:
            raise ValueError(
                f"distributed.workers: lag_paper_linreg needs workers <= task.dim ({self.task.dim})"
            )
        if kind in ("adding", "copy_memory"):
            steps = (self.task.seq_len or 0) + 2 * self.task.copy_length
            if self.task.num_samples * steps > MAX_GENERATED_STEPS:
                raise ValueError(
                    f"task.num_samples: {self.task.num_samples} sequences of {steps} steps "
                    f"exceed {MAX_GENERATED_STEPS:,} generated steps (every replica holds them)"
                )
        if self.schedule.batch_size == "full" and kind == "char_lm":
            raise ValueError("schedule.batch_size: 'full' is not supported for char_lm")
        # Builtin datasets and generated tasks; an upload's shape is checked at submit.
        problems = check_data(self, None)
        if problems:
            raise ValueError("; ".join(f"{field}: {message}" for field, message in problems))
        return self


def _fill_task(task: TaskSpec) -> None:
    kind = task.kind
    if kind in DEFAULT_DATASET:
        if task.dataset is None:
            task.dataset = DEFAULT_DATASET[kind]
        ds = task.dataset
        if ds.startswith("builtin:"):
            if BUILTIN_DATASETS.get(ds) != kind:
                raise ValueError(f"task.dataset: {ds!r} is not a builtin dataset for {kind}")
        elif not (ds.startswith("upload:") and len(ds) > len("upload:")):
            raise ValueError("task.dataset: must be 'builtin:<name>' or 'upload:<id>'")
    elif task.dataset is not None:
        raise ValueError(f"task.dataset: task {kind} generates its own data; leave it out")
    if task.seq_len is None and kind in DEFAULT_SEQ_LEN:
        task.seq_len = DEFAULT_SEQ_LEN[kind]
    if kind == "char_lm" and task.max_chars is None:
        task.max_chars = 1_000_000


def linreg_smoothness(workers: int, uniform: bool) -> list[float]:
    """Per-worker smoothness L_m = (1 + c_m)^2 of the paper's task, c_m = 1.3^(m-1)
    (c_m = 1 for every worker in the uniform control)."""
    return [(1.0 + (1.0 if uniform else 1.3**m)) ** 2 for m in range(workers)]


def linreg_mean_smoothness(workers: int, uniform: bool) -> float:
    """Smoothness of the *mean* loss (1/M) sum L_m. The q_m are orthonormal, so the
    Hessian's top eigenvalue along q_m is M - 1 + L_m, divided by M."""
    return (workers - 1 + max(linreg_smoothness(workers, uniform))) / workers


def _default_xi(strategy: str, optimizer: str) -> float:
    """The paper's xi (1, or 10 for lag_ps) for SGD steps. With Adam every parameter
    moves about one lr per round whatever its gradient, so sum ||dtheta||^2 / lr^2
    grows with the parameter count and xi = 1 silences every replica; 1e-6 kept
    CADA2 at dense Adam's accuracy in benchmarks/rnn_comm.py (20-26 k parameters)."""
    if strategy == "lag_ps":
        return 10.0
    if optimizer == "adam" and strategy in ("lag_wk", "lasg_wk2"):
        return ADAM_DEFAULT_XI
    return 1.0


def _default_lr(spec: JobSpec) -> float:
    if spec.task.kind == "lag_paper_linreg":
        workers = spec.distributed.workers or 9
        return 1.0 / linreg_mean_smoothness(workers, spec.task.uniform)
    return 0.002 if spec.optimizer.name == "adam" else 0.1

