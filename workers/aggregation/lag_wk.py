"""LAG-WK (Chen et al., 2018), the worker-side rule: worker m computes
g = ∇L_m(θ^k) and uploads iff ‖g - g_m‖² > RHS^k, where g_m is the gradient it
last uploaded (the coordinator holds the same g_m); otherwise the coordinator
reuses g_m. With minibatches the two gradients come from different samples, so
the test is dominated by sampling noise (use lasg_wk2 there)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workers.aggregation.common import UPLOAD, Decision, skip_test, staleness_due


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
