"""LASG-WK2 (Chen, Sun, Yin, 2020), the stochastic worker-side rule, also the
trigger of CADA2: worker m draws ONE minibatch ξ and evaluates the gradient both
at θ^k and at θ̂_m, the iterate of its last upload; it uploads the fresh gradient
∇f(θ^k; ξ) iff ‖∇f(θ^k; ξ) - ∇f(θ̂_m; ξ)‖² ≥ RHS^k (LAG-NOTES). Sampling noise cancels to first
order because both evaluations see the same samples (and dropout masks).

`pre_decision` comes first: when it decides (no upload yet, or staleness forces an
upload) the second evaluation is skipped. Otherwise the second evaluation depends only
on this state and the round's minibatch, not on θ^k: `lookahead` offers it to be
computed while the replica waits for θ^k (workers.training.replica.prefetch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from workers.aggregation.common import (
    UPLOAD,
    Decision,
    StaleGradientCoordinator,
    skip_test,
    staleness_due,
)
from workers.aggregation.rule import (
    AggregationRule,
    GradientOracle,
    ReplicaOutcome,
    ReplicaRule,
    RuleContext,
)


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


def anchor_ahead(
    state: LasgWk2State, *, round_: int, max_staleness: int | None
) -> torch.Tensor | None:
    """θ̂_m when round `round_` will evaluate its gradient (the test is not decided
    without it); known before θ^round arrives, since only this state decides."""
    if pre_decision(state, round_=round_, max_staleness=max_staleness) is None:
        return state.anchor
    return None


def decide(fresh_grad: torch.Tensor, anchor_grad: torch.Tensor, *, rhs: float) -> Decision:
    diff = fresh_grad - anchor_grad
    return skip_test(float(torch.dot(diff, diff)), rhs, tie_uploads=True)


def after_upload(state: LasgWk2State, params: torch.Tensor, *, round_: int) -> LasgWk2State:
    return LasgWk2State(anchor=params.detach().clone(), last_upload_round=round_)


class LasgWk2Replica(ReplicaRule):
    def __init__(self, ctx: RuleContext, rank: int) -> None:
        super().__init__(ctx, rank)
        self.state = LasgWk2State()

    def round(
        self, round_: int, params: torch.Tensor, rhs: float, gradient: GradientOracle
    ) -> ReplicaOutcome:
        loss, grad = gradient(params, round_)
        decision = pre_decision(
            self.state, round_=round_, max_staleness=self.ctx.spec.aggregation.max_staleness
        )
        if decision is None:
            assert self.state.anchor is not None  # pre_decision decides without one
            _, anchor_grad = gradient(self.state.anchor, round_)  # the same minibatch
            decision = decide(grad, anchor_grad, rhs=rhs)
        if decision.upload:
            self.state = after_upload(self.state, params, round_=round_)
        return ReplicaOutcome(
            upload=grad if decision.upload else None,
            loss=loss,
            lhs=decision.lhs,
            forced=decision.forced,
        )

    def lookahead(self, round_: int) -> torch.Tensor | None:
        max_staleness = self.ctx.spec.aggregation.max_staleness
        return anchor_ahead(self.state, round_=round_, max_staleness=max_staleness)

    def state_dict(self) -> dict[str, Any]:
        """last_upload_round, and anchor (θ̂_m) once there is one."""
        state: dict[str, Any] = {"last_upload_round": self.state.last_upload_round}
        if self.state.anchor is not None:
            state["anchor"] = self.state.anchor.clone()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        anchor = state.get("anchor")
        self.state = LasgWk2State(
            anchor=None if anchor is None else self.tensor(anchor),
            last_upload_round=int(state["last_upload_round"]),
        )


RULE = AggregationRule(
    name="lasg_wk2", replica=LasgWk2Replica, coordinator=StaleGradientCoordinator
)
