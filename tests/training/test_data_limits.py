"""service.schemas.data_limits agrees with the data and the workers: the builtin
shapes are the real ones, an upload's shape is counted the way the worker reads
the file, and ResolvedSpec rejects builtin and generated misfits by field."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from service.schemas.data_limits import (
    DIGITS_CLASSES,
    DIGITS_ROWS,
    DIGITS_VALUES,
    SHAKESPEARE_CHARS,
    SHAKESPEARE_DISTINCT_CHARS,
    CsvShape,
    TextShape,
    min_samples_for,
    training_samples,
)
from service.schemas.datasets import DatasetRejected, validate_dataset
from service.schemas.resolve import SpecError
from tests.training.task_helpers import make_spec
from workers.training.data_files import (
    load_digits_sequences,
    read_sequence_csv,
    read_shakespeare,
    read_text_file,
)


def test_builtin_shapes_match_the_data() -> None:
    text = read_shakespeare(20_000_000)
    assert (len(text), len(set(text))) == (SHAKESPEARE_CHARS, SHAKESPEARE_DISTINCT_CHARS)
    sequences, labels = load_digits_sequences(1)
    assert sequences.shape == (DIGITS_ROWS, 1, DIGITS_VALUES)
    assert int(labels.min()) == 0 and int(labels.max()) + 1 == DIGITS_CLASSES


def test_min_samples_is_the_first_count_that_leaves_one_per_worker() -> None:
    for workers in (1, 4, 10, 256):
        need = min_samples_for(workers)
        assert training_samples(need) >= workers > training_samples(need - 1)


def test_csv_shape_uses_the_workers_row_rules(tmp_path: Path) -> None:
    content = "\n \nlabel,a,b\n\n2,0.5,1\n0,1e-3,2\n,\n"
    shape = validate_dataset(content.encode(), "csv")
    assert shape == CsvShape(rows=2, columns=3, integer_labels=True, classes=3)
    path = tmp_path / "d.csv"
    path.write_text(content, encoding="utf-8")
    _inputs, labels = read_sequence_csv(path, 2)
    assert len(labels) == shape.rows and int(labels.max()) + 1 == shape.classes
    for bad_labels in (b"0,1\n1.5,2\n", b"0,1\n-1,2\n"):
        shape = validate_dataset(bad_labels, "csv")
        assert isinstance(shape, CsvShape) and not shape.integer_labels
    # A first row whose label is an integer is data, as on the worker, so it must parse.
    with pytest.raises(DatasetRejected, match="not a finite number"):
        validate_dataset(b"3,abc\n1,2\n", "csv")


def test_a_last_line_is_split_only_where_the_worker_splits_it(tmp_path: Path) -> None:
    """A last line without its newline was split by str.splitlines, at \\v too: two
    rows of 2 columns at upload, one row of 3 on the worker, where "3\\v4" is no
    number (a review). Now one row at upload too, refused: not the worker's failure."""
    content = b"0,1\n2,3\x0b4,5"
    with pytest.raises(DatasetRejected, match=r"data row 2 \(line 2\) has 3 columns"):
        validate_dataset(content, "csv")
    path = tmp_path / "vt.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"task\.dataset: CSV line 2"):
        read_sequence_csv(path, 1)


def test_a_quoted_cell_with_a_line_break_is_refused_at_upload() -> None:
    """Numbers never hold a line break, and the csv module held such a record whole
    across any number of lines (memory: tests/training/test_upload_stream.py); its
    cells also measured half their length where \\r\\n ran inside them, passing a
    field the worker's csv module then refused (a review)."""
    with pytest.raises(DatasetRejected, match="line 2: a quoted cell runs onto the next"):
        validate_dataset(b'0,1\n1,"2\r\n"\n', "csv")
    assert validate_dataset(b'0,"1"\n1,"2"\n', "csv") == CsvShape(
        rows=2, columns=2, integer_labels=True, classes=2
    ), "quoted numbers on their line are numbers"
    # A quote left open on the last line runs onto no other line: read as the worker
    # reads it (a review: it was refused, saying it ran onto the next line).
    assert validate_dataset(b'0,1\n1,"2', "csv") == CsvShape(
        rows=2, columns=2, integer_labels=True, classes=2
    )


def test_values_beyond_float32_are_refused_at_upload() -> None:
    """Finite in float64, infinite in the default float32 model: its first gradient
    was NaN (a review)."""
    with pytest.raises(DatasetRejected, match="within float32's range"):
        validate_dataset(b"0,1e39,2\n", "csv")
    # numpy's float32 maximum as it prints it, and its neighbours around the overflow
    assert isinstance(validate_dataset(b"0,3.4028235e38,-3.4028235e38\n", "csv"), CsvShape)
    assert np.isfinite(np.float32(3.4028235e38)) and np.isinf(np.float32(3.4028236e38))
    with pytest.raises(DatasetRejected, match="within float32's range"):
        validate_dataset(b"0,3.4028236e38\n", "csv")


