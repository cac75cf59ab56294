"""The dense baseline: every worker uploads its fresh gradient every round and the
coordinator steps along their clipped mean (plain data-parallel SGD/Adam; GD with
full batches). The lazy rules are tested against it: at a zero threshold each of
them must follow this trajectory."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from workers.aggregation.common import clip_by_norm
from workers.aggregation.rule import (
    AggregationRule,
    CoordinatorRule,
    GradientOracle,
    ReplicaOutcome,
    ReplicaRule,
)


class DenseReplica(ReplicaRule):
    """Keeps nothing between rounds; uploads the gradient at θᵏ."""

    def round(
        self, round_: int, params: torch.Tensor, rhs: float, gradient: GradientOracle
    ) -> ReplicaOutcome:
        loss, grad = gradient(params, round_)
        return ReplicaOutcome(upload=grad, loss=loss)


class DenseCoordinator(CoordinatorRule):
    every_call_uploads = True

    def combine(
        self, round_: int, params: torch.Tensor, uploads: Mapping[int, torch.Tensor]
    ) -> torch.Tensor:
        # Every worker uploaded: the mean of the (M, p) stack, summed in rank order
        # exactly as the lazy rules sum their stale rows.
        mean = torch.stack([uploads[rank] for rank in sorted(uploads)]).sum(dim=0) / len(uploads)
        return clip_by_norm(mean, self.ctx.spec.optimizer.clip_grad_norm)


RULE = AggregationRule(name="dense", replica=DenseReplica, coordinator=DenseCoordinator)
