"""The cost model: how much memory a job's replicas and its coordinator need, from
the resolved spec and the dataset's shape, estimated at submit (no torch).

Every term is an upper-bound-style count of the tensors the training core keeps
alive, times the bytes per element:

- parameters P of the recurrent net (embedding, gates per layer, head), exactly as
  workers.training.models builds it;
- a replica keeps θ, θ̂ (the lazy rules' last uploaded point), the gradient, the
  stale gradient and the encoded upload: REPLICA_COPIES x P;
- a replica's activations for one gradient evaluation: batch x steps x (layers x
  H x (gates + 2) + input width) plus, for per-step heads, batch x steps x out x
  LOGIT_COPIES (logits, softmax, their gradient);
- its data: generated tasks are built whole in every replica; a text as int64
  codes; a CSV as float64 values;
- the coordinator: θ, the optimizer's state (adam: m, v, v̂max; sgd: momentum),
  the aggregated direction, one upload per worker in flight, and for the stale-
  gradient rules the workers x P matrix, cloned and serialised at each checkpoint
  (COORDINATOR_STALE_COPIES), plus one validation pass.

The estimate leaves out the interpreter, torch and Ray's runtime (the same for
every job): it is what one job adds; each Ray bundle reserves it and that base
(service.schemas.gang.PROCESS_BASE_BYTES) as `memory`.
tests/training/test_cost_model.py compares it with measured peak memory. Pure:
pydantic and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.schemas.data_limits import (
    DIGITS_CLASSES,
    DIGITS_ROWS,
    DIGITS_VALUES,
    MAX_VAL_SAMPLES,
    MAX_VAL_TOKENS,
    SHAKESPEARE_CHARS,
    SHAKESPEARE_DISTINCT_CHARS,
    CsvShape,
    DatasetShape,
    TextShape,
    generated_steps,
    training_samples,
)
from service.schemas.resolved import ResolvedSpec

GIB = 1 << 30
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
# copy_memory's token alphabet: 8 symbols, blank, delimiter (workers' COPY_VOCAB;
# tests/training/test_cost_model.py checks they agree).
COPY_VOCAB = 10
REPLICA_COPIES = 5
LOGIT_COPIES = 3
COORDINATOR_STALE_COPIES = 3
# The rules whose coordinator keeps each worker's last upload (workers' registry:
# a StaleGradientCoordinator; tests/training/test_cost_model.py checks they agree).
STALE_GRADIENT_RULES = frozenset({"lag_wk", "lag_ps", "lasg_wk2", "laq"})
# The coordinator also loads the dataset (and its libraries) and the allocator keeps
# slack; measured ~40-50 MiB above the tensors for small jobs.
COORDINATOR_BASE_BYTES = 48 << 20


@dataclass(frozen=True)
class CostLimits:
    """The server's limits (settings); a spec over any of them is refused at submit."""

    replica_memory_bytes: int
    coordinator_memory_bytes: int
    vocabulary: int


@dataclass(frozen=True)
class ModelShape:
    """What the task makes of the dataset: the net's widths and one sample's steps."""

    input_width: int  # features per step (or the embedding width for tokens)
    vocabulary: int | None  # token inputs: the embedding's rows
    outputs: int  # classes, characters or 1 (regression)
    steps: int
    per_step_head: bool  # a language model scores every step
    samples: int  # training samples (windows) of the whole dataset
    data_bytes: int  # what one replica holds of the data


@dataclass(frozen=True)
class CostEstimate:
    parameters: int
    replica_bytes: int
    coordinator_bytes: int
    # The largest term of each side, as the spec field that drives it.
    replica_field: str
    coordinator_field: str


def gib(n: int) -> str:
    """Bytes as GiB (MiB below one GiB), one decimal."""
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / (1 << 20):.1f} MiB"


