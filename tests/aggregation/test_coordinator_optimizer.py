"""The coordinator's optimizer steps against torch.optim and against CADA2's
formula (AMSGrad without bias correction)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from service.schemas.resolved import ResolvedOptimizer
from tests.specs import resolved_optimizer
from workers.training.optim import OptimizerState, optimizer_step

F64 = torch.float64


def gradients(count: int, size: int = 6) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return [torch.randn(size, generator=generator, dtype=F64) for _ in range(count)]


def run_ours(config: ResolvedOptimizer, grads: list[torch.Tensor]) -> torch.Tensor:
    params, state = torch.ones(grads[0].numel(), dtype=F64), OptimizerState()
    for grad in grads:
        params, state = optimizer_step(config, state, params, grad)
    return params


def run_torch(
    make: Callable[..., torch.optim.Optimizer], grads: list[torch.Tensor], **kw: object
) -> torch.Tensor:
    param = torch.nn.Parameter(torch.ones(grads[0].numel(), dtype=F64))
    optimizer = make([param], **kw)
    for grad in grads:
        param.grad = grad.clone()
        optimizer.step()
    return param.detach()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_torch(momentum: float) -> None:
    grads = gradients(20)
    ours = run_ours(resolved_optimizer(name="sgd", lr=0.1, momentum=momentum), grads)
    theirs = run_torch(torch.optim.SGD, grads, lr=0.1, momentum=momentum)
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_with_bias_correction_matches_torch(amsgrad: bool) -> None:
    grads = gradients(30)
    config = resolved_optimizer(name="adam", lr=0.01, amsgrad=amsgrad, bias_correction=True)
    theirs = run_torch(
        torch.optim.Adam, grads, lr=0.01, betas=(0.9, 0.999), eps=1e-8, amsgrad=amsgrad
    )
    torch.testing.assert_close(run_ours(config, grads), theirs, rtol=1e-13, atol=1e-13)


def test_cada2_is_amsgrad_without_bias_correction() -> None:
    grads = gradients(30)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    theta = np.ones(6)
    h, v, v_hat = np.zeros(6), np.zeros(6), np.zeros(6)
    for grad in (g.numpy() for g in grads):
        h = b1 * h + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        v_hat = np.maximum(v_hat, v)
        theta = theta - lr * h / (np.sqrt(v_hat) + eps)
    config = resolved_optimizer(name="adam", lr=lr, amsgrad=True, bias_correction=False)
    np.testing.assert_allclose(run_ours(config, grads).numpy(), theta, rtol=1e-12, atol=0)
    # Without the correction the first step is (1 - β₁)/√(1 - β₂) ≈ 3.16 times
    # Adam's lr-sized first step in every coordinate.
    corrected = resolved_optimizer(name="adam", lr=lr, amsgrad=True, bias_correction=True)
    first = [grads[0]]
    uncorrected_step = (run_ours(config, first) - 1).abs()
    adam_step = (run_ours(corrected, first) - 1).abs()
    ratio = (1 - b1) / np.sqrt(1 - b2)
    torch.testing.assert_close(uncorrected_step, adam_step * ratio, rtol=1e-4, atol=0)  # ε


@pytest.mark.parametrize(
    "config",
    [
        resolved_optimizer(name="sgd", lr=0.1, momentum=0.5),
        resolved_optimizer(name="adam", lr=0.01, amsgrad=True, bias_correction=False),
    ],
    ids=["sgd-momentum", "cada2"],
)
def test_state_dict_round_trip_continues_identically(config: ResolvedOptimizer) -> None:
    grads = gradients(10)
    params, state = torch.ones(6, dtype=F64), OptimizerState()
    for grad in grads[:5]:
        params, state = optimizer_step(config, state, params, grad)
    restored = OptimizerState.from_state_dict(state.state_dict())
    a, b = params, params.clone()
    for grad in grads[5:]:
        a, state = optimizer_step(config, state, a, grad)
        b, restored = optimizer_step(config, restored, b, grad)
    assert torch.equal(a, b)
