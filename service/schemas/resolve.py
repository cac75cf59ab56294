"""Resolving a JobSpec: the one place where defaults are filled in and impossible
combinations are refused. `resolve` turns a validated request into the frozen
ResolvedSpec that the API stores and shows and that every worker consumes; a
problem is a SpecError listing (dotted field, message) pairs, which the API answers
with a 422 naming each field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.schemas.data_limits import check_data, generated_steps
from service.schemas.defaults import (
    BUILTIN_DATASETS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_DATASET,
    DEFAULT_DTYPE,
    DEFAULT_LR,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_CHARS,
    DEFAULT_SEQ_LEN,
    DEFAULT_WORKERS,
    LAG_PS_FEW_WORKERS_MAX_XI,
    LAG_PS_MIN_WORKERS,
    MAX_GENERATED_STEPS,
    PAPER_TASK,
    RULE_DEFAULTS,
    TASKS_WITH_SMOOTHNESS,
    linreg_mean_smoothness,
    linreg_smoothness,
    rule_defaults,
)
from service.schemas.jobspec import JobSpec, TaskSpec
from service.schemas.resolved import ResolvedSpec
from service.schemas.unused_settings import unused_settings

Problem = tuple[str, str]


class SpecError(ValueError):
    """A request that no server could run, with the fields to blame."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems


