"""The pure pieces of the aggregation rules, one behaviour at a time."""

from __future__ import annotations

import pytest
import torch

from workers.aggregation import lag_ps, lag_wk, lasg_wk2, local_sgd
from workers.aggregation.common import (
    StaleGradients,
    ThresholdWindow,
    clip_by_norm,
    clip_by_norm_,
    skip_test,
    staleness_due,
)

F64 = torch.float64


def vec(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def test_window_keeps_the_newest_d_steps_and_scales_by_xi_over_d_and_lr() -> None:
    window = ThresholdWindow(size=3)
    assert window.rhs(lr=0.5, xi=1.0) == 0.0  # round 0: nothing to compare against
    for step in (1.0, 2.0, 4.0, 8.0):
        window = window.push(step)
    assert window.sq_steps == (8.0, 4.0, 2.0)
    # (xi / D) * sum / lr² = (3/3) * 14 / 0.25
    assert window.rhs(lr=0.5, xi=3.0) == pytest.approx(56.0)
    # While k < D the window is short but ξ_d stays xi / D.
    assert ThresholdWindow(size=4).push(2.0).rhs(lr=1.0, xi=1.0) == pytest.approx(0.5)
    assert window.rhs(lr=0.5, xi=0.0) == 0.0


def test_skip_test_uploads_only_strictly_above_the_threshold() -> None:
    assert skip_test(1.0, 0.5).upload
    assert not skip_test(0.5, 0.5).upload
    assert skip_test(1e-300, 0.0).upload
    nan = float("nan")  # a gradient gone NaN: uploaded (then Diverged), never a skip
    assert skip_test(nan, 0.5).upload and skip_test(nan, 0.5, tie_uploads=True).upload


def test_staleness_forces_after_max_staleness_rounds() -> None:
    assert not staleness_due(5, 3, None)
    assert not staleness_due(5, -1, 1)  # never uploaded: not a staleness matter
    assert staleness_due(4, 3, 1)
    assert not staleness_due(5, 3, 3) and staleness_due(6, 3, 3)


def test_lag_wk_compares_with_the_last_uploaded_gradient() -> None:
    state = lag_wk.LagWkState()
    first = lag_wk.decide(
        state, vec(1.0, 0.0), round_=0, rhs=0.0, max_staleness=None, warmup_full_upload=True
    )
    assert first.upload and not first.forced
    state = lag_wk.after_upload(state, vec(1.0, 0.0), round_=0)
    near = lag_wk.decide(
        state, vec(1.1, 0.0), round_=1, rhs=0.02, max_staleness=None, warmup_full_upload=True
    )
    assert not near.upload and near.lhs == pytest.approx(0.01)
    far = lag_wk.decide(
        state, vec(1.0, 0.2), round_=1, rhs=0.02, max_staleness=None, warmup_full_upload=True
    )
    assert far.upload and far.lhs == pytest.approx(0.04)
    forced = lag_wk.decide(
        state, vec(1.0, 0.0), round_=3, rhs=1.0, max_staleness=3, warmup_full_upload=True
    )
    assert forced.upload and forced.forced


def test_lag_wk_without_warmup_tests_against_zero() -> None:
    state = lag_wk.LagWkState()
    zero = lag_wk.decide(
        state, vec(0.0, 0.0), round_=0, rhs=0.0, max_staleness=None, warmup_full_upload=False
    )
    assert not zero.upload
    some = lag_wk.decide(
        state, vec(0.0, 1e-3), round_=0, rhs=0.0, max_staleness=None, warmup_full_upload=False
    )
    assert some.upload


def test_lasg_wk2_needs_an_anchor_and_compares_same_sample_gradients() -> None:
    state = lasg_wk2.LasgWk2State()
    assert lasg_wk2.pre_decision(state, round_=0, max_staleness=50) is not None
    state = lasg_wk2.after_upload(state, vec(1.0, 2.0), round_=0)
    assert state.anchor is not None and state.last_upload_round == 0
    assert lasg_wk2.pre_decision(state, round_=1, max_staleness=50) is None
    forced = lasg_wk2.pre_decision(state, round_=50, max_staleness=50)
    assert forced is not None and forced.forced
    decision = lasg_wk2.decide(vec(1.0, 1.0), vec(1.0, 0.5), rhs=0.2)
    assert decision.upload and decision.lhs == pytest.approx(0.25)
    assert lasg_wk2.decide(vec(1.0, 1.0), vec(1.0, 0.5), rhs=0.25).upload  # LHS ≥ RHS
    assert not lasg_wk2.decide(vec(1.0, 1.0), vec(1.0, 0.5), rhs=0.26).upload


def test_lag_ps_selects_by_smoothness_times_distance() -> None:
    state = lag_ps.LagPsState.initial(3, 2, dtype=F64, device="cpu")
    first = lag_ps.select(
        state, vec(0.0, 0.0), smoothness=[1, 2, 3], round_=0, rhs=0.0, max_staleness=None
    )
    assert [d.upload for d in first] == [True, True, True]
    state = lag_ps.after_uploads(state, vec(0.0, 0.0), ranks=[0, 1, 2], round_=0)
    # ‖θ̂ - θ‖² = 0.01: L² · 0.01 = 0.01, 0.04, 0.09 against RHS 0.03.
    decisions = lag_ps.select(
        state, vec(0.1, 0.0), smoothness=[1, 2, 3], round_=1, rhs=0.03, max_staleness=None
    )
    assert [d.upload for d in decisions] == [False, True, True]
    assert decisions[2].lhs == pytest.approx(0.09)
    state = lag_ps.after_uploads(state, vec(0.1, 0.0), ranks=[1, 2], round_=1)
    assert state.last_upload_round == (0, 1, 1)
    assert torch.equal(state.anchors[0], vec(0.0, 0.0))
    assert torch.equal(state.anchors[1], vec(0.1, 0.0))
    forced = lag_ps.select(
        state, vec(0.1, 0.0), smoothness=[1, 2, 3], round_=2, rhs=1.0, max_staleness=2
    )
    assert [d.forced for d in forced] == [True, False, False]


def test_stale_store_replaces_rows_and_resums_them() -> None:
    store = StaleGradients.zeros(3, 2, dtype=F64, device="cpu")
    store.replace({0: vec(3.0, 0.0), 2: vec(0.0, 3.0)})
    assert torch.equal(store.mean(), vec(1.0, 1.0))
    store.replace({0: vec(0.0, 0.0)})
    assert torch.equal(store.mean(), vec(0.0, 1.0))
    assert store.uploaded.tolist() == [True, False, True]


def test_float32_aggregate_does_not_drift_over_many_replacements() -> None:
    """Re-summing the rows keeps the aggregate equal to the mean of what is held,
    where adding float32 innovations would accumulate round-off."""
    generator = torch.Generator().manual_seed(0)
    store = StaleGradients.zeros(4, 64, dtype=torch.float32, device="cpu")
    for step in range(2000):
        rank = step % 4
        store.replace({rank: torch.randn(64, generator=generator) * 1e3})
    exact = store.rows.to(F64).mean(dim=0)
    assert torch.allclose(store.mean().to(F64), exact, rtol=0, atol=1e-3)


def test_clip_by_norm_matches_torch() -> None:
    generator = torch.Generator().manual_seed(1)
    grad = torch.randn(10, generator=generator, dtype=F64) * 5
    param = torch.nn.Parameter(torch.zeros(10, dtype=F64))
    param.grad = grad.clone()
    torch.nn.utils.clip_grad_norm_([param], max_norm=1.0)
    assert torch.allclose(clip_by_norm(grad, 1.0), param.grad, rtol=1e-14, atol=0)
    assert torch.equal(clip_by_norm(grad, None), grad)
    assert torch.equal(clip_by_norm(grad, 1e9), grad)


def test_local_steps_and_the_pseudo_gradient() -> None:
    def oracle(step: int, params: torch.Tensor) -> tuple[float, torch.Tensor]:
        return float(params.sum()), params - vec(1.0, 1.0)  # gradient of ½‖θ - 1‖²

    final, losses = local_sgd.local_steps(
        vec(0.0, 0.0), oracle, steps=2, lr=0.5, clip_grad_norm=None
    )
    assert torch.allclose(final, vec(0.75, 0.75)) and losses == [0.0, 1.0]
    averaged = vec(0.5, 1.0)
    pseudo = local_sgd.pseudo_gradient(vec(1.0, 1.0), averaged, lr=0.5)
    assert torch.allclose(vec(1.0, 1.0) - 0.5 * pseudo, averaged)


def test_clipping_a_float32_vector_whose_squares_overflow_keeps_its_direction() -> None:
    """Entries of 1e20 are finite in float32, their squares are not: the norm read as
    inf, the clip factor was 0 and every step was zero, with no error (a review)."""
    vector = torch.full((4,), 1e20, dtype=torch.float32)
    for clip in (clip_by_norm, clip_by_norm_):
        clipped = clip(vector.clone(), 1.0)
        assert torch.allclose(clipped, torch.full((4,), 0.5)), clipped
