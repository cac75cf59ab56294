"""A sweep's search space against the JobSpec: which dotted paths name settable
fields, what a trial's spec is (the base with a point's values written in, then
`resolve`d like any job), and the submit-time check that the base is valid at every
corner of the space (each numeric parameter at its low and high bound, each choice of
each categorical). Problems name the parameter (or the base field) to blame, so the
API can answer 422 before anything is stored.
"""

from __future__ import annotations

import copy
import itertools
import math
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from service.schemas.defaults import DEFAULT_MAX_ATTEMPTS
from service.schemas.jobspec import JobSpec
from service.schemas.metric_names import BASELINES, final_metric_names
from service.schemas.resolve import SpecError, resolve
from service.schemas.resolved import ResolvedSpec
from service.schemas.sweeps import CategoricalParam, FloatParam, IntParam, SweepSpec

# Corners are resolved one by one at submit; beyond this the check would be slow.
MAX_CORNERS = 4096
MAX_PROBLEMS = 20
# Trials are named after their sweep; a parameter may not set the name.
NOT_SEARCHABLE = frozenset({"name"})

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


class SweepSpecError(ValueError):
    """A sweep that cannot run as asked; each problem is (location in the request
    body, message naming the parameter or base field)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


@dataclass(frozen=True)
class CheckedSweep:
    """A sweep spec that passed every check: the form to store (the base as the user
    wrote it, startup_trials filled in) and the resolved spec at every corner."""

    stored: dict[str, Any]
    corners: list[ResolvedSpec]


def check_sweep(
    spec: SweepSpec, *, default_max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> CheckedSweep:
    """Raise SweepSpecError unless every parameter names a JobSpec field of a fitting
    type, the base resolves at every corner, and every objective is a metric of every
    task the space reaches."""
    problems: list[Problem] = []
    for path, param in spec.parameters.items():
        message = _path_problem(path, param)
        if message is not None:
            problems.append((("parameters", path), f"parameters.{path}: {message}"))
    if problems:
        raise SweepSpecError(problems)
    count = math.prod(len(_extremes(p)) for p in spec.parameters.values())
    if count > MAX_CORNERS:
        raise SweepSpecError(
            [
                (
                    ("parameters",),
                    f"parameters: the space has {count} corners; at most {MAX_CORNERS} "
                    "can be checked (fewer parameters or choices)",
                )
            ]
        )
    stored = stored_form(spec)
    corners: list[ResolvedSpec] = []
    seen: set[Loc] = set()
    for corner in _corners(spec):
        try:
            corners.append(
                trial_spec(stored["base"], corner, name=None, max_attempts=default_max_attempts)
            )
        except (ValidationError, SpecError) as exc:
            for loc, message in _blame(exc, corner, spec):
                if loc not in seen and len(problems) < MAX_PROBLEMS:
                    seen.add(loc)
                    problems.append((loc, message))
    if not problems:
        problems = _metric_problems(spec, corners) + _pruning_problems(spec, corners)
    if problems:
        raise SweepSpecError(problems)
    return CheckedSweep(stored=stored, corners=corners)


def stored_form(spec: SweepSpec) -> dict[str, Any]:
    """What the store keeps and the API shows. The base stays as the user wrote it
    (exclude_unset): resolve treats a field left out differently from one given, so
    every trial must see the same base the user sent."""
    return {
        **spec.model_dump(mode="json"),
        "base": spec.base.model_dump(mode="json", exclude_unset=True),
        "startup_trials": spec.startup(),
    }


def trial_spec(
    base: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    name: str | None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> ResolvedSpec:
    """The base with `params` written at their dotted paths, resolved like a job
    submitted alone (pydantic.ValidationError or SpecError if the point is invalid)."""
    data = copy.deepcopy(dict(base))
    for path, value in params.items():
        *sections, leaf = path.split(".")
        node = data
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    if name is not None:
        data["name"] = name[:200]
    return resolve(data, default_max_attempts=max_attempts)


def _path_problem(path: str, param: FloatParam | IntParam | CategoricalParam) -> str | None:
    if path in NOT_SEARCHABLE:
        return "is not searchable (trials are named after their sweep)"
    model: type[BaseModel] = JobSpec
    *sections, leaf = path.split(".")
    for depth, section in enumerate(sections):
        field = model.model_fields.get(section)
        inner = _model_of(field.annotation) if field is not None else None
        if inner is None:
            where = ".".join(sections[: depth + 1])
            return f"{where!r} is not a section of the JobSpec (sections: {_sections(model)})"
        model = inner
    field = model.model_fields.get(leaf)
    if field is None:
        return f"not a JobSpec field (fields here: {', '.join(sorted(model.model_fields))})"
    if _model_of(field.annotation) is not None:
        return f"is a section; name one of its fields ({', '.join(sorted(_fields(field)))})"
    accepted = _scalar_types(field.annotation)
    if isinstance(param, FloatParam) and float not in accepted:
        return f"takes {_describe(accepted)}, not a float range; use type int or categorical"
    if isinstance(param, IntParam) and not accepted & {int, float}:
        return f"takes {_describe(accepted)}, not numbers; use type categorical"
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _fields(field: Any) -> list[str]:
    model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _sections(model: type[BaseModel]) -> str:
    names = [n for n, f in model.model_fields.items() if _model_of(f.annotation) is not None]
    return ", ".join(sorted(names)) or "none"


def _scalar_types(annotation: Any) -> set[type]:
    """The plain types a field accepts (bool apart from int; a Literal's values')."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar_types(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return set().union(*(_scalar_types(arg) for arg in get_args(annotation)))
    if origin is Literal:
        return {type(value) for value in get_args(annotation)}
    if annotation is type(None):
        return set()
    return {annotation} if isinstance(annotation, type) else set()


