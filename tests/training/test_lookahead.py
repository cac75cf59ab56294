"""A replica's lookahead: the gradient a round needs whatever its θ (LASG-WK2's and
minibatch LAQ's anchor gradient) is evaluated before θ arrives, as the Ray path does
between rounds (workers.round_exchange.serve_rounds). It must change no number, leave
the round itself one evaluation, and never be evaluated for nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch

from tests.training.test_runner import CHECKPOINT_CASES, collect, without_timing
from workers.training.coordinator import Coordinator
from workers.training.loop import InSequence, run_rounds
from workers.training.replica import Replica, ReplicaReply
from workers.training.rounds import RoundPlan

F64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LAZY_WITH_ANCHOR = ["cada2-minibatch", "laq-minibatch", "gru-dropout-lasg"]
WITHOUT_ANCHOR = ["lag_wk-momentum", "laq-full-batch", "lag_ps"]


class CountingReplica(Replica):
    """Counts model evaluations, and those made inside `step` (θ already there)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.evaluations = 0
        self.in_step: list[int] = []
        self._stepping = False

    def _evaluate(self, params: torch.Tensor, index: int) -> tuple[float, torch.Tensor]:
        self.evaluations += 1
        if self._stepping:
            self.in_step[-1] += 1
        return super()._evaluate(params, index)

    def step(self, round_: int, params: Any, rhs: float) -> ReplicaReply:
        self._stepping = True
        self.in_step.append(0)
        try:
            return super().step(round_, params, rhs)
        finally:
            self._stepping = False


def run_with_lookahead(case: str) -> tuple[list[dict[str, float]], list[CountingReplica]]:
    """The reference loop, each replica prefetching the next round after its step (as
    serve_rounds does; Replica.prefetch computes nothing past the last round); its
    records are asserted equal to the plain reference runner's."""
    spec = CHECKPOINT_CASES[case]
    coordinator = Coordinator(spec, dtype=F64)
    replicas = [CountingReplica(spec, rank, dtype=F64) for rank in range(coordinator.workers)]

    def step(plan: RoundPlan) -> Sequence[ReplicaReply]:
        replies = [replicas[r].step(plan.round, plan.params, plan.rhs) for r in plan.ranks]
        for rank in plan.ranks:
            replicas[rank].prefetch(plan.round + 1)
        return replies

    records = [
        done.values
        for done in run_rounds(
            coordinator, InSequence(step), lambda: [r.state_dict() for r in replicas]
        )
    ]
    reference, _ = collect(spec, dtype=F64)
    assert without_timing(records) == without_timing(reference)
    return records, replicas


@pytest.mark.parametrize("case", LAZY_WITH_ANCHOR)
def test_the_lookahead_changes_no_number_and_halves_the_work_after_theta(case: str) -> None:
    records, replicas = run_with_lookahead(case)
    evals = sum(int(r["grad_evals"]) for r in records)
    fresh = sum(int(r["downloads"]) for r in records)  # one evaluation at θᵏ per call
    anchors = evals - fresh
    assert anchors > 0  # the rule did test against its anchor
    # Every anchor gradient was computed ahead, none for nothing …
    assert sum(r.evaluations_ahead for r in replicas) == anchors
    assert sum(r.evaluations for r in replicas) == evals
    # … so once θ was there, each round evaluated the model once.
    assert all(count == 1 for r in replicas for count in r.in_step)


@pytest.mark.parametrize("case", WITHOUT_ANCHOR)
def test_rules_without_an_anchor_prefetch_nothing(case: str) -> None:
    records, replicas = run_with_lookahead(case)
    assert all(r.evaluations_ahead == 0 for r in replicas)
    assert sum(r.evaluations for r in replicas) == sum(int(r["grad_evals"]) for r in records)


def test_a_prefetch_for_other_parameters_is_not_used() -> None:
    """After a resume the anchor is a new tensor: a gradient prefetched at the old one
    must not stand in for it, even with equal values' round index."""
    spec = CHECKPOINT_CASES["cada2-minibatch"]
    replica = CountingReplica(spec, 0, dtype=F64)
    theta = torch.nn.utils.parameters_to_vector(replica.model.parameters()).detach().numpy()
    replica.step(0, theta, 0.0)  # the first round uploads: the anchor is θ⁰
    replica.prefetch(1)
    assert replica.evaluations == 2
    replica.load_state_dict(replica.state_dict())  # the same values, new tensors
    reply = replica.step(1, theta, 0.0)
    assert replica.evaluations_ahead == 0 and replica.in_step[-1] == 2
    assert reply.grad_evals == 2 and reply.lhs == 0.0
