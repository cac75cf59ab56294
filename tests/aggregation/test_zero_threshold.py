"""A zero threshold is the dense baseline: with xi = 0 (every changed gradient
beats RHS = 0), or with max_staleness = 1 (every round forces an upload), lag_wk
and lasg_wk2 must reproduce dense's trajectory on the same minibatches, with SGD
and with CADA2's AMSGrad-without-bias-correction step alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from service.schemas.resolve import resolve
from workers.aggregation import lag_wk, lasg_wk2
from workers.training.runner import RunResult, run_reference

SGD = {"name": "sgd"}
CADA2 = {"name": "adam", "lr": 0.01, "amsgrad": True, "bias_correction": False}
ZERO_THRESHOLDS = {"xi0": {"xi": 0.0}, "staleness1": {"max_staleness": 1}}

LINREG = {
    "task": {"kind": "lag_paper_linreg"},
    "distributed": {"workers": 4},
    "schedule": {"rounds": 30, "batch_size": 10, "eval_every": 1},
}
# Two layers and dropout, so the dropout masks (between and after the layers) must
# repeat exactly; clipping is on (clip_grad_norm defaults to 1.0).
LSTM = {
    "task": {"kind": "adding", "num_samples": 128, "seq_len": 8},
    "model": {"cell": "lstm", "hidden_size": 8, "num_layers": 2, "dropout": 0.3},
    "distributed": {"workers": 2},
    "schedule": {"rounds": 8, "batch_size": 8, "eval_every": 4},
}


def run(
    base: dict[str, Any], strategy: str, optimizer: dict[str, Any], **agg: Any
) -> tuple[list[dict[str, float]], RunResult]:
    spec = resolve({**base, "optimizer": optimizer, "aggregation": {"strategy": strategy, **agg}})
    records: list[dict[str, float]] = []
    result = run_reference(spec, on_record=lambda _k, v: records.append(v), dtype=torch.float64)
    return records, result


_DENSE: dict[str, tuple[list[dict[str, float]], RunResult]] = {}


def dense_run(
    base: dict[str, Any], optimizer: dict[str, Any]
) -> tuple[list[dict[str, float]], RunResult]:
    key = repr((base, optimizer))
    if key not in _DENSE:
        _DENSE[key] = run(base, "dense", optimizer)
    return _DENSE[key]


def assert_same_trajectory(
    base: dict[str, Any], strategy: str, optimizer: dict[str, Any], agg: dict[str, Any]
) -> None:
    dense_records, dense = dense_run(base, optimizer)
    lazy_records, lazy = run(base, strategy, optimizer, **agg)
    workers = base["distributed"]["workers"]
    assert [r["uploads"] for r in lazy_records] == [workers] * len(dense_records)
    for want, got in zip(dense_records, lazy_records, strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], abs=1e-10, rel=0)
        assert set(want) - {"samples_per_s"} <= set(got)
        if "val_loss" in want:
            assert got["val_loss"] == pytest.approx(want["val_loss"], abs=1e-10, rel=0)
    np.testing.assert_allclose(lazy.params, dense.params, rtol=0, atol=1e-10)
    assert not np.allclose(dense.params, 0.0)  # the run really moved


@pytest.mark.parametrize("agg", ZERO_THRESHOLDS.values(), ids=ZERO_THRESHOLDS.keys())
@pytest.mark.parametrize("optimizer", [SGD, CADA2], ids=["sgd", "cada2"])
@pytest.mark.parametrize("strategy", ["lag_wk", "lasg_wk2"])
def test_linreg_minibatch_zero_threshold_is_dense(
    strategy: str, optimizer: dict[str, Any], agg: dict[str, Any]
) -> None:
    assert_same_trajectory(LINREG, strategy, optimizer, agg)


@pytest.mark.parametrize("optimizer", [SGD, CADA2], ids=["sgd", "cada2"])
@pytest.mark.parametrize("strategy", ["lag_wk", "lasg_wk2"])
def test_lstm_with_dropout_zero_threshold_is_dense(
    strategy: str, optimizer: dict[str, Any]
) -> None:
    assert_same_trajectory(LSTM, strategy, optimizer, {"xi": 0.0})


def test_forced_uploads_are_counted_with_max_staleness_one() -> None:
    records, _ = run(LINREG, "lasg_wk2", SGD, max_staleness=1)
    assert records[0]["forced_uploads"] == 0  # round 0 is the warm-up upload
    assert all(r["forced_uploads"] == 4 for r in records[1:])
    # A forced upload skips the anchor evaluation: one gradient per worker-round.
    assert all(r["grad_evals"] == 4 for r in records)


def test_a_tie_uploads_a_fresh_minibatch_gradient_and_skips_an_unchanged_full_one() -> None:
    """At ξ = 0 with θ unchanged since the last upload both sides are 0. LASG-WK2 (LHS ≥
    RHS, LAG-NOTES) uploads: the server holds an older minibatch's gradient, so skipping
    would break "ξ = 0 is dense". LAG-WK (LHS > RHS) skips: the full gradient it would
    send is the one the server holds."""
    grad = torch.linspace(-1.0, 1.0, 5)
    assert lasg_wk2.decide(grad, grad.clone(), rhs=0.0).upload
    held = lag_wk.LagWkState(last_upload=grad.clone(), last_upload_round=0)
    decision = lag_wk.decide(
        held, grad.clone(), round_=1, rhs=0.0, max_staleness=None, warmup_full_upload=True
    )
    assert not decision.upload