def _describe(accepted: set[type]) -> str:
    names = {bool: "true/false", int: "integers", float: "numbers", str: "names"}
    return " or ".join(sorted(names.get(t, t.__name__) for t in accepted)) or "nothing"


def _extremes(param: FloatParam | IntParam | CategoricalParam) -> list[Any]:
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    return [param.low, param.high]


def _corners(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    paths = list(spec.parameters)
    for values in itertools.product(*(_extremes(spec.parameters[p]) for p in paths)):
        yield dict(zip(paths, values, strict=True))


def _blame(
    exc: ValidationError | SpecError, corner: Mapping[str, Any], spec: SweepSpec
) -> Iterator[Problem]:
    """Each field problem at `corner`, charged to the parameter that sets the field
    (or one of its sub-fields), else to the base field."""
    if isinstance(exc, SpecError):
        found = exc.problems
    else:
        found = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
    for field, message in found:
        owner = next((p for p in spec.parameters if _sets(p, field, message)), None)
        if owner is not None:
            others = ", ".join(f"{p}={v!r}" for p, v in corner.items() if p != owner)
            where = f"at {owner}={corner[owner]!r}" + (f" with {others}" if others else "")
            yield (("parameters", owner), f"parameters.{owner}: {message} ({where})")
        else:
            at = ", ".join(f"{p}={v!r}" for p, v in corner.items())
            yield (("base", *field.split(".")), f"base.{field}: {message} (at the corner {at})")


def _sets(path: str, field: str, message: str) -> bool:
    """Whether the parameter at `path` is to blame for a problem with `field`: it is
    the field, a part of it, or (a section-level check) named in the message."""
    if field == path or field.startswith(path + "."):
        return True
    return path.startswith(field + ".") and path in message


def _pruning_problems(spec: SweepSpec, corners: list[ResolvedSpec]) -> list[Problem]:
    """A pruner reads a trial's objective at its evaluation rounds before the last:
    with none anywhere in the space it would never prune, silently."""
    if spec.pruner is None or any(c.schedule.eval_every < c.schedule.rounds for c in corners):
        return []
    every, rounds = corners[0].schedule.eval_every, corners[0].schedule.rounds
    return [
        (
            ("pruner",),
            f"pruner: trials evaluate only at their last round (schedule.eval_every "
            f"{every} >= schedule.rounds {rounds}), so nothing could be pruned; set "
            "base.schedule.eval_every below base.schedule.rounds",
        )
    ]


def _metric_problems(spec: SweepSpec, corners: list[ResolvedSpec]) -> list[Problem]:
    problems: list[Problem] = []
    baselines = {baseline: headline for headline, baseline in BASELINES.items()}
    for kind in sorted({c.task.kind for c in corners}):
        names = final_metric_names(kind)
        for i, objective in enumerate(spec.objectives):
            where = ("objectives", i, "metric")
            headline = baselines.get(objective.metric)
            if headline is not None and objective.metric in names:
                # Reported beside the model's figure, but measures the data, not the model.
                problems.append(
                    (
                        where,
                        f"objectives.{i}.metric: {objective.metric!r} is a baseline that no "
                        f"trial's model changes; search on {headline!r}",
                    )
                )
            elif objective.metric not in names:
                problems.append(
                    (
                        where,
                        f"objectives.{i}.metric: {objective.metric!r} is not a metric of "
                        f"{kind} jobs (they report: {', '.join(names)})",
                    )
                )
    return problems
