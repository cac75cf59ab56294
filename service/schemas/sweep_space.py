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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service.schemas.common import error_message
from service.schemas.defaults import DEFAULT_MAX_ATTEMPTS, READ_ONLY_BY
from service.schemas.resolve import SpecError, resolve
from service.schemas.resolved import ResolvedSpec
from service.schemas.sweep_checks import (
    MAX_PROBLEMS,
    Loc,
    Problem,
    metric_problems,
    path_problem,
    reachable_kinds,
)
from service.schemas.sweep_pruning import pruning_problems
from service.schemas.sweeps import CategoricalParam, FloatParam, IntParam, Parameter, SweepSpec

# Corners are resolved one by one at submit; beyond this the check would be slow.
MAX_CORNERS = 4096


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
    type, the base resolves at every corner, every objective is a metric of every
    task the space reaches, and a pruner could prune somewhere in the space."""
    problems: list[Problem] = []
    searchable: dict[str, Parameter] = {}  # the parameters whose corners can be checked
    for path, param in spec.parameters.items():
        problem = path_problem(path, param.type)
        if problem is None:
            searchable[path] = param
        else:
            problems.append(problem)
    problems += _inert_problems(spec)
    stored = stored_form(spec)
    # Which metrics the trials report depends only on their task kinds: checked beside
    # the paths and corners, so that one answer names every mistake it can.
    raw_parameters = {path: p.model_dump(mode="json") for path, p in spec.parameters.items()}
    kinds = reachable_kinds(stored["base"], raw_parameters)
    metric_mistakes = metric_problems(enumerate(o.metric for o in spec.objectives), kinds)
    count = math.prod(len(_extremes(p)) for p in searchable.values())
    if count > MAX_CORNERS:
        too_many = (
            ("parameters",),
            f"parameters: the space has {count} corners; at most {MAX_CORNERS} "
            "can be checked (fewer parameters or choices)",
        )
        raise SweepSpecError([*problems, too_many, *metric_mistakes][:MAX_PROBLEMS])
    corners: list[ResolvedSpec] = []
    seen: set[Loc] = set()
    for corner in _corners(searchable):
        try:
            corners.append(
                trial_spec(stored["base"], corner, name=None, max_attempts=default_max_attempts)
            )
        except (ValidationError, SpecError) as exc:
            for loc, message in _blame(exc, corner, searchable):
                if loc not in seen and len(problems) < MAX_PROBLEMS:
                    seen.add(loc)
                    problems.append((loc, message))
    if not problems:
        problems = pruning_problems(spec, corners)
    if problems or metric_mistakes:
        raise SweepSpecError((problems + metric_mistakes)[:MAX_PROBLEMS])
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


def _extremes(param: FloatParam | IntParam | CategoricalParam) -> list[Any]:
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    return [param.low, param.high]


def _corners(parameters: Mapping[str, Parameter]) -> Iterator[dict[str, Any]]:
    paths = list(parameters)
    for values in itertools.product(*(_extremes(parameters[p]) for p in paths)):
        yield dict(zip(paths, values, strict=True))


def _blame(
    exc: ValidationError | SpecError, corner: Mapping[str, Any], parameters: Iterable[str]
) -> Iterator[Problem]:
    """Each field problem at `corner`, charged to the parameter that sets the field
    (or one of its sub-fields), else to the base field."""
    if isinstance(exc, SpecError):
        found = exc.problems
    else:
        found = [(".".join(str(p) for p in e["loc"]), error_message(e)) for e in exc.errors()]
    for field, message in found:
        owner = next((p for p in parameters if _sets(p, field, message)), None)
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


def _inert_problems(spec: SweepSpec) -> list[Problem]:
    """A searched rule setting that no trial's rule reads (`aggregation.xi` with the
    default dense strategy) would spend the budget on points that all train alike."""
    searched = spec.parameters.get("aggregation.strategy")
    strategies = sorted(
        {str(c) for c in searched.choices}
        if isinstance(searched, CategoricalParam)
        else {spec.base.aggregation.strategy}
    )
    problems: list[Problem] = []
    for path in spec.parameters:
        section, _, knob = path.partition(".")
        readers = READ_ONLY_BY.get(knob) if section == "aggregation" else None
        if readers is not None and not readers.intersection(strategies):
            problems.append(
                (
                    ("parameters", path),
                    f"parameters.{path}: no trial would read it: aggregation.strategy is "
                    f"{' or '.join(strategies)} in this space, and {knob} is read by "
                    f"{', '.join(sorted(readers))} only; set base.aggregation.strategy "
                    "(or search it)",
                )
            )
    return problems
