"""The LAG paper's synthetic figure (M = 9, lr = 1/L, D = 10, full batches): the
savings come from heterogeneity, and vanish on identical workers, so an
always-skip bug cannot pass by "uploading less"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from service.schemas.defaults import linreg_smoothness
from service.schemas.resolve import resolve
from workers.training.runner import run_reference

TARGET_GAP = 1e-8


@dataclass(frozen=True)
class Reached:
    iterations: int  # optimizer steps taken when f(θ) - f* first fell below the target
    uploads: int
    uploads_per_worker: list[int]


def reach_target(strategy: str, *, uniform: bool, rounds: int = 200) -> Reached:
    spec = resolve(
        {
            "task": {"kind": "lag_paper_linreg", "uniform": uniform},
            "aggregation": {"strategy": strategy},
            "schedule": {"rounds": rounds, "eval_every": 1},
        }
    )
    hit: list[tuple[int, int]] = []

    def record(round_: int, values: dict[str, float]) -> None:
        if not hit and values["optimality_gap"] < TARGET_GAP:
            hit.append((round_ + 1, int(values["uploads_total"])))

    result = run_reference(
        spec, on_record=record, dtype=torch.float64, should_stop=lambda: bool(hit)
    )
    assert hit, f"{strategy} never reached f - f* < {TARGET_GAP} in {rounds} rounds"
    assert result.stopped
    iterations, uploads = hit[0]
    assert sum(result.uploads_per_worker) == uploads
    return Reached(iterations, uploads, result.uploads_per_worker)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    def ranks(values: Sequence[float]) -> np.ndarray:
        array = np.asarray(values, dtype=float)
        order = array.argsort()
        ranked = np.empty(len(array))
        ranked[order] = np.arange(len(array))
        for value in np.unique(array):  # ties share their average rank
            ranked[array == value] = ranked[array == value].mean()
        return ranked

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def test_lag_wk_saves_uploads_on_the_heterogeneous_task() -> None:
    gd = reach_target("dense", uniform=False)
    lag = reach_target("lag_wk", uniform=False)
    assert gd.uploads == 9 * gd.iterations
    assert lag.uploads <= 0.2 * gd.uploads
    assert lag.iterations <= 1.5 * gd.iterations
    # Workers with larger smoothness constants change their gradients faster.
    assert spearman(lag.uploads_per_worker, linreg_smoothness(9, False)) > 0.8


def test_lag_ps_saves_uploads_on_the_heterogeneous_task() -> None:
    gd = reach_target("dense", uniform=False)
    lag_ps = reach_target("lag_ps", uniform=False)
    assert lag_ps.uploads <= 0.3 * gd.uploads
    assert lag_ps.iterations <= 1.5 * gd.iterations
    assert spearman(lag_ps.uploads_per_worker, linreg_smoothness(9, False)) > 0.8


def test_lag_saves_nothing_on_identical_workers() -> None:
    gd = reach_target("dense", uniform=True)
    lag = reach_target("lag_wk", uniform=True)
    assert lag.uploads >= gd.uploads
