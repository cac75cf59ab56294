"""The checks of a sweep that need only its text, not a validated SweepSpec: whether a
parameter's path names a settable JobSpec field, and whether an objective is a metric
of the tasks the space reaches. service.schemas.sweep_space runs them on a valid
spec; service.schemas.sweeps runs them beside the form's own errors when the form is
invalid, so that one 422 names every mistake it can (a path typo used to surface
only once an empty range elsewhere was fixed).
"""

from __future__ import annotations

import itertools
import re
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

from pydantic import BaseModel

from service.schemas.field_hints import model_of, nearest
from service.schemas.jobspec import JobSpec, TaskKind
from service.schemas.metric_names import BASELINES, final_metric_names

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]
RangeType = Literal["float", "int", "categorical"]
# The sweep form's bounds (service.schemas.sweeps), here so that the checks of the
# raw text look only at what the form would take.
MAX_PARAMETERS = 16
MAX_OBJECTIVES = 4
MAX_PATH_LENGTH = 200
MAX_METRIC_LENGTH = 100
PARAM_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")
METRIC_NAME = re.compile(r"^[A-Za-z0-9_]+$")
# The most problems one answer lists.
MAX_PROBLEMS = 20
# Trials are named after their sweep; a parameter may not set the name.
NOT_SEARCHABLE = frozenset({"name"})
TASK_KINDS: frozenset[str] = frozenset(get_args(TaskKind))


def path_problem(path: str, range_type: RangeType | None) -> Problem | None:
    """Why `path` cannot be searched with a range of `range_type` (None: a range whose
    type is missing or unknown, so only whether the path is a field), or None."""
    message = _path_message(path, range_type)
    return None if message is None else (("parameters", path), f"parameters.{path}: {message}")


def reachable_kinds(base: Mapping[str, Any], parameters: Mapping[str, Any]) -> list[TaskKind]:
    """The task kinds trials can have: the base's, or each valid choice of a
    `task.kind` parameter (raw JSON: invalid values are left to the form's errors)."""
    task = base.get("task")
    kinds: list[object] = [task.get("kind")] if isinstance(task, Mapping) else []
    searched = parameters.get("task.kind")
    if isinstance(searched, Mapping) and isinstance(searched.get("choices"), list):
        kinds = searched["choices"]
    # Raw JSON: anything may be there, a dict or a list too (unhashable).
    return sorted({cast(TaskKind, k) for k in kinds if isinstance(k, str) and k in TASK_KINDS})


def metric_problems(metrics: Iterable[tuple[int, str]], kinds: Iterable[TaskKind]) -> list[Problem]:
    """Each objective (its index, its metric) that a task in `kinds` does not report,
    or reports as a baseline that no model changes."""
    metrics = list(metrics)
    problems: list[Problem] = []
    baselines = {baseline: headline for headline, baseline in BASELINES.items()}
    for kind in kinds:
        names = final_metric_names(kind)
        for i, metric in metrics:
            where: Loc = ("objectives", i, "metric")
            headline = baselines.get(metric)
            if headline is not None and metric in names:
                # Reported beside the model's figure, but measures the data, not the model.
                problems.append(
                    (
                        where,
                        f"objectives.{i}.metric: {metric!r} is a baseline that no "
                        f"trial's model changes; search on {headline!r}",
                    )
                )
            elif metric not in names:
                close = nearest(metric, names)
                guess = f"did you mean {close!r}? " if close else ""
                problems.append(
                    (
                        where,
                        f"objectives.{i}.metric: {metric!r} is not a metric of "
                        f"{kind} jobs ({guess}they report: {', '.join(names)})",
                    )
                )
    return problems


def text_problems(data: Mapping[str, Any]) -> list[Problem]:
    """What the paths and objectives of a sweep's raw JSON get wrong, where the form
    takes them (a path or metric the form refuses is its error, not two): run when
    the form is invalid, so that these are reported with its errors."""
    parameters = data.get("parameters")
    parameters = parameters if isinstance(parameters, Mapping) else {}
    problems = []
    for path, searched in itertools.islice(parameters.items(), MAX_PARAMETERS):
        if not (isinstance(path, str) and _takes(PARAM_PATH, MAX_PATH_LENGTH, path)):
            continue
        given = searched.get("type") if isinstance(searched, Mapping) else None
        range_type = given if given in ("float", "int", "categorical") else None
        if (problem := path_problem(path, range_type)) is not None:
            problems.append(problem)
    objectives = data.get("objectives")
    metrics = [
        (i, o["metric"])
        for i, o in enumerate(objectives[:MAX_OBJECTIVES] if isinstance(objectives, list) else [])
        if isinstance(o, Mapping) and _takes(METRIC_NAME, MAX_METRIC_LENGTH, o.get("metric"))
    ]
    base = data.get("base")
    kinds = reachable_kinds(base, parameters) if isinstance(base, Mapping) else []
    return (problems + metric_problems(metrics, kinds))[:MAX_PROBLEMS]


def _takes(pattern: re.Pattern[str], longest: int, value: object) -> bool:
    return isinstance(value, str) and len(value) <= longest and bool(pattern.match(value))


def _path_message(path: str, range_type: RangeType | None) -> str | None:
    if path in NOT_SEARCHABLE:
        return "is not searchable (trials are named after their sweep)"
    model: type[BaseModel] = JobSpec
    *sections, leaf = path.split(".")
    for depth, section in enumerate(sections):
        field = model.model_fields.get(section)
        inner = model_of(field.annotation) if field is not None else None
        if inner is None:
            where = ".".join(sections[: depth + 1])
            return f"{where!r} is not a section of the JobSpec (sections: {_sections(model)})"
        model = inner
    field = model.model_fields.get(leaf)
    if field is None:
        return f"not a JobSpec field (fields here: {', '.join(sorted(model.model_fields))})"
    if model_of(field.annotation) is not None:
        return f"is a section; name one of its fields ({', '.join(sorted(_fields(field)))})"
    accepted = _scalar_types(field.annotation)
    if range_type == "float" and float not in accepted:
        return f"takes {_describe(accepted)}, not a float range; use type int or categorical"
    if range_type == "int" and not accepted & {int, float}:
        return f"takes {_describe(accepted)}, not numbers; use type categorical"
    return None


def _fields(field: Any) -> list[str]:
    model = model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _sections(model: type[BaseModel]) -> str:
    names = [n for n, f in model.model_fields.items() if model_of(f.annotation) is not None]
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
