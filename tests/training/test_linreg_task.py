"""lag_paper_linreg: the data, the closed forms the schema relies on, and the
optimality gap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from service.schemas.defaults import linreg_mean_smoothness, linreg_smoothness
from service.schemas.resolve import resolve
from workers.training.flat import flat_grad, load_flat
from workers.training.tasks.linreg import LinregTask
from workers.training.tasks.registry import build_task


@pytest.mark.parametrize("uniform", [False, True])
def test_smoothness_closed_forms_match_the_spectra(uniform: bool) -> None:
    task = LinregTask(workers=9, uniform=uniform, dtype=torch.float64)
    per_worker = [np.linalg.eigvalsh(x.T @ x).max() for x in task.matrices64]
    np.testing.assert_allclose(per_worker, linreg_smoothness(9, uniform), rtol=1e-12)
    assert task.smoothness == linreg_smoothness(9, uniform)
    mean_hessian = sum(x.T @ x for x in task.matrices64) / 9
    assert np.linalg.eigvalsh(mean_hessian).max() == pytest.approx(
        linreg_mean_smoothness(9, uniform), rel=1e-12
    )


def test_minimal_spec_is_the_papers_setting() -> None:
    spec = resolve({"task": {"kind": "lag_paper_linreg"}})
    task = build_task(spec, dtype=torch.float64)
    assert isinstance(task, LinregTask)
    assert task.num_workers == 9 and task.dim == 50
    assert spec.schedule.batch_size == "full" and spec.optimizer.name == "sgd"
    # The gang (9 replicas + the driver) fits a small Ray: 3.25 CPUs, not 10.
    assert spec.distributed.cpus_per_worker == 0.25
    explicit = {"task": {"kind": "lag_paper_linreg"}, "distributed": {"cpus_per_worker": 1}}
    assert resolve(explicit).distributed.cpus_per_worker == 1.0
    assert spec.optimizer.lr == pytest.approx(1 / linreg_mean_smoothness(9, False))
    scales = [np.linalg.eigvalsh(x).max() - 1 for x in task.matrices64]
    np.testing.assert_allclose(scales, 1.3 ** np.arange(9), rtol=1e-12)


def test_data_is_seeded_and_the_directions_orthonormal() -> None:
    a = LinregTask(workers=4, seed=3, dtype=torch.float64)
    b = LinregTask(workers=4, seed=3, dtype=torch.float64)
    c = LinregTask(workers=4, seed=4, dtype=torch.float64)
    np.testing.assert_array_equal(a.matrices64, b.matrices64)
    assert not np.allclose(a.matrices64, c.matrices64)
    directions = np.stack([np.linalg.eigh(x)[1][:, -1] for x in a.matrices64], axis=1)
    np.testing.assert_allclose(np.abs(directions.T @ directions), np.eye(4), atol=1e-10)


def test_full_batch_loss_and_gradient_are_the_papers() -> None:
    task = LinregTask(workers=3, dtype=torch.float64)
    model = task.build_model()
    theta = np.random.default_rng(0).standard_normal(50)
    load_flat(model, torch.from_numpy(theta))
    for rank in range(3):
        x, y = task.matrices64[rank], task.targets64
        model.zero_grad()
        loss = task.loss(model, task.batch(rank, 0, None))
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        assert float(loss.detach()) == pytest.approx(0.5 * np.sum((x @ theta - y) ** 2), rel=1e-12)
        np.testing.assert_allclose(flat_grad(model).numpy(), x.T @ (x @ theta - y), rtol=1e-12)


def test_minibatches_are_deterministic_distinct_rows_and_unbiased() -> None:
    task = LinregTask(workers=2, dtype=torch.float64)
    first = task.batch(1, 5, 10)
    again = task.batch(1, 5, 10)
    assert first.size == 10 and torch.equal(first.inputs, again.inputs)
    assert not torch.equal(first.inputs, task.batch(1, 6, 10).inputs)
    assert not torch.equal(first.inputs, task.batch(0, 5, 10).inputs)
    assert len({tuple(row.tolist()) for row in first.inputs}) == 10
    # Averaged over many rounds the minibatch loss estimates the full loss.
    model = task.build_model()
    load_flat(model, torch.full((50,), 0.1, dtype=torch.float64))
    with torch.no_grad():
        full = float(task.loss(model, task.batch(0, 0, None)))
        estimates = [float(task.loss(model, task.batch(0, k, 10))) for k in range(2000)]
    assert np.mean(estimates) == pytest.approx(full, rel=0.05)


def test_optimality_gap_is_the_objective_gap() -> None:
    task = LinregTask(workers=9, dtype=torch.float64)
    model = task.build_model()
    assert task.optimality_gap(task.optimum64) == pytest.approx(0.0, abs=1e-20)
    f_star = task.objective(task.optimum64)
    theta = task.optimum64 + 1e-3 * np.random.default_rng(1).standard_normal(50)
    load_flat(model, torch.from_numpy(theta))
    values = task.evaluate(model)
    assert values["optimality_gap"] == pytest.approx(task.objective(theta) - f_star, rel=1e-6)
    assert values["val_loss"] == pytest.approx(task.objective(theta) / 9, rel=1e-12)
    # The gradient of f vanishes at θ*.
    grad = sum(x.T @ (x @ task.optimum64 - task.targets64) for x in task.matrices64)
    assert np.abs(grad).max() < 1e-10


def test_workers_beyond_the_dimension_are_rejected() -> None:
    with pytest.raises(ValueError, match="workers"):
        LinregTask(workers=6, dim=5)