def model_shape(spec: ResolvedSpec, shape: DatasetShape | None) -> ModelShape:
    task, model = spec.task, spec.model
    seq_len = task.seq_len or 1
    if task.kind == "char_lm":
        text = shape if isinstance(shape, TextShape) else None
        chars = text.chars if text else SHAKESPEARE_CHARS
        vocab = text.distinct_chars if text else SHAKESPEARE_DISTINCT_CHARS
        used = min(chars, task.max_chars or chars)
        return ModelShape(
            model.embedding_dim, vocab, vocab, seq_len, True, used // seq_len, used * 8
        )
    if task.kind == "sequence_classification":
        csv = shape if isinstance(shape, CsvShape) else None
        rows = csv.rows if csv else DIGITS_ROWS
        values = (csv.columns - 1) if csv else DIGITS_VALUES
        classes = csv.classes if csv else DIGITS_CLASSES
        return ModelShape(
            max(1, values // seq_len),
            None,
            max(classes, 1),
            seq_len,
            False,
            rows,
            rows * (values + 1) * 8,
        )
    if task.kind == "adding":
        samples = task.num_samples
        return ModelShape(2, None, 1, seq_len, False, samples, samples * seq_len * 2 * 8 * 2)
    if task.kind == "copy_memory":
        steps = generated_steps(task)
        samples = task.num_samples
        return ModelShape(
            model.embedding_dim,
            COPY_VOCAB,
            COPY_VOCAB,
            steps,
            True,
            samples,
            samples * steps * 8 * 2,
        )
    # lag_paper_linreg: a linear model of `dim` weights; data dim x dim per worker.
    return ModelShape(task.dim, None, 1, 1, False, task.dim, task.dim * task.dim * 8)


def parameter_count(spec: ResolvedSpec, shape: ModelShape) -> int:
    if spec.task.kind == "lag_paper_linreg":
        return spec.task.dim
    model = spec.model
    gates, hidden = GATES[model.cell], model.hidden_size
    embedding = (shape.vocabulary or 0) * model.embedding_dim
    first = gates * hidden * (shape.input_width + hidden + 2)
    deeper = (model.num_layers - 1) * gates * hidden * (2 * hidden + 2)
    head = hidden * shape.outputs + shape.outputs
    return embedding + first + deeper + head


def element_bytes(spec: ResolvedSpec) -> int:
    return 8 if spec.task.kind == "lag_paper_linreg" else 4


def estimate(spec: ResolvedSpec, shape: DatasetShape | None) -> CostEstimate:
    """Memory per replica and for the coordinator (bytes) of `spec` on a dataset of
    `shape` (None: builtin or generated data)."""
    ms = model_shape(spec, shape)
    params = parameter_count(spec, ms)
    elem = element_bytes(spec)
    workers = spec.distributed.workers
    shard = max(1, training_samples(ms.samples) // workers)
    batch = spec.schedule.minibatch or shard
    model = spec.model
    per_step = model.num_layers * model.hidden_size * (GATES[model.cell] + 2) + ms.input_width
    logits = ms.outputs * LOGIT_COPIES * (ms.steps if ms.per_step_head else 1)
    replica_terms = {
        "model.hidden_size": REPLICA_COPIES * params * elem,
        "schedule.batch_size": batch * (ms.steps * per_step + logits) * elem,
        "task.dataset": ms.data_bytes,
    }
    optimizer_state = 3 if spec.optimizer.name == "adam" else 1
    stale = COORDINATOR_STALE_COPIES if spec.aggregation.strategy in STALE_GRADIENT_RULES else 0
    val_samples = MAX_VAL_TOKENS // max(ms.steps, 1) if ms.per_step_head else MAX_VAL_SAMPLES
    # Evaluation's activations grow with the model (hidden size x layers), not with the
    # dataset: validation is capped (MAX_VAL_*), so that is the field to change.
    evaluation = val_samples * (ms.steps * per_step + logits) * elem
    coordinator_terms = {
        "model.hidden_size": COORDINATOR_BASE_BYTES
        + (3 + optimizer_state) * params * elem
        + evaluation,
        "distributed.workers": (1 + stale) * workers * params * elem,
        "task.dataset": ms.data_bytes,
    }
    return CostEstimate(
        parameters=params,
        replica_bytes=sum(replica_terms.values()),
        coordinator_bytes=sum(coordinator_terms.values()),
        replica_field=max(replica_terms, key=lambda k: replica_terms[k]),
        coordinator_field=max(coordinator_terms, key=lambda k: coordinator_terms[k]),
    )


def cost_problems(
    spec: ResolvedSpec, shape: DatasetShape | None, limits: CostLimits
) -> list[tuple[str, str]]:
    """(field, message) for each server limit the spec exceeds; [] if it fits."""
    ms = model_shape(spec, shape)
    if ms.vocabulary is not None and ms.vocabulary > limits.vocabulary:
        return [
            (
                "task.dataset",
                f"the text has {ms.vocabulary:,} distinct characters; the server's "
                f"vocabulary limit is {limits.vocabulary:,}",
            )
        ]
    cost = estimate(spec, shape)
    problems: list[tuple[str, str]] = []
    if cost.replica_bytes > limits.replica_memory_bytes:
        problems.append(
            (
                cost.replica_field,
                f"estimated {gib(cost.replica_bytes)} per replica "
                f"({cost.parameters:,} parameters), limit {gib(limits.replica_memory_bytes)}",
            )
        )
    if cost.coordinator_bytes > limits.coordinator_memory_bytes:
        problems.append(
            (
                cost.coordinator_field,
                f"estimated {gib(cost.coordinator_bytes)} for the coordinator "
                f"({cost.parameters:,} parameters x {_workers(spec.distributed.workers)}), "
                f"limit {gib(limits.coordinator_memory_bytes)}",
            )
        )
    return problems


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"
