"""The sweep contract (DESIGN §11): what a user submits to POST /v1/sweeps and what
the sweep routes answer. A sweep searches a base JobSpec's settings, named by dotted
paths, for the best values of one or more objectives; its trials are ordinary jobs.

Whether the paths name JobSpec fields and the base is valid at every corner of the
space is checked against the JobSpec itself (service.schemas.sweep_space), after
these shapes validate; where they do not, the paths and objectives are checked on
the raw text beside them (service.schemas.sweep_checks), so one 422 names both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from service.schemas.common import StorableText, UtcDatetime
from service.schemas.jobs import TERMINAL, JobStatus
from service.schemas.jobspec import JobSpec, Seed, Strict, SubmittedName
from service.schemas.sweep_checks import (
    MAX_METRIC_LENGTH,
    MAX_OBJECTIVES,
    MAX_PARAMETERS,
    MAX_PATH_LENGTH,
    METRIC_NAME,
    PARAM_PATH,
    text_problems,
)
from service.schemas.sweep_errors import ERRORS_WITHOUT_TAG, with_problems

MAX_CHOICES = 64
MAX_TRIALS = 1000
MAX_PARALLEL = 100

# A trial's status is its job's, or one of these: pending before its job exists, pruned
# when the pruner stopped it (its job is then cancelled).
TrialOnlyStatus = Literal["pending", "pruned"]
PRUNED: TrialOnlyStatus = "pruned"
# A trial that has finished, as the CLI and the dashboard count them.
FINISHED_TRIAL_STATUSES: frozenset[str] = frozenset({*TERMINAL, PRUNED})

Choice = StorableText | int | float | bool | None
ParamPath = Annotated[
    str, Field(min_length=1, max_length=MAX_PATH_LENGTH, pattern=PARAM_PATH.pattern)
]
MetricName = Annotated[
    str, Field(min_length=1, max_length=MAX_METRIC_LENGTH, pattern=METRIC_NAME.pattern)
]


class FloatParam(Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = Field(default=False, description="sample on a log scale (low must be > 0)")

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if not self.low < self.high:
            raise ValueError(
                f"the range is empty: low ({self.low:g}) must be below high ({self.high:g}); "
                "a fixed value belongs in base"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got {self.low:g}")
        return self


class IntParam(Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = Field(default=False, description="sample on a log scale (low must be >= 1)")
    step: int = Field(default=1, ge=1, description="spacing of the values (1 with log)")

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if not self.low < self.high:
            raise ValueError(
                f"the range is empty: low ({self.low}) must be below high ({self.high}); "
                "a fixed value belongs in base"
            )
        if self.log and self.low < 1:
            raise ValueError(f"log scale needs low >= 1, got {self.low}")
        if self.log and self.step != 1:
            raise ValueError("log scale and step > 1 cannot be combined")
        if (self.high - self.low) % self.step:
            raise ValueError(f"high - low ({self.high - self.low}) must be a multiple of step")
        return self


class CategoricalParam(Strict):
    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=2, max_length=MAX_CHOICES)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen: set[tuple[str, Choice]] = set()
        for choice in self.choices:
            key = (type(choice).__name__, choice)  # 1 and true are different choices
            if key in seen:
                raise ValueError(f"choices must be distinct: {choice!r} is given twice")
            seen.add(key)
        for choice in self.choices:
            if isinstance(choice, str) and len(choice) > 200:
                raise ValueError("a choice is longer than 200 characters")
        return self


Parameter = Annotated[
    Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")],
    ERRORS_WITHOUT_TAG,
]


class Objective(Strict):
    metric: MetricName = Field(
        description="a metric of the trial job's final metrics (e.g. val_accuracy, "
        "bytes_up_total) or of its summary (uploads_saved_fraction, bytes_saved_fraction)"
    )
    direction: Literal["minimize", "maximize"]


class MedianPruner(Strict):
    type: Literal["median"]
    startup_trials: int = Field(
        default=5, ge=0, le=MAX_TRIALS, description="no pruning until this many trials finished"
    )
    warmup_rounds: int = Field(
        default=0,
        ge=0,
        le=10_000_000,
        description="no pruning before a trial has run this many rounds",
    )


class SuccessiveHalvingPruner(Strict):
    type: Literal["successive_halving"]
    min_rounds: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="rounds a trial runs before its first rung (the first evaluation "
        "after at least this many); null = estimated from finished trials",
    )
    reduction_factor: int = Field(default=4, ge=2, le=100)
    min_early_stopping_rate: int = Field(default=0, ge=0, le=100)


Pruner = Annotated[
    Annotated[MedianPruner | SuccessiveHalvingPruner, Field(discriminator="type")],
    ERRORS_WITHOUT_TAG,
]
Sampler = Literal["gp", "tpe", "random"]


class SweepSpec(Strict):
    name: SubmittedName | None = None
    base: JobSpec = Field(description="the JobSpec every trial starts from")
    parameters: dict[ParamPath, Parameter] = Field(
        min_length=1,
        max_length=MAX_PARAMETERS,
        description="dotted JobSpec paths (e.g. optimizer.lr) and the range searched",
    )
    objectives: list[Objective] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    trials: int = Field(
        ge=1,
        le=MAX_TRIALS,
        description="the trial budget (failed, cancelled and pruned trials count)",
    )
    parallel: int = Field(
        default=1, ge=1, le=MAX_PARALLEL, description="trials queued or running at once, at most"
    )
    sampler: Sampler = "gp"
    seed: Seed = 0
    startup_trials: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TRIALS,
        description="random trials before gp/tpe model the results; null = a quarter of "
        "the budget, 2 to 10",
    )
    pruner: Pruner | None = Field(
        default=None, description="stop trials whose intermediate first objective is poor"
    )

    @model_validator(mode="wrap")
    @classmethod
    def _every_mistake_at_once(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            extra = text_problems(data) if isinstance(data, Mapping) else []
            if not extra:
                raise
            raise with_problems(exc, data, extra) from None

    # Field validators, so that the 422 names the field (a model validator's is at
    # `body`, echoing the whole request).
    @field_validator("objectives")
    @classmethod
    def _each_metric_once(cls, objectives: list[Objective]) -> list[Objective]:
        metrics = [o.metric for o in objectives]
        for metric in metrics:
            if metrics.count(metric) > 1:
                raise ValueError(f"each metric may appear once: {metric!r} is given twice")
        return objectives

    @field_validator("pruner")
    @classmethod
    def _single_objective(cls, pruner: Pruner | None, info: ValidationInfo) -> Pruner | None:
        if pruner is not None and len(info.data.get("objectives", ())) > 1:
            raise ValueError("pruning needs a single objective")
        return pruner

    def startup(self) -> int:
        """The random trials before a model-based sampler takes over."""
        if self.startup_trials is not None:
            return self.startup_trials
        return min(10, max(2, self.trials // 4))


class TrialOut(BaseModel):
    number: int
    job_id: int | None = Field(description="null until the trial's job is submitted")
    status: JobStatus | TrialOnlyStatus = Field(
        description="the trial job's status; pending before its job exists, pruned when "
        "the pruner stopped it (its job is then cancelled), failed when its job succeeded "
        "without a finite objective"
    )
    params: dict[str, Any]
    values: list[float] | None = Field(
        description="the objectives' values in order, from the job's final metrics; null "
        "unless the trial completed"
    )
    error: str | None = Field(
        description="why the trial failed (an invalid point, its job's error), or why a "
        "pending trial waits (no room in the owner's queue or storage quota)"
    )


class SweepOut(BaseModel):
    id: int
    owner: str
    name: str | None
    status: JobStatus
    spec: dict[str, Any] = Field(description="the sweep spec, startup_trials filled in")
    created_at: UtcDatetime
    finished_at: UtcDatetime | None
    error: str | None
    trials: list[TrialOut]
    best: list[int] = Field(
        description="trial numbers: the single best trial, or the Pareto front with "
        "several objectives; [] until a trial completes"
    )
