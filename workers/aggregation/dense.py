"""The dense baseline: every worker uploads its fresh gradient every round
(plain data-parallel SGD/Adam; GD with full batches)."""

from __future__ import annotations

from dataclasses import dataclass

from workers.aggregation.common import UPLOAD, Decision


@dataclass(frozen=True)
class DenseState:
    """Dense workers keep nothing between rounds."""


def decide(state: DenseState) -> Decision:
    return UPLOAD
