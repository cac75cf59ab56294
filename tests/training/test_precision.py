"""model.dtype (DESIGN §11): resolved defaults, what each precision trains in, and the
stored specs from before the field existed."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from workers.training.precision import check_device, storage_dtype
from workers.training.runner import run_reference

PAPER = {"task": {"kind": "lag_paper_linreg"}, "schedule": {"rounds": 3}}


def test_defaults() -> None:
    assert resolve(PAPER).model.dtype == "float64"
    assert resolve({"task": {"kind": "adding"}}).model.dtype == "float32"
    explicit = resolve({**PAPER, "model": {"dtype": "float32"}})
    assert explicit.model.dtype == "float32"


def test_laq_defaults_follow_the_gradients_it_quantizes() -> None:
    # Full batch: the authors' LAQ (4 bits, xi 0.8); minibatch: the stochastic variant,
    # which needs 8 bits (docs/decisions.md). An explicit value stands either way.
    full = resolve({**PAPER, "aggregation": {"strategy": "laq"}}).aggregation
    assert (full.bits, full.xi, full.max_staleness) == (4, 0.8, 100)
    mini = resolve({"task": {"kind": "adding"}, "aggregation": {"strategy": "laq"}}).aggregation
    assert (mini.bits, mini.xi, mini.max_staleness) == (8, 0.1, 100)
    paper_minibatch = resolve(
        {**PAPER, "aggregation": {"strategy": "laq"}, "schedule": {"batch_size": 10}}
    ).aggregation
    assert paper_minibatch.bits == 8
    explicit = resolve(
        {"task": {"kind": "adding"}, "aggregation": {"strategy": "laq", "bits": 3, "xi": 2.0}}
    ).aggregation
    assert (explicit.bits, explicit.xi) == (3, 2.0)
    assert resolve({"task": {"kind": "adding"}}).aggregation.bits == 4  # read by laq alone


def test_one_default_xi_per_rule_whatever_the_optimizer() -> None:
    for strategy in ("lag_wk", "lasg_wk2", "laq"):
        xis = {
            resolve(
                {
                    "task": {"kind": "adding"},
                    "optimizer": {"name": name},
                    "aggregation": {"strategy": strategy},
                }
            ).aggregation.xi
            for name in ("sgd", "adam")
        }
        assert len(xis) == 1, strategy


@pytest.mark.parametrize(("dtype", "width"), [("float64", 8), ("float32", 4)])
def test_the_spec_dtype_is_what_trains_and_what_is_sent(dtype: str, width: int) -> None:
    spec = resolve({**PAPER, "model": {"dtype": dtype}})
    assert storage_dtype(spec) == getattr(torch, dtype)
    records: list[dict[str, float]] = []
    result = run_reference(spec, on_record=lambda _k, v: records.append(v))  # no dtype given
    assert result.params.dtype.itemsize == width
    assert records[0]["bytes_up_total"] == 9 * 50 * width
    assert all("optimality_gap" in r for r in records)


def test_bfloat16_keeps_float32_state_and_needs_a_supporting_device() -> None:
    spec = resolve(
        {
            "task": {"kind": "adding"},
            "model": {"dtype": "bfloat16"},
            "distributed": {"gpus_per_worker": 1},
        }
    )
    assert storage_dtype(spec) == torch.float32
    with pytest.raises(ValueError, match=r"model\.dtype"):
        check_device(spec, "cpu")


def test_specs_stored_before_dtype_and_bits_still_load() -> None:
    stored = resolve({"task": {"kind": "adding"}}).model_dump()
    del stored["model"]["dtype"], stored["aggregation"]["bits"]
    spec = ResolvedSpec.model_validate(stored)
    assert (spec.model.dtype, spec.aggregation.bits) == ("float32", 4)


@pytest.mark.skipif(
    not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
    reason="needs a GPU with bfloat16 support",
)
def test_bfloat16_autocast_on_a_gpu_keeps_float32_gradients() -> None:
    from workers.training.flat import flat_params
    from workers.training.replica import Replica

    base: dict[str, dict[str, Any]] = {
        "task": {"kind": "adding", "num_samples": 128, "seq_len": 8},
        "model": {"cell": "lstm", "hidden_size": 16},
        "distributed": {"workers": 2, "gpus_per_worker": 1},
        "schedule": {"rounds": 1, "batch_size": 8},
    }
    half = Replica(
        resolve({**base, "model": {**base["model"], "dtype": "bfloat16"}}), 0, device="cuda"
    )
    full = Replica(resolve(base), 0, device="cuda")
    params = flat_params(full.model)
    _, grad_half = half.gradient(params, 0)
    _, grad_full = full.gradient(params, 0)
    assert grad_half.dtype == torch.float32
    assert not torch.equal(grad_half, grad_full)  # the forward really ran in bfloat16
    assert torch.allclose(grad_half, grad_full, rtol=0.1, atol=1e-2)
