"""Local SGD, the opposite trade: in one *round* every worker starts from the
broadcast θ^k, takes H plain SGD steps on its own minibatches (round k uses the
minibatch indices k·H … k·H + H - 1), and uploads its parameters. The coordinator
averages them and turns the average into a pseudo-gradient
Δ = (θ^k - mean_m θ_m) / η, which it hands to its optimizer: with `sgd` and no
momentum that step lands exactly on the average (classic local SGD / FedAvg);
with `adam` it is FedAdam-style. One round = one communication = H gradient
evaluations per worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from workers.aggregation.common import UPLOAD, Decision, clip_by_norm

# (local step index, parameters) -> (loss, gradient)
GradientOracle = Callable[[int, torch.Tensor], tuple[float, torch.Tensor]]


@dataclass(frozen=True)
class LocalSgdState:
    """Local SGD workers keep nothing between rounds."""


def decide(state: LocalSgdState) -> Decision:
    return UPLOAD


def local_steps(
    params: torch.Tensor,
    oracle: GradientOracle,
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
