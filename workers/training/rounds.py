"""What a round's driver and the coordinator exchange besides replies: the round's
plan, and the error that ends a run whose loss or parameters stopped being finite."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class Diverged(RuntimeError):
    """The loss, the parameters or the task's figures became NaN/inf at `round`."""

    def __init__(self, round_: int) -> None:
        # With what a user can change: a walkthrough's student had no next step.
        super().__init__(
            f"training diverged at round {round_} (non-finite loss, parameters or metrics): "
            "lower optimizer.lr, or set optimizer.clip_grad_norm"
        )
        self.round = round_

    def __reduce__(self) -> tuple[type[Diverged], tuple[int]]:
        # Ray pickles it across processes; the default would call Diverged(message).
        return Diverged, (self.round,)


@dataclass(frozen=True)
class RoundPlan:
    """Call `replicas[r].step(round, params, rhs)` for every r in `ranks`. `params`
    is a read-only view of the coordinator's θᵏ; `rhs` is NaN where the rule reads no
    threshold (CoordinatorRule.reads_threshold)."""

    round: int
    ranks: tuple[int, ...]
    params: np.ndarray
    rhs: float
