"""Local SGD, the opposite trade: in one *round* every worker starts from the
broadcast θ^k, takes H plain SGD steps on its own minibatches (round k uses the
minibatch indices k·H … k·H + H - 1), and uploads its parameters. The coordinator
averages them and turns the average into a pseudo-gradient
Δ = (θ^k - mean_m θ_m) / η, which it hands to its optimizer: with `sgd` and no
momentum that step lands exactly on the average (classic local SGD / FedAvg);
with `adam` it is FedAdam-style. One round = one communication = H gradient
evaluations per worker. No clipping at the coordinator: each local step was
clipped already."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from workers.aggregation.common import clip_by_norm
from workers.aggregation.rule import (
    AggregationRule,
    CoordinatorRule,
    GradientOracle,
    ReplicaOutcome,
    ReplicaRule,
)

# (local step index, parameters) -> (loss, gradient)
LocalOracle = Callable[[int, torch.Tensor], tuple[float, torch.Tensor]]


def local_steps(
    params: torch.Tensor,
    oracle: LocalOracle,
    *,
    steps: int,
    lr: float,
    clip_grad_norm: float | None,
) -> tuple[torch.Tensor, list[float]]:
    """H steps θ ← θ - η·clip(g); returns the final parameters and each step's loss."""
    current = params.clone()
    losses: list[float] = []
    for step in range(steps):
        loss, grad = oracle(step, current)
        losses.append(loss)
        current = current - lr * clip_by_norm(grad, clip_grad_norm)
    return current, losses


def pseudo_gradient(params: torch.Tensor, averaged: torch.Tensor, *, lr: float) -> torch.Tensor:
    return (params - averaged) / lr


class LocalSgdReplica(ReplicaRule):
    def round(
        self, round_: int, params: torch.Tensor, rhs: float, gradient: GradientOracle
    ) -> ReplicaOutcome:
        spec = self.ctx.spec
        steps = spec.aggregation.local_steps
        final, losses = local_steps(
            params,
            lambda step, theta: gradient(theta, round_ * steps + step),
            steps=steps,
            lr=spec.optimizer.lr,
            clip_grad_norm=spec.optimizer.clip_grad_norm,
        )
        return ReplicaOutcome(upload=final, loss=losses[0])


class LocalSgdCoordinator(CoordinatorRule):
    every_call_uploads = True
    reads_threshold = False

    def combine(
        self, round_: int, params: torch.Tensor, uploads: Mapping[int, torch.Tensor]
    ) -> torch.Tensor:
        averaged = torch.stack([uploads[rank] for rank in sorted(uploads)]).mean(dim=0)
        return pseudo_gradient(params, averaged, lr=self.ctx.spec.optimizer.lr)


RULE = AggregationRule(name="local_sgd", replica=LocalSgdReplica, coordinator=LocalSgdCoordinator)
