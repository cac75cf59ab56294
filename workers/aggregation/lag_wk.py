"""LAG-WK (Chen et al., 2018), the worker-side rule: worker m computes
g = ∇L_m(θ^k) and uploads iff ‖g - g_m‖² > RHS^k, where g_m is the gradient it
last uploaded (the coordinator holds the same g_m); otherwise the coordinator
reuses g_m. With minibatches the two gradients come from different samples, so
the test is dominated by sampling noise (use lasg_wk2 there)."""

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
class LagWkState:
    last_upload: torch.Tensor | None = None  # g_m, the gradient the coordinator holds
    last_upload_round: int = -1


def decide(
    state: LagWkState,
    grad: torch.Tensor,
    *,
    round_: int,
    rhs: float,
    max_staleness: int | None,
    warmup_full_upload: bool,
) -> Decision:
    if state.last_upload is None:
        # Before the first upload the coordinator holds zeros for this worker.
        if warmup_full_upload:
            return UPLOAD
        return skip_test(float(torch.dot(grad, grad)), rhs)
    if staleness_due(round_, state.last_upload_round, max_staleness):
        return Decision(upload=True, forced=True)
    diff = grad - state.last_upload
    return skip_test(float(torch.dot(diff, diff)), rhs)


def after_upload(state: LagWkState, grad: torch.Tensor, *, round_: int) -> LagWkState:
    return LagWkState(last_upload=grad.detach().clone(), last_upload_round=round_)


class LagWkReplica(ReplicaRule):
    def __init__(self, ctx: RuleContext, rank: int) -> None:
        super().__init__(ctx, rank)
        self.state = LagWkState()

    def round(
        self, round_: int, params: torch.Tensor, rhs: float, gradient: GradientOracle
    ) -> ReplicaOutcome:
        loss, grad = gradient(params, round_)
        agg = self.ctx.spec.aggregation
        decision = decide(
            self.state,
            grad,
            round_=round_,
            rhs=rhs,
            max_staleness=agg.max_staleness,
            warmup_full_upload=agg.warmup_full_upload,
        )
        if decision.upload:
            self.state = after_upload(self.state, grad, round_=round_)
        return ReplicaOutcome(
            upload=grad if decision.upload else None,
            loss=loss,
            lhs=decision.lhs,
            forced=decision.forced,
        )

    def state_dict(self) -> dict[str, Any]:
        """last_upload_round, and last_upload (g_m) once there is one."""
        state: dict[str, Any] = {"last_upload_round": self.state.last_upload_round}
        if self.state.last_upload is not None:
            state["last_upload"] = self.state.last_upload.clone()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        grad = state.get("last_upload")
        self.state = LagWkState(
            last_upload=None if grad is None else self.tensor(grad),
            last_upload_round=int(state["last_upload_round"]),
        )


RULE = AggregationRule(name="lag_wk", replica=LagWkReplica, coordinator=StaleGradientCoordinator)
