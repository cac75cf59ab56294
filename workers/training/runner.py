"""The in-process reference runner: M replicas called one after another in this
process. All training logic lives in Replica and Coordinator, so the Ray path,
which drives the same objects remotely, reproduces this trajectory exactly.

A checkpoint (the dict given to `checkpoint_every_cb`, accepted as `resume`)
holds plain tensors, ints and strings, so `torch.load(weights_only=True)` reads it:

    {"format": CHECKPOINT_FORMAT, "next_round": int,
     "model": {name: tensor},                 # the coordinator's θ as a state dict
     "coordinator": Coordinator.state_dict(),
     "replicas": [Replica.state_dict() for rank 0..M-1]}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from service.schemas.jobspec import JobSpec
from workers.training.coordinator import Coordinator, Diverged
from workers.training.flat import to_numpy
from workers.training.replica import Replica
from workers.training.tasks.base import DatasetResolver
from workers.training.tasks.registry import build_task

__all__ = ["CHECKPOINT_FORMAT", "Diverged", "RunResult", "assemble_checkpoint", "run_reference"]

CHECKPOINT_FORMAT = "lagtrain-checkpoint-1"
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


def assemble_checkpoint(
    coordinator_state: dict[str, Any],
    model_state: dict[str, torch.Tensor],
    replica_states: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "next_round": int(coordinator_state["next_round"]),
        "model": model_state,
        "coordinator": coordinator_state,
        "replicas": list(replica_states),
    }


def run_reference(
    spec: JobSpec,
    *,
    on_record: RecordCallback,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    resolve_dataset: DatasetResolver | None = None,
    resume: dict[str, Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_every_cb: CheckpointCallback | None = None,
    per_replica_metrics: bool = False,
) -> RunResult:
    """Run rounds `resume["next_round"]` (or 0) … schedule.rounds - 1, calling
    `on_record(round, values)` after each and `checkpoint_every_cb(round, checkpoint)`
    after every round with (round + 1) % checkpoint_every == 0. `should_stop` is
    polled before each round. Raises Diverged on a NaN/inf loss or parameters;
    any replica error propagates unchanged."""
    task = build_task(spec, dtype=dtype, device=device, resolve_dataset=resolve_dataset)
    coordinator = Coordinator(
        spec, dtype=dtype, device=device, task=task, per_replica_metrics=per_replica_metrics
    )
    replicas = [
        Replica(spec, rank, dtype=dtype, device=device, task=task)
        for rank in range(coordinator.workers)
    ]
    if resume is not None:
        load_checkpoint(resume, coordinator, replicas)

    def checkpoint() -> dict[str, Any]:
        return assemble_checkpoint(
            coordinator.state_dict(),
            coordinator.model_state_dict(),
            [r.state_dict() for r in replicas],
        )

    values: dict[str, float] = {}
    stopped = False
    for round_ in range(coordinator.next_round, spec.schedule.rounds):
        if should_stop is not None and should_stop():
            stopped = True
            break
        plan = coordinator.begin_round(round_)
        replies = [replicas[rank].step(round_, plan.params, plan.rhs) for rank in plan.ranks]
        values = coordinator.end_round(round_, replies)
        on_record(round_, values)
        if checkpoint_every_cb is not None and (round_ + 1) % spec.schedule.checkpoint_every == 0:
            checkpoint_every_cb(round_, checkpoint())
    return RunResult(
        next_round=coordinator.next_round,
        stopped=stopped,
        last_values=values,
        uploads_per_worker=list(coordinator.uploads_per_worker),
        params=to_numpy(coordinator.params),
        checkpoint=checkpoint(),
    )


def load_checkpoint(
    checkpoint: dict[str, Any], coordinator: Coordinator, replicas: Sequence[Replica]
) -> None:
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint")
    states = checkpoint["replicas"]
    if len(states) != len(replicas):
        raise ValueError(f"checkpoint has {len(states)} replicas, the job {len(replicas)}")
    coordinator.load_state_dict(checkpoint["coordinator"])
    for replica, state in zip(replicas, states, strict=True):
        replica.load_state_dict(state)
