"""The dense baseline: every worker uploads its fresh gradient every round and the
coordinator steps along their clipped mean (plain data-parallel SGD/Adam; GD with
full batches). The lazy rules are tested against it: at a zero threshold each of
them must follow this trajectory."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from workers.aggregation.common import clip_by_norm_
from workers.aggregation.rule import (
    AggregationRule,
    CoordinatorRule,
    GradientOracle,
    ReplicaOutcome,
    ReplicaRule,
    RuleContext,
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
    reads_threshold = False

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        # The (M, p) stack, kept from round to round rather than allocated each time.
        self.rows = ctx.zeros(ctx.workers, ctx.size)

    def combine(
        self, round_: int, params: torch.Tensor, uploads: Mapping[int, torch.Tensor]
    ) -> torch.Tensor:
        # Every worker uploaded: the mean of the (M, p) stack, summed in rank order
        # exactly as the lazy rules sum their stale rows.
        rows = torch.stack(
            [uploads[rank] for rank in sorted(uploads)], out=self.rows[: len(uploads)]
        )
        mean = rows.sum(dim=0).div_(len(uploads))
        return clip_by_norm_(mean, self.ctx.spec.optimizer.clip_grad_norm)


RULE = AggregationRule(name="dense", replica=DenseReplica, coordinator=DenseCoordinator)
