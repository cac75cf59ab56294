"""The allocation-free pieces of the coordinator's step give exactly what the plain
forms give: the finite check by a sum, the window's squared step on kept scratch,
the in-place clip, and the read-only view of θ a plan carries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workers.aggregation.common import SquaredStepMeter, clip_by_norm, clip_by_norm_
from workers.training.flat import all_finite, read_only_view


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_finite_agrees_with_isfinite_including_an_overflowing_sum(
    dtype: torch.dtype,
) -> None:
    big = torch.finfo(dtype).max
    cases = [
        torch.randn(1000, dtype=dtype),
        torch.tensor([1.0, math.nan, 2.0], dtype=dtype),
        torch.tensor([1.0, math.inf, 2.0], dtype=dtype),
        torch.tensor([-math.inf, math.inf], dtype=dtype),
        torch.tensor([big, big, big], dtype=dtype),  # finite values, non-finite sum
    ]
    for vector in cases:
        assert all_finite(vector) == bool(torch.isfinite(vector).all())


def _plain_squared_step(new: torch.Tensor, old: torch.Tensor, metric: torch.Tensor | None) -> float:
    diff = (new.to(torch.float64) - old.to(torch.float64)) * (
        1.0 if metric is None else metric.to(torch.float64)
    )
    return float(torch.dot(diff, diff))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_kept_scratch_squared_step_is_bit_identical(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(3)
    meter = SquaredStepMeter(5000, device="cpu")
    for _ in range(3):  # the scratch is reused: no round leaks into the next
        old = torch.randn(5000, generator=generator, dtype=dtype)
        new = old + 1e-3 * torch.randn(5000, generator=generator, dtype=dtype)
        metric = torch.rand(5000, generator=generator, dtype=dtype) + 0.5
        assert meter(new, old, metric) == _plain_squared_step(new, old, metric)
        assert meter(new, old, None) == _plain_squared_step(new, old, None)


def test_the_in_place_clip_is_the_same_multiplication() -> None:
    vector = torch.randn(1000, generator=torch.Generator().manual_seed(1)) * 10
    expected = clip_by_norm(vector, 1.0)
    scratch = vector.clone()
    assert clip_by_norm_(scratch, 1.0) is scratch
    assert torch.equal(scratch, expected)
    assert torch.equal(clip_by_norm_(vector.clone(), 1e9), vector)


def test_a_plan_view_of_theta_shares_it_and_cannot_be_written() -> None:
    theta = torch.arange(4, dtype=torch.float32)
    view = read_only_view(theta)
    assert np.shares_memory(view, theta.numpy())
    with pytest.raises(ValueError):
        view[0] = 1.0
