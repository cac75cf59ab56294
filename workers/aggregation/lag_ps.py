"""LAG-PS (Chen et al., 2018), the server-side rule: the coordinator asks worker m
for a fresh gradient only if L_m² ‖θ̂_m - θ^k‖² > RHS^k, with L_m the smoothness
constant of worker m's loss and θ̂_m the iterate of its last upload. Skipped
workers receive nothing and compute nothing (downloads and computation are saved
too, at the price of needing every L_m). θ̂_m and the staleness bookkeeping live in
this rule's coordinator state only; a called replica simply uploads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from workers.aggregation.dense import DenseReplica
from workers.aggregation.rule import AggregationRule, Plan, RuleContext


@dataclass(frozen=True)
class LagPsState:
    anchors: torch.Tensor  # (M, p): θ̂_m per worker
    last_upload_round: tuple[int, ...]  # -1 = never uploaded

    @staticmethod
    def initial(workers: int, size: int, *, dtype: torch.dtype, device: str) -> LagPsState:
        return LagPsState(torch.zeros(workers, size, dtype=dtype, device=device), (-1,) * workers)


def select(
    state: LagPsState,
    params: torch.Tensor,
    *,
    smoothness: Sequence[float],
    round_: int,
    rhs: float,
    max_staleness: int | None,
) -> list[Decision]:
    """One decision per worker; `upload` = the coordinator asks it this round.
    A worker that never uploaded has no θ̂_m and is always asked."""
    decisions: list[Decision] = []
    for rank, lipschitz in enumerate(smoothness):
        last = state.last_upload_round[rank]
        if last < 0:
            decisions.append(UPLOAD)
        elif staleness_due(round_, last, max_staleness):
            decisions.append(Decision(upload=True, forced=True))
        else:
            diff = (state.anchors[rank] - params).to(torch.float64)
            lhs = float(lipschitz) ** 2 * float(torch.dot(diff, diff))
            decisions.append(skip_test(lhs, rhs))
    return decisions


def after_uploads(
    state: LagPsState, params: torch.Tensor, *, ranks: Sequence[int], round_: int
) -> LagPsState:
    if not ranks:
        return state
    anchors = state.anchors.clone()
    last = list(state.last_upload_round)
    for rank in ranks:
        anchors[rank] = params
        last[rank] = round_
    return LagPsState(anchors, tuple(last))


class LagPsCoordinator(StaleGradientCoordinator):
    every_call_uploads = True

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        if ctx.smoothness is None:
            raise ValueError("aggregation.strategy: lag_ps needs the task's smoothness")
        self.smoothness = [float(v) for v in ctx.smoothness]
        self.ps = LagPsState.initial(ctx.workers, ctx.size, dtype=ctx.dtype, device=ctx.device)

    def plan(self, round_: int, params: torch.Tensor, rhs: float) -> Plan:
        decisions = select(
            self.ps,
            params,
            smoothness=self.smoothness,
            round_=round_,
            rhs=rhs,
            max_staleness=self.ctx.spec.aggregation.max_staleness,
        )
        return Plan(
            ranks=tuple(r for r, d in enumerate(decisions) if d.upload),
            forced=sum(1 for d in decisions if d.forced),
            lhs={r: d.lhs for r, d in enumerate(decisions) if d.lhs is not None},
        )

    def combine(
        self, round_: int, params: torch.Tensor, uploads: Mapping[int, torch.Tensor]
    ) -> torch.Tensor:
        self.ps = after_uploads(self.ps, params, ranks=sorted(uploads), round_=round_)
        return super().combine(round_, params, uploads)

    def state_dict(self) -> dict[str, Any]:
        """The stale gradients, anchors (M, p) θ̂_m and last_upload_round (M,) int64."""
        return {
            **super().state_dict(),
            "anchors": self.ps.anchors.clone(),
            "last_upload_round": torch.tensor(self.ps.last_upload_round, dtype=torch.int64),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        last = tuple(int(v) for v in state["last_upload_round"].tolist())
        self.ps = LagPsState(self.tensor(state["anchors"]), last)


# A called replica of LAG-PS does exactly what a dense replica does.
RULE = AggregationRule(name="lag_ps", replica=DenseReplica, coordinator=LagPsCoordinator)
