"""What an uploaded dataset must look like. A bad dataset is rejected at upload, not
on a worker: text must be non-empty UTF-8; a CSV needs at least one data row of
numbers (an optional header row first) with the same number of columns on every row.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Literal

DatasetFormat = Literal["text", "csv"]
# Which uploaded format each task can train on.
TASK_DATASET_FORMAT: dict[str, DatasetFormat] = {
    "char_lm": "text",
    "sequence_classification": "csv",
}


class DatasetRejected(ValueError):
    """The uploaded bytes are not a usable dataset of the declared format."""


def guess_format(filename: str, content_type: str | None) -> DatasetFormat:
    if filename.lower().endswith(".csv") or (content_type or "").startswith("text/csv"):
        return "csv"
    return "text"


def validate_dataset(data: bytes, fmt: DatasetFormat) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetRejected(f"not UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        raise DatasetRejected("the file is empty")
    if fmt == "csv":
        _validate_csv(text)


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _validate_csv(text: str) -> None:
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as exc:
        raise DatasetRejected(f"CSV does not parse: {exc}") from exc
    if rows and not all(_is_number(cell) for cell in rows[0]):
        rows = rows[1:]  # a header row
    if not rows:
        raise DatasetRejected("CSV has no data rows")
    width = len(rows[0])
    for line, row in enumerate(rows, start=1):
        if len(row) != width:
            raise DatasetRejected(f"CSV data row {line} has {len(row)} columns, expected {width}")
        for column, cell in enumerate(row, start=1):
            if not _is_number(cell):
                raise DatasetRejected(
                    f"CSV data row {line}, column {column}: {cell[:40]!r} is not a finite number"
                )
