"""What an uploaded dataset must look like. A bad dataset is rejected at upload, not
on a worker: text must be non-empty UTF-8; a CSV needs at least one data row of
numbers (an optional header row first, whose first field is not an integer; blank
rows skipped, as the worker does) with the same number of columns on every row.
The shape summary returned here is what submit checks each spec against.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Literal

from service.schemas.data_limits import (
    CsvShape,
    DatasetShape,
    TextShape,
    is_blank_record,
    is_header_record,
    is_integer,
)

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


def validate_dataset(data: bytes, fmt: DatasetFormat) -> DatasetShape:
    """The dataset's shape summary (stored, and checked against each spec at submit);
    DatasetRejected if it is not a usable dataset of `fmt`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetRejected(f"not UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        raise DatasetRejected("the file is empty")
    if fmt == "csv":
        return _csv_shape(text)
    return _text_shape(text)


def stored_shape(fmt: str, shape: dict[str, Any] | None) -> DatasetShape | None:
    """The shape recorded at upload; None for datasets uploaded before shapes were."""
    if shape is None:
        return None
    return CsvShape.model_validate(shape) if fmt == "csv" else TextShape.model_validate(shape)


def _text_shape(text: str) -> TextShape:
    # The worker reads with universal newlines: \r\n and \r become \n.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    later = next((i for i, char in enumerate(text) if char != text[0]), None)
    return TextShape(
        chars=len(text),
        distinct_chars=len(set(text)),
        two_distinct_within=None if later is None else later + 1,
    )


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _label(cell: str) -> int | None:
    return int(cell) if is_integer(cell) and int(cell) >= 0 else None


def _csv_shape(text: str) -> CsvShape:
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if not is_blank_record(row)]
    except csv.Error as exc:
        raise DatasetRejected(f"CSV does not parse: {exc}") from exc
    if rows and is_header_record(rows[0]):
        rows = rows[1:]
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
    labels = [_label(row[0]) for row in rows]
    integer_labels = all(label is not None for label in labels)
    return CsvShape(
        rows=len(rows),
        columns=width,
        integer_labels=integer_labels,
        classes=max(label or 0 for label in labels) + 1 if integer_labels else 0,
    )
