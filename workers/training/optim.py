"""The coordinator's step on the flat parameter vector: SGD with momentum, and Adam
with optional AMSGrad and an optional bias correction. CADA2 is Adam with
amsgrad = True and bias_correction = False:

    h ← β₁h + (1-β₁)∇;  v ← β₂v + (1-β₂)∇²;  v̂ ← max(v̂, v);  θ ← θ - η·h/(√v̂ + ε).

With bias correction the update follows torch.optim.Adam's formulation exactly
(the tests compare against it), so `dense` + `adam` is plain data-parallel Adam.
Pure functions over a frozen state, so a checkpoint is just the state's tensors.

`preconditioner` gives the diagonal P that maps a step back to the gradient it
followed (Δθ = -η·P⁻¹·u): the lazy rules' threshold measures recent steps as ‖P·Δθ‖²/η²
so that both sides of the skip test are in gradient units (docs/decisions.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from service.schemas.resolved import ResolvedOptimizer


@dataclass(frozen=True)
class OptimizerState:
    step: int = 0
    momentum_buffer: torch.Tensor | None = None
    exp_avg: torch.Tensor | None = None
    exp_avg_sq: torch.Tensor | None = None
    max_exp_avg_sq: torch.Tensor | None = None

    def state_dict(self) -> dict[str, int | torch.Tensor]:
        out: dict[str, int | torch.Tensor] = {"step": self.step}
        for key in ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.clone()
        return out

    @staticmethod
    def from_state_dict(state: dict[str, int | torch.Tensor]) -> OptimizerState:
        def tensor(key: str) -> torch.Tensor | None:
            value = state.get(key)
            return value.clone() if isinstance(value, torch.Tensor) else None

        return OptimizerState(
            step=int(state["step"]),
            momentum_buffer=tensor("momentum_buffer"),
            exp_avg=tensor("exp_avg"),
            exp_avg_sq=tensor("exp_avg_sq"),
            max_exp_avg_sq=tensor("max_exp_avg_sq"),
        )


def optimizer_step(
    config: ResolvedOptimizer, state: OptimizerState, params: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, OptimizerState]:
    """One step; returns the new parameters and state (inputs are not modified)."""
    if config.name == "sgd":
        return _sgd(config, state, params, grad)
    return _adam(config, state, params, grad)


def _sgd(
    config: ResolvedOptimizer, state: OptimizerState, params: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, OptimizerState]:
    direction = grad
    buffer = None
    if config.momentum != 0.0:
        # torch.optim.SGD: the buffer starts as the first gradient, no dampening.
        if state.momentum_buffer is None:
            buffer = grad.clone()
        else:
            buffer = state.momentum_buffer * config.momentum + grad
        direction = buffer
    new_params = params.add(direction, alpha=-config.lr)
    return new_params, OptimizerState(step=state.step + 1, momentum_buffer=buffer)


def _adam(
    config: ResolvedOptimizer, state: OptimizerState, params: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, OptimizerState]:
    step = state.step + 1
    # The same operations in the same order as torch.optim.Adam's; the new state's
    # tensors are fresh (the inputs are never modified), temporaries are updated in
    # place rather than allocated (each costs a p-vector on the driver's critical path).
    exp_avg = _or_zeros(state.exp_avg, params).lerp(grad, 1 - config.beta1)
    exp_avg_sq = _or_zeros(state.exp_avg_sq, params).mul(config.beta2)
    exp_avg_sq.addcmul_(grad, grad, value=1 - config.beta2)
    max_exp_avg_sq = None
    second = exp_avg_sq
    if config.amsgrad:
        max_exp_avg_sq = torch.maximum(_or_zeros(state.max_exp_avg_sq, params), exp_avg_sq)
        second = max_exp_avg_sq
    denom = _denominator(config, second, step)
    step_size = config.lr / (1 - config.beta1**step) if config.bias_correction else config.lr
    new_params = params.addcdiv(exp_avg, denom, value=-step_size)
    return new_params, OptimizerState(
        step=step, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, max_exp_avg_sq=max_exp_avg_sq
    )


def _or_zeros(value: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return value if value is not None else torch.zeros_like(like)


def _denominator(config: ResolvedOptimizer, second: torch.Tensor, step: int) -> torch.Tensor:
    """√v̂ (bias-corrected when configured) + ε, as a fresh tensor."""
    denom = second.sqrt()
    if config.bias_correction:
        denom.div_(math.sqrt(1 - config.beta2**step))
    return denom.add_(config.eps)


def preconditioner(config: ResolvedOptimizer, state: OptimizerState) -> torch.Tensor | None:
    """The diagonal P of the step just taken (state = after it): Δθ = -η·P⁻¹·u with u
    a weighted mean of recent gradients, so that P·Δθ/η is in gradient units.

    - SGD without momentum: None (P = 1, the paper's rule).
    - SGD with momentum μ: the buffer b = μ·b + g grows to ≈ g/(1-μ), so P = 1-μ (a
      scalar): (1-μ)·b = (1-μ)·Σ_j μʲ·g_{k-j} is the normalised average, Adam's h
      without bias correction. Measured raw, the threshold was 1/(1-μ)² too large
      (100x at μ = 0.9) and the lazy rules stalled or diverged.
    - Adam: P = denom · (η / step size): √v̂ + ε, bias-corrected like the step, times
      (1 - β₁ᵗ) when the first moment is bias-corrected too, so that P·Δθ/η is exactly
      the first moment h."""
    if config.name == "sgd":
        if config.momentum == 0.0 or state.momentum_buffer is None:
            return None
        return torch.tensor(1.0 - config.momentum, dtype=torch.float64)
    second = state.max_exp_avg_sq if config.amsgrad else state.exp_avg_sq
    if second is None:
        return None
    denom = _denominator(config, second, state.step)
    if config.bias_correction:
        denom.mul_(1 - config.beta1**state.step)
    return denom
