"""Whether a sweep's pruner could ever prune, checked at submit. A pruner reads a
trial's first objective in the records of its evaluation rounds (every
`eval_every`-th and the last), never acts on the last round's (the trial's work is
done then: workers.sweeps.study.prune), and counts a trial's rounds done. A pruner
that could act at no evaluation anywhere in the space would leave every trial to
run to its end, silently: such a sweep is refused, with the setting to blame.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.schemas.metric_names import SUMMARY_METRICS
from service.schemas.resolved import ResolvedSpec
from service.schemas.sweep_checks import Problem
from service.schemas.sweeps import IntParam, MedianPruner, SweepSpec

NEVER = "so nothing could be pruned"


def pruning_problems(spec: SweepSpec, corners: Sequence[ResolvedSpec]) -> list[Problem]:
    """Refused: a first objective that only the finished job's summary has; trials
    that evaluate only at their last round; a median pruner's `warmup_rounds`, or
    successive halving's first rung (`min_rounds` x reduction_factor ^
    min_early_stopping_rate), past the last evaluation before the last round. Judged
    at the space's most favourable corner (`corners` are the resolved specs at every
    corner), so that no sweep that could prune somewhere is refused."""
    pruner = spec.pruner
    if pruner is None:
        return []
    metric = spec.objectives[0].metric
    if metric in SUMMARY_METRICS:
        return [
            (
                ("pruner",),
                f"pruner: objectives.0.metric {metric!r} is a figure of a finished job's "
                f"summary, in no round's record, {NEVER}; search on a metric the rounds "
                "record, or drop the pruner",
            )
        ]
    latest = _latest_evaluation(spec, corners)
    if latest is None:
        every, rounds = corners[0].schedule.eval_every, corners[0].schedule.rounds
        return [
            (
                ("pruner",),
                f"pruner: trials evaluate only at their last round (schedule.eval_every "
                f"{every} >= schedule.rounds {rounds}), {NEVER}; set "
                "base.schedule.eval_every below base.schedule.rounds",
            )
        ]
    done, schedule = latest
    past = (
        f"past the last evaluation a pruner could act on, after {done} rounds ({schedule}; "
        f"a trial's last round is never pruned), {NEVER}"
    )
    if isinstance(pruner, MedianPruner):
        if pruner.warmup_rounds <= done:
            return []
        return [
            (
                ("pruner", "warmup_rounds"),
                f"pruner.warmup_rounds: {pruner.warmup_rounds} is {past}; set it to {done} or less",
            )
        ]
    if pruner.min_rounds is None:  # estimated from the finished trials' rounds
        return []
    factor = pruner.reduction_factor**pruner.min_early_stopping_rate
    first_rung = pruner.min_rounds * factor
    if first_rung <= done:
        return []
    if factor == 1:
        at, advice = f"{pruner.min_rounds} is", f"set it to {done} or less"
    else:
        at = (
            f"the first rung, after {first_rung} rounds (min_rounds {pruner.min_rounds} x "
            f"reduction_factor {pruner.reduction_factor} ^ min_early_stopping_rate "
            f"{pruner.min_early_stopping_rate}), is"
        )
        advice = (
            f"set it to {done // factor} or less"
            if done // factor >= 1
            else "lower min_early_stopping_rate"
        )
    return [(("pruner", "min_rounds"), f"pruner.min_rounds: {at} {past}; {advice}")]


def _latest_evaluation(spec: SweepSpec, corners: Sequence[ResolvedSpec]) -> tuple[int, str] | None:
    """(rounds done, the schedule that gives them) at the latest evaluation before a
    trial's last round anywhere in the space; None if no trial has one. A trial
    evaluates after every eval_every-th round, so with `rounds` it is the largest
    multiple of eval_every below rounds. That grows with rounds, so the corners find
    its largest, except across a searched eval_every range (rounds 40: 20 gives 20,
    13 gives 39): there it is taken as rounds - 1, its bound."""
    ranged_every = isinstance(spec.parameters.get("schedule.eval_every"), IntParam)
    latest: tuple[int, str] | None = None
    for corner in corners:
        every, rounds = corner.schedule.eval_every, corner.schedule.rounds
        if every >= rounds:
            continue
        if ranged_every:
            done = rounds - 1
            schedule = f"schedule.rounds {rounds}; eval_every is searched: a bound"
        else:
            done = (rounds - 1) // every * every
            schedule = f"schedule.rounds {rounds}, schedule.eval_every {every}"
        if latest is None or done > latest[0]:
            latest = (done, schedule)
    if latest is not None and {"schedule.rounds", "schedule.eval_every"} & set(spec.parameters):
        latest = (latest[0], f"at best in this space: {latest[1]}")
    return latest
