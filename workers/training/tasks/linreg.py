"""lag_paper_linreg: the LAG paper's heterogeneous synthetic linear regression.

Worker m holds X_m = c_m q_m q_mᵀ + I (dim x dim), c_m = 1.3^(m-1) (c_m = 1 for
every worker in the uniform control), the q_m orthonormal columns of the QR of a
seeded Gaussian matrix, and one target vector y shared by all workers. Worker m's
loss is the paper's L_m(θ) = ½‖X_m θ - y‖², smoothness L_m = (1 + c_m)²
(service.schemas.defaults.linreg_smoothness).

A "sample" is one row of X_m; a minibatch of b rows estimates L_m without bias as
dim · mean_i ½(x_iᵀθ - y_i)², so the full batch gives L_m exactly.

Evaluation: `val_loss` = (1/M) Σ_m L_m(θ), the mean loss that the default
lr = 1/L is tuned for (comparable with `train_loss`), and `optimality_gap` =
f(θ) - f* of the paper's objective f = Σ_m L_m (as in the paper's figures),
computed as ½(θ - θ*)ᵀ H (θ - θ*) in float64 so that gaps near 1e-10 are exact.
`optimality_gap` is also in every round's record (`round_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from service.schemas.defaults import linreg_smoothness
from service.schemas.resolved import ResolvedSpec
from workers.training.flat import flat_params
from workers.training.tasks.base import Batch, DatasetResolver

_STREAM_DATA = 101
_STREAM_BATCH = 102


class LinearModel(nn.Module):
    """θ ↦ Xθ with a single weight vector, starting at θ⁰ = 0 as in the paper."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim, dtype=torch.float64))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs @ self.weight


class LinregTask:
    def __init__(
        self,
        *,
        workers: int,
        dim: int = 50,
        uniform: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
    ) -> None:
        if not 1 <= workers <= dim:
            raise ValueError(f"lag_paper_linreg needs 1 <= workers <= dim ({dim}), got {workers}")
        self.num_workers = workers
        self.dim = dim
        self.seed = seed
        self.dtype = dtype
        self.device = device
        self.smoothness: Sequence[float] | None = linreg_smoothness(workers, uniform)
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_DATA]))
        basis, _ = np.linalg.qr(rng.standard_normal((dim, workers)))
        targets = rng.standard_normal(dim)
        scales = np.ones(workers) if uniform else 1.3 ** np.arange(workers)
        eye = np.eye(dim)
        matrices = np.stack(
            [scales[m] * np.outer(basis[:, m], basis[:, m]) + eye for m in range(workers)]
        )
        self.matrices64 = matrices
        self.targets64 = targets
        # The paper's objective f = Σ_m ½‖X_m θ - y‖²: Hessian H, minimiser θ*.
        self.hessian64 = np.einsum("mij,mik->jk", matrices, matrices)
        self.optimum64 = np.linalg.solve(self.hessian64, np.einsum("mij,i->j", matrices, targets))
        self._matrices = torch.from_numpy(matrices).to(dtype=dtype, device=device)
        self._targets = torch.from_numpy(targets).to(dtype=dtype, device=device)

    def build_model(self) -> nn.Module:
        return LinearModel(self.dim).to(dtype=self.dtype, device=self.device)

    def shard_size(self, rank: int) -> int:
        return self.dim

    def batch(self, rank: int, round_: int, batch_size: int | None) -> Batch:
        matrix = self._matrices[rank]
        if batch_size is None or batch_size >= self.dim:
            return Batch(matrix, self._targets)
        keys = [self.seed, _STREAM_BATCH, rank, round_]
        rng = np.random.default_rng(np.random.SeedSequence(keys))
        rows = torch.from_numpy(rng.choice(self.dim, size=batch_size, replace=False))
        rows = rows.to(self.device)
        return Batch(matrix[rows], self._targets[rows])

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        prediction: torch.Tensor = model(batch.inputs)
        residual = prediction - batch.targets
        return self.dim * 0.5 * residual.pow(2).mean()

    def objective(self, theta: np.ndarray) -> float:
        """f(θ) = Σ_m L_m(θ) in float64."""
        residuals = self.matrices64 @ theta - self.targets64
        return float(0.5 * np.sum(residuals**2))

    def optimality_gap(self, theta: np.ndarray) -> float:
        delta = theta - self.optimum64
        return float(0.5 * delta @ self.hessian64 @ delta)

    def round_metrics(self, params: torch.Tensor) -> dict[str, float]:
        """`optimality_gap` every round: a 50 x 50 quadratic form costs nothing."""
        theta = params.detach().cpu().to(torch.float64).numpy()
        return {"optimality_gap": self.optimality_gap(theta)}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        theta = flat_params(model).cpu().to(torch.float64).numpy()
        return {
            "val_loss": self.objective(theta) / self.num_workers,
            "optimality_gap": self.optimality_gap(theta),
        }


def build_linreg_task(
    spec: ResolvedSpec,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    resolve_dataset: DatasetResolver | None = None,
) -> LinregTask:
    return LinregTask(
        workers=spec.distributed.workers,
        dim=spec.task.dim,
        uniform=spec.task.uniform,
        seed=spec.schedule.seed,
        dtype=dtype,
        device=device,
    )
