"""The in-process reference runner, and the Replica / Coordinator pair it drives:
metric accounting, checkpoint and resume, stopping, divergence, replica errors."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from tests.training.task_helpers import CADA2_MINIBATCH
from tests.training.task_helpers import linreg_spec as linreg
from workers.training.coordinator import Coordinator
from workers.training.replica import Replica
from workers.training.rounds import Diverged
from workers.training.runner import run_reference
from workers.training.tasks import registry
from workers.training.tasks.base import Batch
from workers.training.tasks.linreg import LinregTask, build_linreg_task

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def collect(spec: ResolvedSpec, **kwargs: Any) -> tuple[list[dict[str, float]], Any]:
    records: list[dict[str, float]] = []
    result = run_reference(spec, on_record=lambda _k, v: records.append(v), **kwargs)
    return records, result


def without_timing(records: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in records]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_metric_accounting(dtype: torch.dtype) -> None:
    records, result = collect(linreg("lag_wk"), dtype=dtype)
    width = 4 if dtype == torch.float32 else 8
    for k, values in enumerate(records):
        assert values["uploads"] + values["skips"] == 4
        assert values["downloads"] == 4 and values["grad_evals"] == 4
        assert values["dense_equiv_uploads"] == 4 * (k + 1)
        assert values["bytes_up_total"] == width * 50 * values["uploads_total"]
        assert values["samples_per_s"] > 0
        # optimality_gap is in every round's record; val_loss only at eval rounds.
        assert "optimality_gap" in values
        assert ("val_loss" in values) == ((k + 1) % 10 == 0)
    assert records[0]["uploads"] == 4  # every worker uploads at round 0
    assert records[-1]["uploads_total"] == sum(r["uploads"] for r in records)
    assert records[-1]["uploads_total"] == sum(result.uploads_per_worker)
    assert records[-1]["uploads_total"] < records[-1]["dense_equiv_uploads"]
    assert records[-1]["optimality_gap"] < records[9]["optimality_gap"]


def test_lag_ps_calls_only_the_workers_it_chose() -> None:
    spec = linreg("lag_ps")
    task = build_linreg_task(spec, dtype=F64)
    coordinator = Coordinator(spec, dtype=F64, task=task, per_replica_metrics=True)
    replicas = [Replica(spec, r, dtype=F64, task=task) for r in range(4)]
    called = []
    for k in range(30):
        plan = coordinator.begin_round(k)
        values = coordinator.end_round(
            k, [replicas[r].step(k, plan.params, plan.rhs) for r in plan.ranks]
        )
        called.append(len(plan.ranks))
        assert values["downloads"] == values["uploads"] == values["grad_evals"] == len(plan.ranks)
    assert called[0] == 4 and min(called) < 4
    assert "lhs_w0" in values and "rhs" in values


def test_lasg_wk2_evaluates_twice_unless_it_must_upload() -> None:
    spec = linreg("lasg_wk2", schedule={"batch_size": 10}, aggregation={"max_staleness": 5})
    records, _ = collect(spec, dtype=F64)
    assert records[0]["grad_evals"] == 4
    for values in records[1:]:
        assert values["grad_evals"] == 8 - values["forced_uploads"]
    assert sum(r["forced_uploads"] for r in records) > 0


def test_local_sgd_with_plain_sgd_lands_on_the_average() -> None:
    spec = linreg("local_sgd", schedule={"batch_size": 10}, aggregation={"local_steps": 3})
    task = build_linreg_task(spec, dtype=F64)
    coordinator = Coordinator(spec, dtype=F64, task=task)
    replicas = [Replica(spec, r, dtype=F64, task=task) for r in range(4)]
    for k in range(3):
        plan = coordinator.begin_round(k)
        replies = [replicas[r].step(k, plan.params, plan.rhs) for r in plan.ranks]
        values = coordinator.end_round(k, replies)
        average = np.mean([r.upload for r in replies if r.upload is not None], axis=0)
        np.testing.assert_allclose(coordinator.params.numpy(), average, rtol=1e-12, atol=1e-14)
        assert values["grad_evals"] == 12 and values["uploads"] == 4
        assert sum(r.samples for r in replies) == 4 * 3 * 10


def test_rounds_must_be_driven_in_order() -> None:
    spec = linreg("dense")
    task = build_linreg_task(spec, dtype=F64)
    coordinator = Coordinator(spec, dtype=F64, task=task)
    replicas = [Replica(spec, r, dtype=F64, task=task) for r in range(4)]
    with pytest.raises(RuntimeError):
        coordinator.end_round(0, [])
    plan = coordinator.begin_round(0)
    with pytest.raises(RuntimeError):
        coordinator.begin_round(1)
    with pytest.raises(RuntimeError, match="replies"):
        coordinator.end_round(0, [replicas[0].step(0, plan.params, plan.rhs)])


CHECKPOINT_CASES = {
    "lag_wk-momentum": linreg("lag_wk", optimizer={"momentum": 0.5}),
    "cada2-minibatch": linreg("lasg_wk2", **CADA2_MINIBATCH),
    "lag_ps": linreg("lag_ps"),
    "laq-full-batch": linreg("laq", aggregation={"bits": 3}),
    "laq-minibatch": linreg("laq", schedule={"batch_size": 10}, aggregation={"max_staleness": 6}),
    "local_sgd": linreg("local_sgd", schedule={"batch_size": 10}),
    "gru-dropout-lasg": resolve(
        {
            "task": {"kind": "adding", "num_samples": 128, "seq_len": 8},
            "model": {"cell": "gru", "hidden_size": 8, "num_layers": 2, "dropout": 0.2},
            "distributed": {"workers": 2},
            "aggregation": {"strategy": "lasg_wk2", "max_staleness": 4},
            "schedule": {"rounds": 12, "batch_size": 8, "eval_every": 4},
        }
    ),
}


@pytest.mark.parametrize("spec", CHECKPOINT_CASES.values(), ids=CHECKPOINT_CASES.keys())
def test_resume_from_a_checkpoint_continues_identically(spec: ResolvedSpec) -> None:
    spec = spec.model_copy(
        update={"schedule": spec.schedule.model_copy(update={"checkpoint_every": 5})}
    )
    saved: dict[int, bytes] = {}

    def keep(round_: int, checkpoint: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        saved[round_] = buffer.getvalue()

    records, full = collect(spec, dtype=F64, on_checkpoint=keep)
    # Every fifth round and the final one, as on the Ray path.
    rounds = spec.schedule.rounds
    assert sorted(saved) == [r for r in range(rounds) if (r + 1) % 5 == 0 or r == rounds - 1]
    checkpoint = torch.load(io.BytesIO(saved[4]), weights_only=True)
    assert checkpoint["next_round"] == 5
    resumed_records, resumed = collect(spec, dtype=F64, resume=checkpoint)
    assert without_timing(resumed_records) == without_timing(records[5:])
    assert np.array_equal(resumed.params, full.params)
    assert resumed.uploads_per_worker == full.uploads_per_worker
    # The checkpoint's model is an ordinary state dict of the task's model.
    model = registry.build_task(spec, dtype=F64).build_model().to(F64)
    model.load_state_dict(checkpoint["model"])


def test_should_stop_ends_early_and_the_result_resumes() -> None:
    spec = linreg("lasg_wk2", schedule={"batch_size": 10})
    records, full = collect(spec, dtype=F64)
    seen: list[dict[str, float]] = []
    stopped = run_reference(
        spec, on_record=lambda _k, v: seen.append(v), dtype=F64, should_stop=lambda: len(seen) >= 12
    )
    assert stopped.stopped and stopped.next_round == 12 and len(seen) == 12
    rest, resumed = collect(spec, dtype=F64, resume=stopped.checkpoint)
    assert not resumed.stopped and resumed.next_round == 30
    assert without_timing(seen + rest) == without_timing(records)
    assert np.array_equal(resumed.params, full.params)


def test_divergence_raises_with_the_round() -> None:
    spec = linreg("dense", optimizer={"lr": 100.0}, schedule={"rounds": 500})
    records: list[dict[str, float]] = []
    with pytest.raises(Diverged) as caught:
        run_reference(spec, on_record=lambda _k, v: records.append(v))
    assert caught.value.round == len(records) > 0
    assert all(np.isfinite(r["train_loss"]) for r in records)


def test_metrics_that_overflow_with_finite_parameters_are_a_divergence() -> None:
    # lr 36.66 on the paper task: at round 59 θ and the replicas' losses are still
    # finite (a mean loss of 1.6e302), but the optimality gap and the validation loss
    # overflow; the job used to succeed with null final metrics.
    spec = linreg(
        "lag_wk",
        distributed={"workers": 9},
        optimizer={"lr": 36.66},
        schedule={"rounds": 60, "eval_every": 20},
    )
    records: list[dict[str, float]] = []
    with pytest.raises(Diverged) as caught:
        run_reference(spec, on_record=lambda _k, v: records.append(v))
    assert caught.value.round == len(records) == 59
    figures = ("train_loss", "optimality_gap", "val_loss")
    assert all(np.isfinite(r[name]) for r in records for name in figures if name in r)
    assert records[-1]["train_loss"] > 1e290  # growing, finite: only the metrics overflow next


class _FailingLinreg(LinregTask):
    def batch(self, rank: int, round_: int, batch_size: int | None) -> Batch:
        if rank == 1 and round_ == 3:
            raise RuntimeError("shard 1 is unreadable")
        return super().batch(rank, round_, batch_size)


def test_a_replica_error_propagates_and_is_never_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(spec: ResolvedSpec, **kwargs: Any) -> LinregTask:
        return _FailingLinreg(
            workers=4,
            seed=spec.schedule.seed,
            **{k: v for k, v in kwargs.items() if k in ("dtype", "device")},
        )

    monkeypatch.setitem(registry.TASK_BUILDERS, "lag_paper_linreg", build)
    rounds: list[int] = []
    with pytest.raises(RuntimeError, match="unreadable"):
        run_reference(linreg("lag_wk"), on_record=lambda k, _v: rounds.append(k))
    assert rounds == [0, 1, 2]


@dataclass(frozen=True)
class _PoisonedBatch(Batch):
    """A batch whose gradient is NaN while its loss stays finite."""


class _NanGradientLinreg(LinregTask):
    """From round 3 on, replica 1's gradient is NaN while its loss stays finite
    (d/dθ √(0·Σθ) = 0 · ∞): a lazy test comparing NaN with its threshold skipped."""

    def batch(self, rank: int, round_: int, batch_size: int | None) -> Batch:
        batch = super().batch(rank, round_, batch_size)
        poisoned = rank == 1 and round_ >= 3
        return _PoisonedBatch(batch.inputs, batch.targets) if poisoned else batch

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        loss = super().loss(model, batch)
        if isinstance(batch, _PoisonedBatch):
            loss = loss + torch.sqrt(next(model.parameters()).sum() * 0.0)
        return loss


@pytest.mark.parametrize("strategy", ["lag_wk", "lasg_wk2", "laq", "lag_ps"])
def test_a_nan_gradient_is_uploaded_and_diverges_never_a_skip(
    strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose gradient turns NaN must stop the job (Diverged), as dense does:
    NaN > threshold is false, so the lazy tests skipped it and the job ran on with
    that worker's last gradient, ending 'succeeded' (a review)."""

    def build(spec: ResolvedSpec, **kwargs: Any) -> LinregTask:
        return _NanGradientLinreg(
            workers=4,
            seed=spec.schedule.seed,
            **{k: v for k, v in kwargs.items() if k in ("dtype", "device")},
        )

    monkeypatch.setitem(registry.TASK_BUILDERS, "lag_paper_linreg", build)
    with pytest.raises(Diverged):
        run_reference(linreg(strategy, schedule={"rounds": 20}), on_record=lambda _k, _v: None)


def test_lasg_wk2_evaluations_share_batch_and_dropout_masks() -> None:
    """With θ̂ = θ^k the two evaluations must agree exactly: LHS = 0, which holds only
    if both saw the same minibatch and the same dropout masks. It skips any positive
    threshold; at a zero threshold the tie uploads (LHS ≥ RHS, so ξ = 0 stays dense)."""
    spec = CHECKPOINT_CASES["gru-dropout-lasg"]
    replica = Replica(spec, 1, dtype=F64)
    params = torch.nn.utils.parameters_to_vector(replica.model.parameters()).detach().numpy()
    outside = torch.get_rng_state()
    first = replica.step(0, params, 0.0)
    second = replica.step(1, params, 1e-300)
    assert first.upload is not None and first.grad_evals == 1
    assert second.grad_evals == 2 and second.lhs == 0.0 and second.upload is None
    tie = replica.step(1, params, 0.0)
    assert tie.lhs == 0.0 and tie.upload is not None
    assert torch.equal(torch.get_rng_state(), outside)  # the global RNG is untouched
    # The same round's loss on another call repeats; another round's differs.
    assert replica.step(1, params, 0.0).loss == second.loss
    assert replica.step(2, params, 0.0).loss != second.loss
