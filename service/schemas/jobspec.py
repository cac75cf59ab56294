"""The JobSpec contract (DESIGN §7): what a user submits. Every field is bounded and
unknown fields are rejected. A null (or, where a task changes a default, a field
left out) means "the default for this task and rule", which
`service.schemas.resolve` fills in once, producing the frozen ResolvedSpec that
everything downstream consumes.

The field types (bounds and descriptions) are declared once here and shared with
service.schemas.resolved. Pure pydantic: the training core imports the contract, so
nothing here may import FastAPI, SQLAlchemy or Ray.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from service.schemas.common import StorableText, printable, storable_input

TaskKind = Literal[
    "char_lm", "sequence_classification", "adding", "copy_memory", "lag_paper_linreg"
]
Cell = Literal["rnn", "lstm", "gru"]
Strategy = Literal["dense", "local_sgd", "lag_wk", "lag_ps", "lasg_wk2", "laq"]
DType = Literal["float32", "float64", "bfloat16"]
OptimizerName = Literal["sgd", "adam"]
Split = Literal["iid", "non_iid"]


def _int_or_full(value: object) -> object:
    """One error for a value that is neither, rather than the union's two (one per
    choice, at `batch_size.int` and `batch_size.literal['full']`)."""
    if value == "full" or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"must be 'full' or an integer, not {value!r}")


BatchSize = Annotated[
    int | Literal["full"], Field(union_mode="left_to_right"), BeforeValidator(_int_or_full)
]

# ---- field types, shared by the request (nullable = task default) and the resolved spec

DatasetRef = Annotated[
    StorableText,
    Field(
        max_length=200,
        description="builtin:shakespeare, builtin:digits or upload:<id>; null for generated tasks",
    ),
]
MAX_SEQ_LEN = 4096
SeqLen = Annotated[int, Field(ge=2, le=MAX_SEQ_LEN)]
MaxChars = Annotated[
    int, Field(ge=1_000, le=20_000_000, description="char_lm: characters of the corpus used")
]
CopyLength = Annotated[int, Field(ge=1, le=100, description="copy_memory: symbols to copy")]
NumSamples = Annotated[
    int, Field(ge=64, le=1_000_000, description="adding / copy_memory: generated sequences")
]
Uniform = Annotated[bool, Field(description="lag_paper_linreg: homogeneous control")]
Dim = Annotated[int, Field(ge=2, le=1000, description="lag_paper_linreg: dimension")]

HiddenSize = Annotated[int, Field(ge=1, le=4096)]
NumLayers = Annotated[int, Field(ge=1, le=8)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]
EmbeddingDim = Annotated[int, Field(ge=1, le=4096, description="text tasks only")]
ModelDType = Annotated[
    DType,
    Field(
        description="float32 | float64 | bfloat16 (autocast on a GPU; the lazy test and the "
        "optimizer state stay float32)"
    ),
]

LearningRate = Annotated[float, Field(gt=0.0, le=100.0)]
Momentum = Annotated[float, Field(ge=0.0, lt=1.0)]
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]
Eps = Annotated[float, Field(gt=0.0, le=1.0)]
ClipNorm = Annotated[float, Field(gt=0.0, le=1e6)]

Window = Annotated[int, Field(ge=1, le=1000, description="D, rounds of parameter history")]
Xi = Annotated[float, Field(ge=0.0, le=1e6, description="scalar; xi_d = xi / D")]
MaxStaleness = Annotated[int, Field(ge=1, le=100_000, description="force an upload")]
LocalSteps = Annotated[int, Field(ge=1, le=10_000, description="local_sgd: H")]
Bits = Annotated[int, Field(ge=2, le=16, description="laq: bits per coordinate of an upload")]

Workers = Annotated[int, Field(ge=1, le=256)]
# Every replica holds some CPU (a GPU replica too): the claim's fit test and the
# placement group then reserve exactly the same amounts.
CpusPerWorker = Annotated[float, Field(gt=0.0, le=256.0)]
GpusPerWorker = Annotated[float, Field(ge=0.0, le=16.0)]

Rounds = Annotated[int, Field(ge=1, le=10_000_000)]
Every = Annotated[int, Field(ge=1, le=10_000_000)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
Priority = Annotated[int, Field(ge=-100, le=100)]
MaxAttempts = Annotated[int, Field(ge=1, le=20)]
# The text checked before pydantic's own string schema (whose words for an unpaired
# surrogate say less), which then counts the length in characters; a length checked
# after a validator is counted as "items".
JobName = Annotated[str, Field(max_length=200), BeforeValidator(storable_input)]


def _blank_is_none(name: str) -> str | None:
    # "" or "   " names nothing: stored as no name, shown as "(unnamed)" everywhere,
    # not as "Sweep 2: " with nothing after it.
    return name if name.strip() else None


# A name given at submit; stored names are read back as JobName (older rows may hold
# control characters: the CLI shows them escaped).
SubmittedName = Annotated[JobName, AfterValidator(printable), AfterValidator(_blank_is_none)]

MAX_BATCH_SIZE = 65_536


class Strict(BaseModel):
    # allow_inf_nan: Python's JSON parser accepts NaN and Infinity; no field of a
    # spec means them, and a NaN that passed would reach a worker (or the store).
    # strict: a value of the wrong JSON type is a 422 naming its field, not quietly
    # converted (`"rounds": true` was a 1-round job, `"rounds": "10"` ten); an int
    # still passes for a float. YAML files are read with YAML 1.2 floats
    # (service.spec_yaml), so `lr: 1e-3` is a number there too.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def check_batch_size(batch_size: int | str | None) -> None:
    if isinstance(batch_size, int) and not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"must be 'full' or an integer in 1..{MAX_BATCH_SIZE}")


class TaskSpec(Strict):
    kind: TaskKind
    dataset: DatasetRef | None = None
    seq_len: SeqLen | None = Field(default=None, description="null = task default")
    max_chars: MaxChars | None = Field(default=None, description="null = 1,000,000 for char_lm")
    copy_length: CopyLength = 10
    num_samples: NumSamples = 4096
    uniform: Uniform = False
    dim: Dim = 50


class ModelSpec(Strict):
    cell: Cell = "lstm"
    hidden_size: HiddenSize = 128
    num_layers: NumLayers = 1
    dropout: Dropout = 0.0
    embedding_dim: EmbeddingDim = 32
    dtype: ModelDType | None = Field(
        default=None, description="null = float64 for lag_paper_linreg, float32 otherwise"
    )


class OptimizerSpec(Strict):
    name: OptimizerName = Field(default="adam", description="default: sgd for lag_paper_linreg")
    lr: LearningRate | None = Field(default=None, description="null = task default")
    momentum: Momentum = 0.0
    beta1: Beta = 0.9
    beta2: Beta = 0.999
    eps: Eps = 1e-8
    amsgrad: bool | None = Field(default=None, description="null = true with lasg_wk2 (CADA2)")
    bias_correction: bool | None = Field(
        default=None, description="null = false with lasg_wk2 (CADA2), true otherwise"
    )
    clip_grad_norm: ClipNorm | None = Field(
        default=1.0,
        description="max norm of the aggregated gradient; null = no clipping "
        "(default for lag_paper_linreg)",
    )


class AggregationSpec(Strict):
    strategy: Strategy = "dense"
    window: Window = 10
    xi: Xi | None = Field(default=None, description="null = the rule's default")
    max_staleness: MaxStaleness | None = Field(
        default=None,
        description="null = the rule's default (50 for lasg_wk2, 100 for laq, else never)",
    )
    local_steps: LocalSteps = 4
    warmup_full_upload: bool = True
    bits: Bits | None = Field(
        default=None,
        description="laq; null = the rule's default (4 on full batches, 8 on minibatches)",
    )
    per_replica_metrics: bool = Field(
        default=False,
        description="add the skip test's figures to every round's record: lhs_w<r> and "
        "staleness_w<r> per replica r, and rhs (DESIGN §5)",
    )


class DistributedSpec(Strict):
    workers: Workers | None = Field(default=None, description="null = task default")
    split: Split = "non_iid"
    cpus_per_worker: CpusPerWorker = Field(
        default=1.0, description="default: 0.25 for lag_paper_linreg"
    )
    gpus_per_worker: GpusPerWorker = 0.0


class ScheduleSpec(Strict):
    rounds: Rounds = Field(default=500, description="default: 1000 for lag_paper_linreg")
    batch_size: BatchSize | None = Field(
        default=None, description="int or 'full'; null = task default"
    )
    eval_every: Every = 50
    checkpoint_every: Every = 100
    seed: Seed = 0

    @field_validator("batch_size")
    @classmethod
    def _batch_in_range(cls, batch_size: int | str | None) -> int | str | None:
        check_batch_size(batch_size)  # a field validator: the 422 names batch_size
        return batch_size


class JobSpec(Strict):
    name: SubmittedName | None = None
    task: TaskSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    aggregation: AggregationSpec = Field(default_factory=AggregationSpec)
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    priority: Priority = 0
    max_attempts: MaxAttempts | None = Field(default=None, description="null = server default")
