"""The LAG notes' hand-computed example as a Task: two scalar workers with
L_1(θ) = ½(θ - 1)² and L_2(θ) = 4.5θ², so ∇L_1 = θ - 1 and ∇L_2 = 9θ."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from workers.training.tasks.base import Batch


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, dtype=torch.float64))


class TwoScalarTask:
    num_workers = 2
    smoothness: Sequence[float] | None = (1.0, 9.0)

    def build_model(self) -> nn.Module:
        return Scalar()

    def shard_size(self, rank: int) -> int:
        return 1

    def batch(self, rank: int, round_: int, batch_size: int | None) -> Batch:
        marker = torch.tensor([float(rank)], dtype=torch.float64)
        return Batch(marker, marker)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        theta = model.get_parameter("weight")[0]
        if int(batch.inputs[0]) == 0:
            return 0.5 * (theta - 1.0) ** 2
        return 4.5 * theta**2

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        theta = float(model.get_parameter("weight")[0])
        return {"val_loss": 0.5 * (theta - 1.0) ** 2 + 4.5 * theta**2}


# Mean aggregation with η = 0.2 is the paper's sum step alpha = η / M = 0.1, and
# RHS = (1/η²)·ξ_1·(θ^k - θ^{k-1})² = 25(θ^k - θ^{k-1})², as in the notes.
HAND_SPEC: dict[str, dict[str, object]] = {
    "task": {"kind": "lag_paper_linreg", "dim": 2},
    "distributed": {"workers": 2},
    "optimizer": {"name": "sgd", "lr": 0.2},
    "aggregation": {"strategy": "lag_wk", "window": 1, "xi": 1.0},
    "schedule": {"rounds": 7, "eval_every": 1},
}


def hand_spec(**aggregation: object) -> ResolvedSpec:
    base = dict(HAND_SPEC["aggregation"])
    base.update(aggregation)
    return resolve({**HAND_SPEC, "aggregation": base})
