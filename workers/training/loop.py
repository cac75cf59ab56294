"""The round loop, written once: the reference runner drives it with replicas in
this process, the Ray driver with replica actors. Each round: the coordinator plans,
the planned replicas step, the coordinator applies their replies; a checkpoint
follows when the schedule says one is due (the final round included).

Where the replicas compute elsewhere (the Ray data plane: `RoundExchange.overlaps`),
round k+1 is sent as soon as round k's step is taken, and round k's metric values,
evaluation and record are made while the replicas compute it: on 2 cores the
driver's bookkeeping then no longer runs while both replicas wait. The coordinator
sees the same calls in the same order either way but for `round_values(k)` coming
after `begin_round(k+1)`, which changes nothing it reads (Coordinator.apply_round).
A round after which a checkpoint is due is never overlapped (the replicas' states
must be those between the two rounds), and `should_stop` is polled before a round is
sent: an overlapped round already sent is finished, then the loop ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from workers.training.checkpoint import assemble
from workers.training.coordinator import Coordinator
from workers.training.replica import ReplicaReply
from workers.training.rounds import RoundPlan

# Runs the plan's replicas for one round and returns their replies.
StepReplicas = Callable[[RoundPlan], Sequence[ReplicaReply]]
# Every replica's state_dict, rank order (for a checkpoint).
ReplicaStates = Callable[[], Sequence[dict[str, Any]]]


class RoundExchange(Protocol):
    """How the loop reaches the replicas: `send` starts a round's steps, `receive`
    returns their replies. `overlaps`: the replicas compute between the two while
    the loop goes on (else the steps may run inside `receive`)."""

    @property
    def overlaps(self) -> bool: ...

    def send(self, plan: RoundPlan) -> None: ...

    def receive(self, plan: RoundPlan) -> Sequence[ReplicaReply]: ...


class InSequence:
    """Replicas stepped by a function in `receive` (the reference runner). With
    `overlaps=True` the loop orders its calls as for remote replicas (tests use
    that to hold the overlapped order to the reference trajectory without Ray)."""

    def __init__(self, step_replicas: StepReplicas, *, overlaps: bool = False) -> None:
        self.step_replicas = step_replicas
        self.overlaps = overlaps

    def send(self, plan: RoundPlan) -> None:
        return None

    def receive(self, plan: RoundPlan) -> Sequence[ReplicaReply]:
        return self.step_replicas(plan)


@dataclass(frozen=True)
class RoundDone:
    round: int
    values: dict[str, float]
    uploaded: tuple[int, ...]  # the replicas whose upload this round used
    checkpoint: dict[str, Any] | None  # set when one is due after this round


def run_rounds(
    coordinator: Coordinator,
    exchange: RoundExchange,
    replica_states: ReplicaStates,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[RoundDone]:
    """Rounds coordinator.next_round … schedule.rounds - 1; `should_stop` is polled
    before each is sent. Raises Diverged on a NaN/inf loss or parameters (before the
    next round is sent) or on a metric that overflowed (from round_values, when the
    next round may have been sent: the gang is stopped either way); a replica's error
    propagates unchanged (it is never a skip)."""
    schedule = coordinator.spec.schedule

    def start(round_: int) -> RoundPlan | None:
        if round_ >= schedule.rounds or should_stop():
            return None
        plan = coordinator.begin_round(round_)
        exchange.send(plan)
        return plan

    plan = start(coordinator.next_round)
    while plan is not None:
        round_ = plan.round
        coordinator.apply_round(round_, exchange.receive(plan))
        due = schedule.checkpoint_due(round_)
        following = start(round_ + 1) if exchange.overlaps and not due else None
        values = coordinator.round_values(round_)
        uploaded = coordinator.uploaded
        checkpoint = assemble(coordinator, replica_states()) if due else None
        yield RoundDone(round_, values, uploaded, checkpoint)
        if following is None and (due or not exchange.overlaps):
            following = start(round_ + 1)
        plan = following
