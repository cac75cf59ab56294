"""The round loop, written once: the reference runner drives it with replicas in
this process, the Ray driver with replica actors. Each round: the coordinator plans,
the planned replicas step, the coordinator applies their replies; a checkpoint
follows when the schedule says one is due (the final round included)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from workers.training.checkpoint import assemble
from workers.training.coordinator import Coordinator, RoundPlan
from workers.training.replica import ReplicaReply

# Runs the plan's replicas for one round and returns their replies.
StepReplicas = Callable[[RoundPlan], Sequence[ReplicaReply]]
# Every replica's state_dict, rank order (for a checkpoint).
ReplicaStates = Callable[[], Sequence[dict[str, Any]]]


@dataclass(frozen=True)
class RoundDone:
    round: int
    values: dict[str, float]
    uploaded: tuple[int, ...]  # the replicas whose upload this round used
    checkpoint: dict[str, Any] | None  # set when one is due after this round


def run_rounds(
    coordinator: Coordinator,
    step_replicas: StepReplicas,
    replica_states: ReplicaStates,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[RoundDone]:
    """Rounds coordinator.next_round … schedule.rounds - 1; `should_stop` is polled
    before each. Raises Diverged on a NaN/inf loss or parameters; a replica's error
    propagates unchanged (it is never a skip)."""
    schedule = coordinator.spec.schedule
    for round_ in range(coordinator.next_round, schedule.rounds):
        if should_stop():
            return
        plan = coordinator.begin_round(round_)
        values = coordinator.end_round(round_, step_replicas(plan))
        checkpoint = None
        if schedule.checkpoint_due(round_):
            checkpoint = assemble(coordinator, replica_states())
        yield RoundDone(round_, values, coordinator.uploaded, checkpoint)
