"""A sweep trial's side of its job: the result a finished job gives its trial (the
objective values from its final metrics, or why it has none), the sweep's best trials
among those results, and the intermediate values of the first objective that the
pruner reads. Used by a controller's step and by a sweep's cancel."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.schemas.resolved import ResolvedSchedule
from service.store.models import Job, JobStatus, Metric, SweepTrial, TrialState


def objective_metrics(sweep_spec: Mapping[str, Any]) -> list[str]:
    return [str(o["metric"]) for o in sweep_spec["objectives"]]


def record_result(
    trial: SweepTrial, job: Job | None, metrics: Sequence[str], now: datetime
) -> bool:
    """If the running trial's job has finished, give the trial its result and return
    True: succeeded -> complete with the objective values (failed if one is missing or
    not finite); failed -> failed with the job's error; cancelled -> cancelled. A trial
    whose job is gone (its owner deleted) fails."""
    if trial.state != TrialState.RUNNING.value:
        return False
    if job is None:
        trial.state, trial.error = TrialState.FAILED.value, "the trial's job no longer exists"
    elif job.status == JobStatus.SUCCEEDED.value:
        found = {m: _metric(job.summary or {}, m) for m in metrics}
        values = [v for v in found.values() if v is not None]
        if len(values) < len(metrics):
            missing = ", ".join(m for m, v in found.items() if v is None)
            trial.state = TrialState.FAILED.value
            trial.error = f"the job's final metrics have no finite {missing}"
        else:
            trial.state, trial.values = TrialState.COMPLETE.value, values
    elif job.status == JobStatus.FAILED.value:
        trial.state, trial.error = TrialState.FAILED.value, job.error
    elif job.status == JobStatus.CANCELLED.value:
        trial.state, trial.error = TrialState.CANCELLED.value, "the trial's job was cancelled"
    else:
        return False
    trial.finished_at = now
    return True


def best_trials(sweep_spec: Mapping[str, Any], trials: Iterable[SweepTrial]) -> list[int]:
    """sweeps.best: the best completed trial's number (the lowest of equals), or with
    several objectives the numbers of the Pareto front (no other completed trial is at
    least as good in every objective and better in one; equal trials are both on it);
    [] before a trial completes. The one rule, for every writer of sweeps.best (a
    controller's step, a cancel that ends the sweep); Optuna's own best_trial(s) give
    the same (tests/sweeps/test_best_trials.py)."""
    signs = [1.0 if o["direction"] == "minimize" else -1.0 for o in sweep_spec["objectives"]]
    costs = {  # every objective as one to minimise
        t.number: tuple(sign * v for sign, v in zip(signs, t.values, strict=True))
        for t in trials
        if t.state == TrialState.COMPLETE.value and t.values is not None
    }
    # In lexicographic order a trial comes after every trial that dominates it, and
    # a dominated trial's dominator is dominated by (or is) one already on the front:
    # comparing with the front alone suffices, not with every trial (up to 1000).
    front: list[int] = []
    for number in sorted(costs, key=lambda n: (costs[n], n)):
        if not any(_dominates(costs[f], costs[number]) for f in front):
            front.append(number)
    return front[:1] if len(signs) == 1 else sorted(front)


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def _metric(summary: Mapping[str, Any], name: str) -> float | None:
    """The objective's value: the metric in the job's final metrics, else a figure of
    the summary itself (uploads_saved_fraction, bytes_saved_fraction); None if absent
    or not finite (a job that finished before a figure existed)."""
    final = summary.get("final_metrics") or {}
    value = final.get(name, summary.get(name))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def read_intermediate(*, session: Session, trial: SweepTrial, job: Job, metric: str) -> None:
    """Add the job's newest values of `metric` at its evaluation rounds (every
    eval_every-th and the last; a round's value sits in the record of that round) to
    trial.intermediate {round: value}, from the records after trial.metric_seq."""
    # The job's stored spec is resolved: its schedule, read as such, invents nothing.
    schedule = ResolvedSchedule.model_validate(job.spec["schedule"])
    every, rounds = schedule.eval_every, schedule.rounds
    rows = session.execute(
        select(Metric.seq, Metric.round, Metric.values)
        .where(
            Metric.job_id == job.id,
            Metric.seq > trial.metric_seq,
            # ResolvedSchedule.eval_due, in SQL: only those records are read.
            or_((Metric.round + 1) % every == 0, Metric.round == rounds - 1),
        )
        .order_by(Metric.seq)
    ).all()
    if not rows:
        return
    values = dict(trial.intermediate)
    for _seq, round_, record in rows:
        value = (record or {}).get(metric)
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[str(round_)] = float(value)
    # A new dict, so the JSON column sees the change.
    trial.intermediate = values
    trial.metric_seq = int(rows[-1][0])
