"""LASG-WK2 (Chen, Sun, Yin, 2020), the stochastic worker-side rule, also the
trigger of CADA2: worker m draws ONE minibatch ξ and evaluates the gradient both
at θ^k and at θ̂_m, the iterate of its last upload; it uploads the fresh gradient
∇f(θ^k; ξ) iff ‖∇f(θ^k; ξ) - ∇f(θ̂_m; ξ)‖² > RHS^k. Sampling noise cancels to first
order because both evaluations see the same samples (and dropout masks).

The worker calls `needs_anchor_gradient` first: when it is False (no upload yet,
or staleness forces an upload) the second evaluation is skipped."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workers.aggregation.common import UPLOAD, Decision, skip_test, staleness_due


@dataclass(frozen=True)
class LasgWk2State:
    anchor: torch.Tensor | None = None  # θ̂_m, flat parameters at the last upload
    last_upload_round: int = -1


def pre_decision(state: LasgWk2State, *, round_: int, max_staleness: int | None) -> Decision | None:
    """The decision when it needs no anchor gradient, else None."""
    if state.anchor is None:
        # No θ̂_m to compare against: the first upload is unconditional (a
        # warmup_full_upload = False run has nothing else to test either).
        return UPLOAD
    if staleness_due(round_, state.last_upload_round, max_staleness):
        return Decision(upload=True, forced=True)
    return None


def decide(fresh_grad: torch.Tensor, anchor_grad: torch.Tensor, *, rhs: float) -> Decision:
    diff = fresh_grad - anchor_grad
    return skip_test(float(torch.dot(diff, diff)), rhs)


def after_upload(state: LasgWk2State, params: torch.Tensor, *, round_: int) -> LasgWk2State:
    return LasgWk2State(anchor=params.detach().clone(), last_upload_round=round_)
