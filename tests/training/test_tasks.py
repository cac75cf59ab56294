"""The Task contract for every recurrent task: determinism from the seed, shards
that partition the training data, seeded minibatches, losses, dtype and bounded
evaluation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from service.schemas.data_limits import MAX_VAL_SAMPLES
from service.schemas.metric_names import BASELINES
from tests.training.task_helpers import SMALL_TASKS, make_spec, make_task
from workers.training.tasks.base import Batch
from workers.training.tasks.char_lm import CharLMTask
from workers.training.tasks.sharded import ShardedTask

KINDS = list(SMALL_TASKS)
EXPECTED_METRIC = {
    "sequence_classification": "val_accuracy",
    "char_lm": "val_perplexity",
    "adding": "val_mse",
    "copy_memory": "val_accuracy",
}


def _task(kind: str, *, seed: int = 0, workers: int = 3, split: str = "non_iid") -> ShardedTask:
    spec = make_spec(
        SMALL_TASKS[kind],
        distributed={"workers": workers, "split": split},
        schedule={"seed": seed},
    )
    return make_task(spec)


def _same_batch(a: Batch, b: Batch) -> bool:
    return torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


def _sample_keys(batch: Batch) -> set[bytes]:
    rows = torch.cat(
        [
            batch.inputs.reshape(batch.size, -1).double(),
            batch.targets.reshape(batch.size, -1).double(),
        ],
        dim=1,
    )
    return {row.numpy().tobytes() for row in rows}


@pytest.mark.parametrize("kind", KINDS)
def test_everything_is_a_function_of_the_seed(kind: str) -> None:
    torch.manual_seed(99)
    rng_before = torch.random.get_rng_state()
    first, again, other_seed = _task(kind), _task(kind), _task(kind, seed=1)
    model_a, model_b = first.build_model(), again.build_model()
    batch = first.batch(1, 5, 8)
    assert torch.equal(rng_before, torch.random.get_rng_state())

    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert _same_batch(batch, again.batch(1, 5, 8))
    assert not _same_batch(batch, first.batch(1, 6, 8))
    assert not _same_batch(batch, first.batch(2, 5, 8))
    assert not _same_batch(batch, other_seed.batch(1, 5, 8))
    other_model = other_seed.build_model()
    assert any(
        not torch.equal(p, q)
        for p, q in zip(model_a.parameters(), other_model.parameters(), strict=True)
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("split", ["iid", "non_iid"])
def test_shards_partition_the_training_set(kind: str, split: str) -> None:
    task = _task(kind, split=split, workers=4)
    assert task.num_workers == 4 and task.smoothness is None
    sizes = [task.shard_size(rank) for rank in range(4)]
    assert max(sizes) - min(sizes) <= 1
    shard_keys = [_sample_keys(task.batch(rank, 0, None)) for rank in range(4)]
    for rank, keys in enumerate(shard_keys):
        # Generated data may repeat a sample by chance; a handful at most.
        assert len(keys) >= sizes[rank] - 2
    union = set().union(*shard_keys)
    assert len(union) >= sum(sizes) - 4
    minibatch = task.batch(2, 3, 5)
    assert minibatch.size == 5
    assert _sample_keys(minibatch) <= shard_keys[2]


def test_validation_is_held_out_before_sharding() -> None:
    task = _task("sequence_classification", workers=4)
    assert isinstance(task, ShardedTask)
    train_keys = set().union(*(_sample_keys(task.batch(r, 0, None)) for r in range(4)))
    val = Batch(task.val_inputs, task.val_targets)  # type: ignore[attr-defined]
    assert val.size == 359  # 20 % of 1,797
    assert sum(task.shard_size(r) for r in range(4)) + val.size == 1797
    # Some digits images are exact duplicates; nearly all validation samples are unseen.
    assert len(_sample_keys(val) & train_keys) <= 3


@pytest.mark.parametrize("kind", KINDS)
def test_loss_and_evaluation(kind: str) -> None:
    task = _task(kind)
    model = task.build_model()
    loss = task.loss(model, task.batch(0, 0, 8))
    assert loss.shape == () and loss.requires_grad and torch.isfinite(loss)
    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
    assert all(p.grad is not None for p in model.parameters())

    model.train()
    metrics = task.evaluate(model)
    assert model.training, "evaluate must restore the training flag"
    baseline = BASELINES.get(EXPECTED_METRIC[kind])  # every task but the paper's has one
    assert (baseline is None) == (kind == "lag_paper_linreg")
    assert set(metrics) == {"val_loss", EXPECTED_METRIC[kind]} | ({baseline} - {None})
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics == task.evaluate(model)
    if kind == "char_lm":
        assert isinstance(task, CharLMTask)
        assert metrics["val_perplexity"] == pytest.approx(torch.tensor(metrics["val_loss"]).exp())
    if EXPECTED_METRIC[kind] == "val_accuracy":
        assert 0.0 <= metrics["val_accuracy"] <= 1.0


def test_evaluation_uses_dropout_free_eval_mode() -> None:
    spec = make_spec(SMALL_TASKS["adding"], model={"hidden_size": 16, "dropout": 0.5})
    task = make_task(spec)
    model = task.build_model()
    assert task.evaluate(model) == task.evaluate(model)
    batch = task.batch(0, 0, 16)
    torch.manual_seed(0)
    first = task.loss(model, batch)
    torch.manual_seed(1)
    assert not torch.equal(first, task.loss(model, batch)), "dropout is active in training"


@pytest.mark.parametrize("kind", KINDS)
def test_float64_end_to_end(kind: str) -> None:
    spec = make_spec(SMALL_TASKS[kind], distributed={"workers": 2})
    task = make_task(spec, dtype=torch.float64)
    model = task.build_model()
    assert all(p.dtype == torch.float64 for p in model.parameters())
    batch = task.batch(0, 0, 4)
    if batch.inputs.is_floating_point():
        assert batch.inputs.dtype == torch.float64
    loss = task.loss(model, batch)
    assert loss.dtype == torch.float64
    single = make_task(spec, dtype=torch.float32)
    single_loss = single.loss(single.build_model(), single.batch(0, 0, 4))
    assert single_loss.item() == pytest.approx(loss.item(), rel=1e-4)


def test_validation_set_is_capped() -> None:
    spec = make_spec({"kind": "adding", "num_samples": 8_000, "seq_len": 4})
    task = make_task(spec)
    assert task.val_inputs.shape[0] == MAX_VAL_SAMPLES  # type: ignore[attr-defined]
    assert sum(task.shard_size(r) for r in range(task.num_workers)) == 8_000 - MAX_VAL_SAMPLES


def test_whole_shard_batch_on_a_model_is_the_full_gradient_batch() -> None:
    task = _task("sequence_classification", workers=9)
    full = task.batch(4, 0, None)
    assert full.size == task.shard_size(4)
    assert _same_batch(full, task.batch(4, 17, None))
    oversized = task.batch(4, 0, 10_000)
    assert _sample_keys(oversized) == _sample_keys(full)
    model: nn.Module = task.build_model()
    assert torch.isfinite(task.loss(model, full))