def test_the_workers_csv_limits_are_its_task_dataset_errors(tmp_path: Path) -> None:
    """The csv module's own limit (a field over 131,072 characters) was a bare
    csv.Error on the worker, not a task.dataset error; upload refuses such a file
    too, so only a file changed after its upload can reach it."""
    path = tmp_path / "wide.csv"
    path.write_text("0,1\n1," + " " * 140_000 + "2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"task\.dataset: CSV after line 1: field larger"):
        read_sequence_csv(path, 1)
    with pytest.raises(DatasetRejected, match="field larger than field limit"):
        validate_dataset(path.read_bytes(), "csv")


def test_the_workers_csv_read_holds_about_the_arrays_it_returns(tmp_path: Path) -> None:
    """The cost model reserves the arrays' size for the data (service.schemas.cost); a
    list of lists of Python floats peaked at ≈ 10x that (80 MiB for these 7.6 MiB; a
    review), so a 50 MB upload could take a node's memory per replica."""
    path = tmp_path / "narrow.csv"
    path.write_bytes(b"0,1\n1,0\n" * 250_000)
    tracemalloc.start()
    try:
        inputs, labels = read_sequence_csv(path, 1)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    arrays = inputs.nbytes + labels.nbytes
    assert peak < 2 * arrays, f"peak {peak / 2**20:.1f} MiB for {arrays / 2**20:.1f} MiB"


def test_text_shape_counts_characters_as_the_worker_reads_them() -> None:
    shape = validate_dataset(b"aa\r\nb\rc\n", "text")
    assert shape == TextShape(chars=7, distinct_chars=4, two_distinct_within=3)
    assert validate_dataset(b"zzz", "text") == TextShape(
        chars=3, distinct_chars=1, two_distinct_within=None
    )


BOM = "\ufeff".encode()  # what Excel's "CSV UTF-8" writes first


def test_a_headerless_csv_with_a_bom_keeps_every_row(tmp_path: Path) -> None:
    # With the mark read as a character the first label was "\ufeff0": not an
    # integer, so the first data row was taken for a header and one sample lost.
    content = BOM + "".join(f"{n % 2},{n}.5,1\n" for n in range(100)).encode()
    shape = validate_dataset(content, "csv")
    assert shape == CsvShape(rows=100, columns=3, integer_labels=True, classes=2)
    path = tmp_path / "excel.csv"
    path.write_bytes(content)
    inputs, labels = read_sequence_csv(path, 2)
    assert len(labels) == 100 and inputs[0, 0, 0] == 0.5


def test_a_csv_header_after_a_bom_is_still_a_header(tmp_path: Path) -> None:
    content = BOM + b"label,a,b\n1,0.5,2\n0,1,2\n"
    shape = validate_dataset(content, "csv")
    assert shape == CsvShape(rows=2, columns=3, integer_labels=True, classes=2)
    path = tmp_path / "excel.csv"
    path.write_bytes(content)
    _inputs, labels = read_sequence_csv(path, 2)
    assert labels.tolist() == [1, 0]


def test_a_text_bom_is_not_a_character(tmp_path: Path) -> None:
    visible = "ab\n" * 1200
    content = BOM + visible.encode()
    assert validate_dataset(content, "text") == TextShape(
        chars=3600, distinct_chars=3, two_distinct_within=2
    )
    path = tmp_path / "notepad.txt"
    path.write_bytes(content)
    assert read_text_file(path, 10_000) == visible


@pytest.mark.parametrize(
    ("task", "workers", "field"),
    [
        ({"kind": "sequence_classification", "seq_len": 3}, 1, "task.seq_len"),
        ({"kind": "char_lm", "max_chars": 1_000, "seq_len": 64}, 15, "distributed.workers"),
        ({"kind": "adding", "num_samples": 100}, 81, "distributed.workers"),
        ({"kind": "copy_memory", "num_samples": 600_000, "seq_len": 4096}, 1, "task.num_samples"),
    ],
)
def test_jobspec_rejects_builtin_and_generated_misfits(
    task: dict[str, object], workers: int, field: str
) -> None:
    with pytest.raises(SpecError, match=f"{field}: "):
        make_spec(task, distributed={"workers": workers})
    make_spec(task | {"seq_len": 4}, distributed={"workers": 1})


def test_the_generated_steps_limit_counts_what_each_task_generates() -> None:
    """adding's sequences are seq_len steps (it has no copy_length); copy_memory's add
    2 x copy_length (10 by default). The limit is 20,000,000 generated steps."""
    one = {"workers": 1}
    make_spec({"kind": "adding", "num_samples": 19_800, "seq_len": 1000}, distributed=one)
    with pytest.raises(SpecError, match="20001 sequences of 1000 steps exceed"):
        make_spec({"kind": "adding", "num_samples": 20_001, "seq_len": 1000}, distributed=one)
    with pytest.raises(SpecError, match="19800 sequences of 1020 steps exceed"):
        make_spec({"kind": "copy_memory", "num_samples": 19_800, "seq_len": 1000}, distributed=one)
