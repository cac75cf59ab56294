"""Pieces the aggregation rules share: the upload decision, the right-hand side of
the skip test over a window of recent parameter steps, staleness forcing, clipping,
and the coordinator's store of per-worker stale gradients.

Convention (DESIGN §5): the coordinator steps with the *mean* of the M stale
gradients, θ^{k+1} = θ^k - η·(1/M)·Σ_m g_m, so the skip test's right-hand side is

    RHS^k = (1/η²) · Σ_{d=1..D} ξ_d ‖θ^{k+1-d} - θ^{k-d}‖²,   ξ_d = xi / D,

which equals the paper's 1/(alpha²M²) form with the paper's sum step alpha = η / M. While
k < D the window holds fewer than D terms (the missing ones count as zero).

Under Adam each step is measured in the optimizer's metric: ‖P·Δθ‖² with P its
diagonal preconditioner (√v̂ + ε), so Δθ·P/η is the first moment the step followed and
both sides of the test are squared gradients whatever the parameter count or lr.
Under SGD P = 1 and this is the paper's rule unchanged; with momentum μ, P = 1 - μ
(the buffer the step followed grows to ≈ g/(1 - μ)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from workers.aggregation.rule import CoordinatorRule, RuleContext


@dataclass(frozen=True)
class Decision:
    """One worker's outcome for one round. `forced` marks an upload made because
    the worker reached `max_staleness` (the skip test was not consulted); `lhs` is
    the left-hand side of the test where it was evaluated."""

    upload: bool
    forced: bool = False
    lhs: float | None = None


UPLOAD = Decision(upload=True)


def skip_test(lhs: float, rhs: float, *, tie_uploads: bool = False) -> Decision:
    """Upload iff LHS > RHS (LAG, DESIGN §5), or LHS ≥ RHS with `tie_uploads`
    (LASG-WK2 in LAG-NOTES). They differ on a tie only, which happens at a zero
    threshold when θ has not moved since the worker's last upload: a full gradient is
    then unchanged and skipping it is exact; a fresh minibatch's is not, and skipping
    would keep an older minibatch's gradient, so ξ = 0 would not be dense.

    Written as "not a clear skip": a NaN LHS (a gradient gone NaN) uploads, so the
    coordinator's finiteness check stops the job (Diverged); `NaN > RHS` is false, and
    the worker skipped for good while the job ran on and succeeded (a review)."""
    skip = lhs < rhs if tie_uploads else lhs <= rhs
    return Decision(upload=not skip, lhs=lhs)


def staleness_due(round_: int, last_upload_round: int, max_staleness: int | None) -> bool:
    """True when the worker has gone `max_staleness` rounds without an upload:
    with max_staleness = 1 every round is an upload (the dense baseline)."""
    if max_staleness is None or last_upload_round < 0:
        return False
    return round_ - last_upload_round >= max_staleness


@dataclass(frozen=True)
class ThresholdWindow:
    """The last `size` squared parameter steps ‖θ^{j+1} - θ^j‖², newest first."""

    size: int
    sq_steps: tuple[float, ...] = ()

    def push(self, sq_step: float) -> ThresholdWindow:
        return ThresholdWindow(self.size, ((float(sq_step), *self.sq_steps))[: self.size])

    def rhs(self, *, lr: float, xi: float) -> float:
        if not self.sq_steps or xi == 0.0:
            return 0.0
        return (xi / self.size) * sum(self.sq_steps) / (lr * lr)


def squared_step(
    new_params: torch.Tensor, old_params: torch.Tensor, metric: torch.Tensor | None = None
) -> float:
    """‖P·(θ^{k+1} - θ^k)‖², accumulated in float64 whatever the training dtype. `metric`
    is the optimizer's diagonal preconditioner P (None = 1: SGD without momentum; a 0-d
    tensor: a scalar P): it maps the step back to the gradient units of the skip test's
    left side, which makes the threshold independent of the parameter count, of the
    step scale under Adam and of the momentum under SGD."""
    return SquaredStepMeter(new_params.numel(), device=new_params.device)(
        new_params, old_params, metric
    )


class SquaredStepMeter:
    """`squared_step` on two float64 scratch vectors kept from round to round: the
    same operations in the same order as `(new - old) * metric` in float64 (the
    conversions from float32 are exact), without allocating and faulting in p-vectors
    every round (the window's step norm was half of the coordinator's time on a
    316 k-parameter LSTM when it allocated three)."""

    def __init__(self, size: int, *, device: str | torch.device) -> None:
        self.diff = torch.empty(size, dtype=torch.float64, device=device)
        self.other = torch.empty(size, dtype=torch.float64, device=device)

    def __call__(
        self, new_params: torch.Tensor, old_params: torch.Tensor, metric: torch.Tensor | None
    ) -> float:
        diff, other = self.diff, self.other
        diff.copy_(new_params)
        other.copy_(old_params)
        diff.sub_(other)
        if metric is not None and metric.dim() == 0:  # a scalar P (SGD with momentum)
            diff.mul_(float(metric))
        elif metric is not None:
            other.copy_(metric)
            diff.mul_(other)
        return float(torch.dot(diff, diff))


class StaleGradients:
    """The coordinator's copy of the last vector each worker uploaded, row m for
    worker m (zeros until its first upload). Rows are replaced in place (no copy of
    the M x p matrix per round); the aggregate is re-summed from the rows every round
    rather than updated by innovations, so float32 round-off cannot accumulate over a
    long run."""

    def __init__(self, rows: torch.Tensor, uploaded: torch.Tensor) -> None:
        self.rows = rows  # (M, p)
        self.uploaded = uploaded  # (M,) bool: has worker m ever uploaded

    @staticmethod
    def zeros(workers: int, size: int, *, dtype: torch.dtype, device: str) -> StaleGradients:
        return StaleGradients(
            torch.zeros(workers, size, dtype=dtype, device=device),
            torch.zeros(workers, dtype=torch.bool, device=device),
        )

    def replace(self, uploads: Mapping[int, torch.Tensor]) -> None:
        for rank, vector in uploads.items():
            self.rows[rank] = vector
            self.uploaded[rank] = True

    def mean(self) -> torch.Tensor:
        """A fresh tensor (the caller may scale it in place)."""
        return self.rows.sum(dim=0).div_(self.rows.shape[0])


class StaleGradientCoordinator(CoordinatorRule):
    """The coordinator side shared by the lazy rules: keep each worker's last upload
    and step along the clipped mean of what is held."""

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        self.stale = StaleGradients.zeros(ctx.workers, ctx.size, dtype=ctx.dtype, device=ctx.device)

    def combine(
        self, round_: int, params: torch.Tensor, uploads: Mapping[int, torch.Tensor]
    ) -> torch.Tensor:
        self.stale.replace(uploads)
        return clip_by_norm_(self.stale.mean(), self.ctx.spec.optimizer.clip_grad_norm)

    def state_dict(self) -> dict[str, Any]:
        """rows (M, p) and uploaded (M,) bool."""
        return {"rows": self.stale.rows.clone(), "uploaded": self.stale.uploaded.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        rows = self.tensor(state["rows"])
        if tuple(rows.shape) != tuple(self.stale.rows.shape):
            raise ValueError(
                f"stale gradients {tuple(rows.shape)} for a job of {tuple(self.stale.rows.shape)}"
            )
        self.stale = StaleGradients(rows, self.tensor(state["uploaded"], torch.bool))


def clip_by_norm(vector: torch.Tensor, max_norm: float | None) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_'s rule on one flat vector."""
    if max_norm is None:
        return vector
    coef = max_norm / (_norm(vector) + 1e-6)
    return vector * coef if coef < 1.0 else vector


def clip_by_norm_(vector: torch.Tensor, max_norm: float | None) -> torch.Tensor:
    """`clip_by_norm` scaling `vector` in place (a temporary of the caller's): the
    same multiplication, without another p-vector."""
    if max_norm is None:
        return vector
    coef = max_norm / (_norm(vector) + 1e-6)
    return vector.mul_(coef) if coef < 1.0 else vector


def _norm(vector: torch.Tensor) -> float:
    """‖vector‖, in float64 where the vector's own dtype overflows: a float32 vector
    of finite entries whose norm passes ≈ 1.8e19 (its squares pass float32's range)
    read as inf, clipped by a factor of 0, and the run froze with no error (a review)."""
    norm = float(torch.linalg.vector_norm(vector))
    if math.isinf(norm):
        norm = float(torch.linalg.vector_norm(vector, dtype=torch.float64))
    return norm
