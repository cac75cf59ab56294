"""What each task's data is: digits as 8 x 8 sequences, the Shakespeare subset, the
generated adding and copy problems, uploads, and how non_iid shards differ."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.task_helpers import SMALL_TASKS, make_spec, make_task
from workers.training.data_files import SHAKESPEARE_PLAYS, read_bundled_digits, read_shakespeare
from workers.training.tasks.char_lm import CharLMTask, _unigram_perplexity
from workers.training.tasks.sequence import SequenceClassificationTask
from workers.training.tasks.splits import chance_accuracy
from workers.training.tasks.synthetic import (
    COPY_DELIMITER,
    AddingTask,
    CopyMemoryTask,
    make_adding,
    make_copy_memory,
)


def _shard_labels(kind: str, split: str, workers: int = 4) -> list[set[int]]:
    task = make_task(make_spec(SMALL_TASKS[kind], distributed={"workers": workers, "split": split}))
    return [set(task.batch(r, 0, None).targets.tolist()) for r in range(workers)]


def test_digits_are_eight_rows_of_eight_pixels_in_unit_range() -> None:
    task = make_task(make_spec(SMALL_TASKS["sequence_classification"]))
    batch = task.batch(0, 0, 64)
    assert batch.inputs.shape == (64, 8, 8)
    assert float(batch.inputs.min()) >= 0.0 and float(batch.inputs.max()) <= 1.0
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images / 16.0, dtype=torch.float32)
    # Every sample is one digit image, rows as steps.
    matches = (images.unsqueeze(0) == batch.inputs.unsqueeze(1)).flatten(2).all(-1)
    assert bool(matches.any(dim=1).all())


def test_digits_are_read_without_importing_scikit_learn() -> None:
    from sklearn.datasets import load_digits

    table = read_bundled_digits()
    assert table is not None, "the fast path found no bundled digits.csv.gz"
    digits = load_digits()
    assert np.array_equal(table[:, :-1], digits.data)
    assert np.array_equal(table[:, -1], digits.target)


def test_non_iid_digits_shards_hold_few_classes_iid_shards_all() -> None:
    non_iid = _shard_labels("sequence_classification", "non_iid")
    iid = _shard_labels("sequence_classification", "iid")
    assert all(len(labels) <= 4 for labels in non_iid)
    assert all(labels == set(range(10)) for labels in iid)
    ordered = [(min(s), max(s)) for s in non_iid]
    assert ordered == sorted(ordered)


def test_shakespeare_subset_and_cap() -> None:
    text = read_shakespeare(50_000)
    assert len(text) == 50_000 and text.startswith("HAMLET, PRINCE OF DENMARK")
    assert len(SHAKESPEARE_PLAYS) == 12
    whole = read_shakespeare(20_000_000)
    assert len(whole) == 1_519_392
    assert "MACBETH" in whole and "THE MERCHANT OF VENICE" in whole


def test_char_lm_non_iid_shards_are_contiguous_text_blocks() -> None:
    spec = make_spec(SMALL_TASKS["char_lm"], distributed={"workers": 2, "split": "non_iid"})
    task = make_task(spec)
    assert isinstance(task, CharLMTask)
    text = read_shakespeare(20_000)
    decode = "".join
    for rank, start in [(0, 0), (1, task.shard_size(0) * task.seq_len)]:
        shard = task.batch(rank, 0, None)
        pieces = [decode(task.vocabulary[c] for c in row) for row in shard.inputs.tolist()]
        assert "".join(pieces) == text[start : start + len(pieces) * task.seq_len]
        first_target = decode(task.vocabulary[c] for c in shard.targets[0].tolist())
        assert first_target == text[start + 1 : start + 1 + task.seq_len]
    iid = make_task(make_spec(SMALL_TASKS["char_lm"], distributed={"workers": 2, "split": "iid"}))
    assert not torch.equal(iid.batch(0, 0, None).inputs, task.batch(0, 0, None).inputs)


def test_char_lm_validation_is_the_tail_and_unigram_baseline_is_sane() -> None:
    task = make_task(make_spec(SMALL_TASKS["char_lm"]))
    assert isinstance(task, CharLMTask)
    text = read_shakespeare(20_000)
    first_val = "".join(task.vocabulary[c] for c in task.val_inputs[0].tolist())
    assert first_val == text[18_000 : 18_000 + task.seq_len]
    assert 10.0 < task.unigram_perplexity < task.vocab_size
    untrained = task.evaluate(task.build_model())["val_perplexity"]
    assert untrained > task.unigram_perplexity
    # The validation characters' own frequencies scored on them: exp of their entropy.
    counts = task.val_targets.flatten().bincount().double()
    shares = counts[counts > 0] / counts.sum()
    entropy = -(shares * shares.log()).sum()
    assert task.unigram_perplexity == pytest.approx(float(entropy.exp()), rel=1e-9)
    assert _unigram_perplexity(np.array([[0, 0], [1, 1]])) == pytest.approx(2.0)  # two, even


def test_adding_problem_structure_and_chance_level() -> None:
    inputs, targets = make_adding(2_000, 30, seed=3)
    markers = inputs[:, :, 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :15].sum(axis=1) == 1)
    assert np.allclose((inputs[:, :, 0] * markers).sum(axis=1), targets)
    assert np.var(targets) == pytest.approx(1 / 6, abs=0.02)
    task = make_task(make_spec(SMALL_TASKS["adding"]))
    assert isinstance(task, AddingTask)
    assert task.chance_mse == pytest.approx(1 / 6, abs=0.03)
    # The MSE of answering the validation targets' mean, from the task's own tensors.
    val = task.val_targets.double()
    assert task.chance_mse == pytest.approx(float(((val - val.mean()) ** 2).mean()), rel=1e-5)


def test_non_iid_adding_shards_are_sorted_by_target() -> None:
    spec = make_spec(SMALL_TASKS["adding"], distributed={"workers": 4, "split": "non_iid"})
    task = make_task(spec)
    shards = [task.batch(r, 0, None).targets for r in range(4)]
    for lower, upper in itertools.pairwise(shards):
        assert float(lower.max()) <= float(upper.min())


def test_copy_memory_structure() -> None:
    inputs, targets = make_copy_memory(100, 12, 5, seed=0)
    assert inputs.shape == targets.shape == (100, 12 + 10)
    assert np.all((inputs[:, :5] >= 1) & (inputs[:, :5] <= 8))
    assert np.all(inputs[:, 5 + 11] == COPY_DELIMITER)
    assert np.all(inputs[:, 5:15] == 0) and np.all(inputs[:, 17:] == 0)
    assert np.array_equal(targets[:, -5:], inputs[:, :5])
    assert np.all(targets[:, :-5] == 0)
    task = make_task(make_spec(SMALL_TASKS["copy_memory"]))
    assert isinstance(task, CopyMemoryTask)
    assert task.chance_loss == pytest.approx(8 * math.log(8) / (12 + 16))
    assert 1 / 8 <= task.chance_accuracy < 0.2  # eight symbols, near-equally frequent
    # (tests/training/test_baselines.py ties it to the steps val_accuracy scores)


def test_chance_accuracy_is_the_most_frequent_validation_labels_share() -> None:
    assert chance_accuracy(np.array([1, 0, 1, 2])) == 0.5
    # Per step: 1 then 2 are each step's majority (4 of 6), though no label is (3 of 6).
    assert chance_accuracy(np.array([[1, 2], [1, 2], [2, 1]])) == pytest.approx(4 / 6)
    assert chance_accuracy(np.array([7])) == 1.0
    task = make_task(make_spec(SMALL_TASKS["sequence_classification"]))
    assert isinstance(task, SequenceClassificationTask)
    counts = task.val_targets.bincount()
    assert task.chance_accuracy == pytest.approx(float(counts.max() / counts.sum()))
    assert 0.1 <= task.chance_accuracy < 0.2  # digits: ten near-equal classes


def test_generated_data_depends_on_the_seed() -> None:
    assert np.array_equal(make_adding(64, 10, seed=1)[1], make_adding(64, 10, seed=1)[1])
    assert not np.array_equal(make_adding(64, 10, seed=1)[1], make_adding(64, 10, seed=2)[1])


def _write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_uploaded_sequence_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["label," + ",".join(f"x{i}" for i in range(12))]
    for n in range(40):
        label = n % 3
        rows.append(f"{label}," + ",".join(f"{v:.4f}" for v in rng.random(12) + label))
    csv_path = _write_csv(tmp_path / "seq.csv", rows)
    spec = make_spec(
        {"kind": "sequence_classification", "dataset": "upload:11", "seq_len": 4},
        distributed={"workers": 2, "split": "iid"},
    )
    task = make_task(spec, uploads={"11": csv_path})
    batch = task.batch(0, 0, None)
    assert batch.inputs.shape[1:] == (4, 3)
    assert task.num_classes == 3  # type: ignore[attr-defined]
    assert sum(task.shard_size(r) for r in range(2)) == 32
    # Step-major layout: the first step of the first data row is its first 3 values.
    every_input = torch.cat([task.batch(1, 0, None).inputs, batch.inputs, task.val_inputs])  # type: ignore[attr-defined]
    first_step = torch.tensor([float(v) for v in rows[1].split(",")[1:4]])
    assert bool(torch.isclose(every_input[:, 0], first_step).all(dim=1).any())


@pytest.mark.parametrize(
    ("rows", "seq_len", "workers", "field"),
    [
        (["0,1,2,3", "1,4,5,6", "0,1,1,1"], 2, 1, "task.seq_len"),
        (["0,1,2", "1,4,5,6,7"], 2, 1, "task.dataset"),
        (["0,1,x", "1,4,5"], 2, 1, "task.dataset"),
        (["-1,1,2", "1,4,5"], 2, 1, "task.dataset"),
        (["0,1,2", "1,4,5", "0,3,3"], 2, 4, "distributed.workers"),
        (["0,1,2", "0,4,5", "0,3,3"], 2, 1, "task.dataset"),
        (["label,a,b"], 2, 1, "task.dataset"),
    ],
)
def test_bad_uploaded_csv_names_the_field(
    tmp_path: Path, rows: list[str], seq_len: int, workers: int, field: str
) -> None:
    csv_path = _write_csv(tmp_path / "bad.csv", rows)
    spec = make_spec(
        {"kind": "sequence_classification", "dataset": "upload:12", "seq_len": seq_len},
        distributed={"workers": workers},
    )
    with pytest.raises(ValueError, match=re.escape(field)):
        make_task(spec, uploads={"12": csv_path})


def test_uploaded_text_for_char_lm(tmp_path: Path) -> None:
    text = "the quick brown fox jumps over the lazy dog\r\n" * 60
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    spec = make_spec(
        {"kind": "char_lm", "dataset": "upload:13", "seq_len": 16, "max_chars": 1_000},
        distributed={"workers": 2},
    )
    task = make_task(spec, uploads={"13": path})
    assert isinstance(task, CharLMTask)
    assert "\r" not in task.vocabulary and "\n" in task.vocabulary
    assert task.vocab_size == len(set(text.replace("\r", "")))
    too_long = make_spec(
        {"kind": "char_lm", "dataset": "upload:13", "seq_len": 200, "max_chars": 1_000}
    )
    with pytest.raises(ValueError, match=r"task\.seq_len"):
        make_task(too_long, uploads={"13": path})


def test_a_bom_is_not_in_the_char_lm_vocabulary(tmp_path: Path) -> None:
    text = "the quick brown fox jumps over the lazy dog\n" * 60
    path = tmp_path / "notepad.txt"
    path.write_bytes("\ufeff".encode() + text.encode("utf-8"))
    spec = make_spec(
        {"kind": "char_lm", "dataset": "upload:13", "seq_len": 16, "max_chars": 1_000},
        distributed={"workers": 2},
    )
    task = make_task(spec, uploads={"13": path})
    assert isinstance(task, CharLMTask)
    assert "\ufeff" not in task.vocabulary
    assert task.vocab_size == len(set(text))
