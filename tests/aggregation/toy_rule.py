"""A rule that exists only in the tests, written the way docs/architecture.md says a
new rule is written: one module, ending in `RULE`. Round robin: every replica
uploads in round 0, then replica m uploads only in rounds k with k % M == m; the
coordinator keeps the stale gradients and steps along their clipped mean (the lazy
rules' coordinator side, reused)."""

from __future__ import annotations

import torch

from workers.aggregation.common import StaleGradientCoordinator
from workers.aggregation.rule import AggregationRule, GradientOracle, ReplicaOutcome, ReplicaRule


class RoundRobinReplica(ReplicaRule):
    def round(
        self, round_: int, params: torch.Tensor, rhs: float, gradient: GradientOracle
    ) -> ReplicaOutcome:
        loss, grad = gradient(params, round_)
        turn = round_ == 0 or round_ % self.ctx.workers == self.rank
        return ReplicaOutcome(upload=grad if turn else None, loss=loss)


RULE = AggregationRule(
    name="round_robin", replica=RoundRobinReplica, coordinator=StaleGradientCoordinator
)