def resolve(
    request: JobSpec | Mapping[str, Any], *, default_max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> ResolvedSpec:
    """The request with every default filled in. A mapping is validated as a JobSpec
    first (pydantic.ValidationError for malformed fields); SpecError for a spec whose
    parts do not fit together."""
    spec = request if isinstance(request, JobSpec) else JobSpec.model_validate(request)
    filled = _filled(spec, default_max_attempts)
    resolved = ResolvedSpec.model_validate(filled)
    problems = (
        unused_settings(spec, filled, lambda other: _filled(other, default_max_attempts))
        or _combination_problems(resolved)
        or check_data(resolved, None)
    )
    if problems:
        raise SpecError(problems)
    return resolved


def _filled(spec: JobSpec, default_max_attempts: int) -> dict[str, Any]:
    kind = spec.task.kind
    paper = kind == "lag_paper_linreg"
    optimizer, schedule = spec.optimizer, spec.schedule
    data = spec.model_dump()
    task, opt, agg = data["task"], data["optimizer"], data["aggregation"]
    dist, sched = data["distributed"], data["schedule"]
    task.update(_task_data(spec.task))
    if paper:
        # Only for fields the request left out: an explicit value (even null) stands.
        if "name" not in optimizer.model_fields_set:
            opt["name"] = PAPER_TASK.optimizer
        if "clip_grad_norm" not in optimizer.model_fields_set:
            opt["clip_grad_norm"] = PAPER_TASK.clip_grad_norm
        if "rounds" not in schedule.model_fields_set:
            sched["rounds"] = PAPER_TASK.rounds
        if "cpus_per_worker" not in spec.distributed.model_fields_set:
            dist["cpus_per_worker"] = PAPER_TASK.cpus_per_worker
    if dist["workers"] is None:
        dist["workers"] = PAPER_TASK.workers if paper else DEFAULT_WORKERS
    if sched["batch_size"] is None:
        sched["batch_size"] = PAPER_TASK.batch_size if paper else DEFAULT_BATCH_SIZE
    rule = rule_defaults(agg["strategy"], full_batch=sched["batch_size"] == "full")
    if agg["xi"] is None:
        agg["xi"] = rule.xi
        if agg["strategy"] == "lag_ps" and dist["workers"] < LAG_PS_MIN_WORKERS:
            agg["xi"] = min(rule.xi, LAG_PS_FEW_WORKERS_MAX_XI)
    if agg["max_staleness"] is None:
        agg["max_staleness"] = rule.max_staleness
    if agg["bits"] is None:
        agg["bits"] = rule.bits
    if opt["amsgrad"] is None:
        opt["amsgrad"] = rule.cada and opt["name"] == "adam"
    if opt["bias_correction"] is None:
        opt["bias_correction"] = not rule.cada
    if opt["lr"] is None:
        opt["lr"] = (
            _paper_lr(agg["strategy"], dist["workers"], spec.task.uniform)
            if paper
            else DEFAULT_LR[opt["name"]]
        )
    if data["model"]["dtype"] is None:
        data["model"]["dtype"] = PAPER_TASK.dtype if paper else DEFAULT_DTYPE
    if data["max_attempts"] is None:
        data["max_attempts"] = default_max_attempts
    return data


def _paper_lr(strategy: str, workers: int, uniform: bool) -> float:
    """1/L of the mean loss (the paper's GD). local_sgd's steps between averages are
    steps on one worker's loss, stable only below 2/L_m: at 1/L of the mean (0.098 for 9
    workers, against L_m up to 84) the minimal spec diverged at round 63, so its default
    is 1/L_m of the stiffest worker."""
    if strategy == "local_sgd":
        return 1.0 / max(linreg_smoothness(workers, uniform))
    return 1.0 / linreg_mean_smoothness(workers, uniform)


def _task_data(task: TaskSpec) -> dict[str, Any]:
    kind = task.kind
    filled: dict[str, Any] = {}
    if kind in DEFAULT_DATASET and task.dataset is None:
        filled["dataset"] = DEFAULT_DATASET[kind]
    elif task.dataset is not None and task.dataset.startswith("upload:"):
        # Stored canonical: the worker looks the upload up by its id as written, so
        # "upload:0001" must become "upload:1" here, not fail on every attempt.
        raw = task.dataset.removeprefix("upload:")
        if raw.isascii() and raw.isdigit():
            filled["dataset"] = f"upload:{int(raw)}"
    if task.seq_len is None and kind in DEFAULT_SEQ_LEN:
        filled["seq_len"] = DEFAULT_SEQ_LEN[kind]
    if kind == "char_lm" and task.max_chars is None:
        filled["max_chars"] = DEFAULT_MAX_CHARS
    return filled


def _dataset_problem(kind: str, ds: str) -> str | None:
    """What is wrong with `ds` as the dataset of a `kind` task, if anything."""
    if ds.startswith("builtin:"):
        if BUILTIN_DATASETS.get(ds) == kind:
            return None
        fits = sorted(name for name, task in BUILTIN_DATASETS.items() if task == kind)
        return (
            f"{ds!r} is not a builtin dataset for {kind} "
            f"({kind}'s: {', '.join(fits)}; or an upload, 'upload:<id>')"
        )
    if ds.startswith("upload:"):
        # Canonical digits by now (_task_data). Any other id was "no dataset
        # 'upload:abc' uploaded by you", as if some upload could have that name.
        raw = ds.removeprefix("upload:")
        if raw.isascii() and raw.isdigit():
            return None
        return f"an upload's id is a number: upload:<id>, e.g. upload:12 (not {ds!r})"
    # A builtin's bare name ("digits") is the builtin meant.
    bare = f"builtin:{ds}"
    guess = f"; did you mean {bare!r}?" if bare in BUILTIN_DATASETS else ""
    return f"must be 'builtin:<name>' or 'upload:<id>'{guess}"


def _combination_problems(spec: ResolvedSpec) -> list[Problem]:
    task = spec.task
    kind = task.kind
    problems: list[Problem] = []
    if kind in DEFAULT_DATASET:
        assert task.dataset is not None  # filled above
        wrong = _dataset_problem(kind, task.dataset)
        if wrong is not None:
            problems.append(("task.dataset", wrong))
    elif task.dataset is not None:
        problems.append(("task.dataset", f"task {kind} generates its own data; leave it out"))
    if RULE_DEFAULTS[spec.aggregation.strategy].needs_smoothness and (
        kind not in TASKS_WITH_SMOOTHNESS
    ):
        problems.append(
            (
                "aggregation.strategy",
                f"{spec.aggregation.strategy} needs per-worker smoothness constants, "
                f"which only {sorted(TASKS_WITH_SMOOTHNESS)} supplies",
            )
        )
    workers = spec.distributed.workers
    xi = spec.aggregation.xi
    if (
        spec.aggregation.strategy == "lag_ps"
        and workers < LAG_PS_MIN_WORKERS
        and xi > LAG_PS_FEW_WORKERS_MAX_XI
    ):
        problems.append(
            (
                "aggregation.xi",
                f"lag_ps with {workers} worker(s) diverges at xi {xi:g} (the paper's 10 is "
                f"for 9 workers); use xi <= {LAG_PS_FEW_WORKERS_MAX_XI:g} with fewer than "
                f"{LAG_PS_MIN_WORKERS} workers",
            )
        )
    if kind == "lag_paper_linreg" and workers > task.dim:
        problems.append(
            (
                "distributed.workers",
                f"lag_paper_linreg needs workers <= task.dim ({task.dim})",
            )
        )
    if kind in ("adding", "copy_memory"):
        steps = generated_steps(task)  # adding has no copy_length
        if task.num_samples * steps > MAX_GENERATED_STEPS:
            problems.append(
                (
                    "task.num_samples",
                    f"{task.num_samples} sequences of {steps} steps exceed "
                    f"{MAX_GENERATED_STEPS:,} generated steps (every replica holds them)",
                )
            )
    if spec.model.dtype == "bfloat16" and spec.distributed.gpus_per_worker == 0:
        problems.append(
            (
                "model.dtype",
                "bfloat16 autocast needs a GPU with bfloat16 support "
                "(distributed.gpus_per_worker > 0); use float32 on CPUs",
            )
        )
    if spec.schedule.batch_size == "full" and kind == "char_lm":
        problems.append(
            (
                "schedule.batch_size",
                "'full' is not supported for char_lm: a shard is thousands of seq_len-character "
                "windows, whose logits in one batch would outgrow a replica's memory; give a "
                "number of windows (e.g. 32)",
            )
        )
    return problems
