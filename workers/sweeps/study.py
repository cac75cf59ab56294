"""Optuna as a sweep's sampler and pruner, without Optuna's storage: each call
rebuilds an in-memory study from lagtrain's own trial rows (`add_trial`), so the
sweep's state lives only in lagtrain's tables and any controller can continue it.
Optuna's RDB storage must not share lagtrain's database: its tables and its own
`alembic_version` would collide with ours (STACK-NOTES).

Samplers are rebuilt per asked trial with a seed derived from (sweep seed, trial
number): a rebuilt sampler with the sweep's seed alone would ask the same first
point every step. The pruner's per-trial state (successive halving's rungs) is kept
in the trial rows' system_attrs.

A trial's intermediate values reach Optuna keyed by the rounds done (a metric
record's round + 1), Optuna's "step": the pruners' settings count rounds done, so
`min_rounds` 20 puts the first rung at the evaluation after 20 rounds and
`warmup_rounds` 20 allows pruning there (MedianPruner skips step < n_warmup_steps).
Keyed by the record's 0-based round, both were one evaluation late: with 40 rounds
evaluated every 20 and `min_rounds` 20, nothing was ever pruned.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, create_trial

from service.schemas.sweeps import CategoricalParam, FloatParam, SweepSpec
from service.store.models import TrialState
from service.store.sweep_steps import TrialView

optuna.logging.set_verbosity(optuna.logging.ERROR)

_STATE = {
    TrialState.PENDING: optuna.trial.TrialState.RUNNING,
    TrialState.RUNNING: optuna.trial.TrialState.RUNNING,
    TrialState.COMPLETE: optuna.trial.TrialState.COMPLETE,
    TrialState.PRUNED: optuna.trial.TrialState.PRUNED,
    TrialState.FAILED: optuna.trial.TrialState.FAIL,
    TrialState.CANCELLED: optuna.trial.TrialState.FAIL,
}


@dataclass(frozen=True)
class PruneDecision:
    prune: list[int]  # trial numbers to stop
    system_attrs: dict[int, dict[str, Any]]  # trials whose pruner state changed


def distributions(spec: SweepSpec) -> dict[str, BaseDistribution]:
    found: dict[str, BaseDistribution] = {}
    for path, param in spec.parameters.items():
        if isinstance(param, FloatParam):
            found[path] = FloatDistribution(param.low, param.high, log=param.log)
        elif isinstance(param, CategoricalParam):
            found[path] = CategoricalDistribution(param.choices)
        else:
            found[path] = IntDistribution(param.low, param.high, log=param.log, step=param.step)
    return found


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def _sampler(spec: SweepSpec, number: int) -> BaseSampler:
    seed = trial_seed(spec.seed, number)
    startup = spec.startup()
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if spec.sampler == "tpe":
        # constant_liar: with trials in parallel, TPE treats running trials as poor
        # results so that parallel asks spread out instead of repeating one point.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True
        )
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(spec: SweepSpec) -> BasePruner | None:
    pruner = spec.pruner
    if pruner is None:
        return None
    if pruner.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_rounds
        )
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=pruner.min_rounds if pruner.min_rounds is not None else "auto",
        reduction_factor=pruner.reduction_factor,
        min_early_stopping_rate=pruner.min_early_stopping_rate,
    )


@contextmanager
def _quiet() -> Iterator[None]:
    # multivariate TPE, constant_liar and some GP paths are marked experimental.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _frozen(trial: TrialView, dists: dict[str, BaseDistribution]) -> FrozenTrial:
    state = _STATE[trial.state]
    return create_trial(
        state=state,
        values=trial.values if state == optuna.trial.TrialState.COMPLETE else None,
        params=dict(trial.params),
        distributions={p: dists[p] for p in trial.params},
        system_attrs=dict(trial.system_attrs),
        intermediate_values={round_ + 1: v for round_, v in trial.intermediate.items()},
    )


def build(
    spec: SweepSpec, trials: Sequence[TrialView], *, sampler: BaseSampler | None = None
) -> optuna.Study:
    """An in-memory study holding the sweep's trials, in number order (so Optuna's
    numbers are the trials' numbers)."""
    dists = distributions(spec)
    with _quiet():
        study = optuna.create_study(
            directions=[o.direction for o in spec.objectives],
            sampler=sampler or optuna.samplers.RandomSampler(seed=spec.seed),
            pruner=_pruner(spec) or optuna.pruners.NopPruner(),
        )
        for trial in sorted(trials, key=lambda t: t.number):
            study.add_trial(_frozen(trial, dists))
    return study


def ask(
    spec: SweepSpec,
    trials: Sequence[TrialView],
    count: int,
    *,
    go_on: Callable[[], bool] = lambda: True,
) -> list[dict[str, Any]]:
    """The next `count` points, each asked with the earlier ones in the study as
    running trials (so parallel asks see each other). `go_on()` is called after each
    point but the last: False stops asking (fewer points; the caller asks the rest
    later), an exception ends the ask."""
    dists = distributions(spec)
    asked: list[TrialView] = []
    points: list[dict[str, Any]] = []
    for index in range(count):
        if index and not go_on():
            break
        number = len(trials) + len(asked)
        with _quiet():
            study = build(spec, [*trials, *asked], sampler=_sampler(spec, number))
            trial = study.ask(dists)
        assert trial.number == number, (trial.number, number)
        point = {
            path: _snapped(_plain(trial.params[path]), dists[path]) for path in spec.parameters
        }
        points.append(point)
        asked.append(
            TrialView(
                number=number,
                state=TrialState.PENDING,
                params=point,
                values=None,
                intermediate={},
                system_attrs={},
                job_active=True,
            )
        )
    return points


def _snapped(value: Any, dist: BaseDistribution) -> Any:
    """A float at a bound of its range as the bound itself: a log-scale sampler that
    picks a corner gives exp(log(0.1)) = 0.10000000000000002, which a trial's spec
    then carried (lr: 0.00010000000000000009)."""
    if isinstance(dist, FloatDistribution) and isinstance(value, float):
        for bound in (dist.low, dist.high):
            if math.isclose(value, bound, rel_tol=1e-12):
                return bound
    return value


def _plain(value: Any) -> Any:
    """A JSON-ready value (numpy scalars from samplers become Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value


def prune(spec: SweepSpec, trials: Sequence[TrialView]) -> PruneDecision:
    """Ask the pruner about every running trial that has intermediate values, before
    its last round's: a trial whose last round is recorded has done its work, and its
    job may yet succeed after the cancel (its trial stayed pruned, without values)."""
    if spec.pruner is None:
        return PruneDecision(prune=[], system_attrs={})
    study = build(spec, trials)
    stop: list[int] = []
    changed: dict[int, dict[str, Any]] = {}
    by_number = {t.number: t for t in trials}
    for frozen in study.get_trials(deepcopy=False):
        view = by_number[frozen.number]
        if view.state is not TrialState.RUNNING or not view.intermediate:
            continue
        if view.rounds is not None and max(view.intermediate) + 1 >= view.rounds:
            continue
        with _quiet():
            if study.pruner.prune(study, frozen):
                stop.append(frozen.number)
        attrs = study.get_trials(deepcopy=False)[frozen.number].system_attrs
        if attrs != view.system_attrs:
            changed[frozen.number] = dict(attrs)
    return PruneDecision(prune=stop, system_attrs=changed)
