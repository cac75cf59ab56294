"""The in-process reference runner: M replicas called one after another in this
process. All training logic lives in Replica, Coordinator and the shared round loop,
so the Ray path, which drives the same objects remotely, reproduces this trajectory
exactly. Checkpoints: workers.training.checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from service.schemas.resolved import ResolvedSpec
from workers.aggregation.rule import AggregationRule
from workers.training.checkpoint import assemble, restore
from workers.training.coordinator import Coordinator
from workers.training.flat import to_numpy
from workers.training.loop import InSequence, run_rounds
from workers.training.precision import storage_dtype
from workers.training.replica import Replica
from workers.training.rounds import Diverged
from workers.training.tasks.base import DatasetResolver
from workers.training.tasks.registry import build_task

__all__ = ["Diverged", "RunResult", "run_reference"]

RecordCallback = Callable[[int, dict[str, float]], None]
CheckpointCallback = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class RunResult:
    next_round: int  # rounds completed in total (across resumes)
    stopped: bool  # should_stop() ended the run early
    last_values: dict[str, float]
    uploads_per_worker: list[int]
    params: np.ndarray
    checkpoint: dict[str, Any]  # the state after the last completed round


def run_reference(
    spec: ResolvedSpec,
    *,
    on_record: RecordCallback,
    dtype: torch.dtype | None = None,
    device: str = "cpu",
    resolve_dataset: DatasetResolver | None = None,
    resume: dict[str, Any] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_checkpoint: CheckpointCallback | None = None,
    per_replica_metrics: bool = False,
    rule: AggregationRule | None = None,
) -> RunResult:
    """Run rounds `resume["next_round"]` (or 0) … schedule.rounds - 1, calling
    `on_record(round, values)` after each and `on_checkpoint(round, checkpoint)`
    whenever a checkpoint is due (ResolvedSchedule.checkpoint_due). `rule` replaces
    the registry's rule for `aggregation.strategy` (tests of new rules)."""
    dtype = dtype or storage_dtype(spec)
    task = build_task(spec, dtype=dtype, device=device, resolve_dataset=resolve_dataset)
    coordinator = Coordinator(
        spec,
        dtype=dtype,
        device=device,
        task=task,
        rule=rule,
        per_replica_metrics=per_replica_metrics,
    )
    replicas = [
        Replica(spec, rank, dtype=dtype, device=device, task=task, rule=rule)
        for rank in range(coordinator.workers)
    ]
    if resume is not None:

        def load(states: list[dict[str, Any]]) -> None:
            for replica, state in zip(replicas, states, strict=True):
                replica.load_state_dict(state)

        restore(resume, coordinator, load)

    values: dict[str, float] = {}
    for done in run_rounds(
        coordinator,
        InSequence(
            lambda plan: [replicas[r].step(plan.round, plan.params, plan.rhs) for r in plan.ranks]
        ),
        lambda: [r.state_dict() for r in replicas],
        should_stop=should_stop,
    ):
        values = done.values
        on_record(done.round, values)
        if done.checkpoint is not None and on_checkpoint is not None:
            on_checkpoint(done.round, done.checkpoint)
    return RunResult(
        next_round=coordinator.next_round,
        stopped=coordinator.next_round < spec.schedule.rounds,
        last_values=values,
        uploads_per_worker=list(coordinator.uploads_per_worker),
        params=to_numpy(coordinator.params),
        checkpoint=assemble(coordinator, [r.state_dict() for r in replicas]),
    )
