"""LAG-WK on the notes' hand-computed trajectory, exact to float64 round-off:
uploads {1,2},{2},{1,2},{2},{1,2},{2},{1,2} and θ¹…θ⁷ = 1/10, 11/100, 1/10,
99/1000, 1/10, 1001/10000, 1/10 (11 uploads against GD's 14)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import pytest
import torch

from tests.aggregation.scalar_task import TwoScalarTask, hand_spec
from tests.specs import resolved_optimizer
from workers.aggregation import lag_wk
from workers.aggregation.common import StaleGradients, ThresholdWindow, squared_step
from workers.training.coordinator import Coordinator
from workers.training.optim import OptimizerState, optimizer_step
from workers.training.replica import Replica

EXPECTED_UPLOADS = [{1, 2}, {2}, {1, 2}, {2}, {1, 2}, {2}, {1, 2}]
EXPECTED_THETA = [
    Fraction(1, 10),
    Fraction(11, 100),
    Fraction(1, 10),
    Fraction(99, 1000),
    Fraction(1, 10),
    Fraction(1001, 10000),
    Fraction(1, 10),
]
GRADIENTS: list[Callable[[torch.Tensor], torch.Tensor]] = [lambda t: t - 1.0, lambda t: 9.0 * t]


def test_pure_functions_follow_the_hand_computed_trajectory() -> None:
    f64 = torch.float64
    theta = torch.zeros(1, dtype=f64)
    workers = [lag_wk.LagWkState(), lag_wk.LagWkState()]
    stale = StaleGradients.zeros(2, 1, dtype=f64, device="cpu")
    window = ThresholdWindow(size=1)
    config = resolved_optimizer(name="sgd", lr=0.2)
    opt = OptimizerState()
    thetas, uploads_by_round = [], []
    for k in range(7):
        rhs = window.rhs(lr=config.lr, xi=1.0)
        uploads = {}
        for m, grad_fn in enumerate(GRADIENTS):
            grad = grad_fn(theta)
            decision = lag_wk.decide(
                workers[m], grad, round_=k, rhs=rhs, max_staleness=None, warmup_full_upload=True
            )
            if decision.upload:
                workers[m] = lag_wk.after_upload(workers[m], grad, round_=k)
                uploads[m] = grad
        stale.replace(uploads)
        new_theta, opt = optimizer_step(config, opt, theta, stale.mean())
        window = window.push(squared_step(new_theta, theta))
        theta = new_theta
        thetas.append(float(theta[0]))
        uploads_by_round.append({m + 1 for m in uploads})
    assert uploads_by_round == EXPECTED_UPLOADS
    assert sum(len(u) for u in uploads_by_round) == 11
    assert thetas == pytest.approx([float(v) for v in EXPECTED_THETA], abs=1e-15, rel=0)


def test_replicas_and_coordinator_follow_the_hand_computed_trajectory() -> None:
    spec = hand_spec()
    task = TwoScalarTask()
    coordinator = Coordinator(spec, dtype=torch.float64, task=task, per_replica_metrics=True)
    replicas = [Replica(spec, rank, dtype=torch.float64, task=task) for rank in range(2)]
    uploads_by_round, thetas = [], []
    for k in range(7):
        plan = coordinator.begin_round(k)
        assert plan.ranks == (0, 1)  # worker-side rule: everyone computes
        replies = [replicas[r].step(k, plan.params, plan.rhs) for r in plan.ranks]
        values = coordinator.end_round(k, replies)
        uploads_by_round.append({r.rank + 1 for r in replies if r.upload is not None})
        assert coordinator.uploaded == tuple(sorted(r - 1 for r in uploads_by_round[-1]))
        thetas.append(float(coordinator.params[0]))
        assert values["uploads"] + values["skips"] == 2
    assert uploads_by_round == EXPECTED_UPLOADS
    assert thetas == pytest.approx([float(v) for v in EXPECTED_THETA], abs=1e-15, rel=0)
    assert coordinator.uploads_per_worker == [4, 7]
    assert values["uploads_total"] == 11 and values["dense_equiv_uploads"] == 14
    assert values["bytes_up_total"] == 11 * 8  # one float64 per upload


def test_round_one_left_hand_sides_match_the_notes() -> None:
    """At k = 1 worker 1's change is 0.01 <= RHS 0.25 (skip), worker 2's 0.81 (upload)."""
    spec = hand_spec()
    task = TwoScalarTask()
    coordinator = Coordinator(spec, dtype=torch.float64, task=task, per_replica_metrics=True)
    replicas = [Replica(spec, rank, dtype=torch.float64, task=task) for rank in range(2)]
    for k in range(2):
        plan = coordinator.begin_round(k)
        values = coordinator.end_round(k, [r.step(k, plan.params, plan.rhs) for r in replicas])
    assert values["rhs"] == pytest.approx(0.25, rel=1e-12)
    assert values["lhs_w0"] == pytest.approx(0.01, rel=1e-12)
    assert values["lhs_w1"] == pytest.approx(0.81, rel=1e-12)
    assert values["staleness_w0"] == 1 and values["staleness_w1"] == 0


def test_dense_makes_fourteen_uploads_on_the_same_problem() -> None:
    spec = hand_spec(strategy="dense")
    task = TwoScalarTask()
    coordinator = Coordinator(spec, dtype=torch.float64, task=task)
    replicas = [Replica(spec, rank, dtype=torch.float64, task=task) for rank in range(2)]
    for k in range(7):
        plan = coordinator.begin_round(k)
        values = coordinator.end_round(k, [r.step(k, plan.params, plan.rhs) for r in replicas])
    assert values["uploads_total"] == 14
