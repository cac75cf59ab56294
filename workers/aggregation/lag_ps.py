"""LAG-PS (Chen et al., 2018), the server-side rule: the coordinator asks worker m
for a fresh gradient only if L_m² ‖θ̂_m - θ^k‖² > RHS^k, with L_m the smoothness
constant of worker m's loss and θ̂_m the iterate of its last upload. Skipped
workers receive nothing and compute nothing (downloads and computation are saved
too, at the price of needing every L_m)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from workers.aggregation.common import UPLOAD, Decision, skip_test, staleness_due


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
