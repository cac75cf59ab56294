"""What an uploaded dataset must look like. A bad dataset is rejected at upload, not
on a worker: text must be non-empty UTF-8; a CSV needs at least one data row of
numbers (an optional header row first, whose first field is not an integer; blank
rows skipped, as the worker does) with the same number of columns on every row.
The shape summary returned here is what submit checks each spec against.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from service.schemas.data_limits import (
    FLOAT32_OVERFLOW,
    UPLOAD_ENCODING,
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


@dataclass(frozen=True)
class UploadLimits:
    """The server's limits on an upload's shape (settings max_vocabulary,
    max_csv_columns); beyond them no spec could use it."""

    vocabulary: int = 10_000
    csv_columns: int = 10_000


# A CSV cell as long as a float's repr with room to spare; text is read in pieces.
CSV_CELL_CHARS = 40
TEXT_PIECE_CHARS = 1 << 20
DISTINCT_SLICE_CHARS = 4096


class DatasetRejected(ValueError):
    """The uploaded bytes are not a usable dataset of the declared format."""


def guess_format(filename: str, content_type: str | None) -> DatasetFormat:
    if filename.lower().endswith(".csv") or (content_type or "").startswith("text/csv"):
        return "csv"
    return "text"


def validate_dataset(
    data: bytes, fmt: DatasetFormat, limits: UploadLimits | None = None
) -> DatasetShape:
    """The dataset's shape summary (stored, and checked against each spec at submit);
    DatasetRejected if it is not a usable dataset of `fmt`."""
    return validate_stream([data], fmt, limits)


def validate_stream(
    chunks: Iterable[bytes], fmt: DatasetFormat, limits: UploadLimits | None = None
) -> DatasetShape:
    """validate_dataset in one pass over byte chunks, in memory bounded by the chunk
    size, one CSV record and the distinct characters (themselves bounded by
    `limits.vocabulary`): nothing holds the whole file or its rows."""
    limits = limits or UploadLimits()
    if fmt == "csv":
        # A record is parsed whole: bound its line (the widest allowed row of long
        # numbers) instead of buffering a file without newlines.
        return _csv_shape(_lines(chunks, limits.csv_columns * CSV_CELL_CHARS, "csv"), limits)
    return _text_shape(_lines(chunks, TEXT_PIECE_CHARS, "text"), limits)


def stored_shape(fmt: str, shape: dict[str, Any] | None) -> DatasetShape | None:
    """The shape recorded at upload; None for datasets uploaded before shapes were."""
    if shape is None:
        return None
    return CsvShape.model_validate(shape) if fmt == "csv" else TextShape.model_validate(shape)


def _not_utf8(exc: UnicodeDecodeError, decoded_up_to: int) -> DatasetRejected:
    """The error at the bad byte's offset in the file. The decoder saw the bytes it
    held back from earlier chunks (a character split across two) and the chunk, less
    a byte order mark, so its `start` counts from the end of what it was given, which
    is the end of the chunk: `decoded_up_to` bytes into the file."""
    offset = decoded_up_to - len(exc.object) + exc.start
    # A UTF-16 file (Windows' "Unicode") starts with its byte order mark: name it.
    utf16 = offset < 2 and exc.object[:2] in (b"\xff\xfe", b"\xfe\xff")
    hint = ": it is UTF-16 (starts with its byte order mark); save it as UTF-8" if utf16 else ""
    return DatasetRejected(f"not UTF-8 text (at byte offset {offset}){hint}")


def _lines(chunks: Iterable[bytes], max_line: int, fmt: DatasetFormat) -> Iterator[str]:
    """UTF-8 lines (ends kept, \r\n and \r read as \n like the worker's universal
    newlines, a leading byte order mark dropped as the worker does) from byte chunks,
    decoded incrementally. A line longer than `max_line` is a DatasetRejected for a
    CSV; a text's is passed on in pieces."""
    decoder = codecs.getincrementaldecoder(UPLOAD_ENCODING)()
    pending = ""
    position = 0
    for chunk in chunks:
        position += len(chunk)
        try:
            pending += decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise _not_utf8(exc, position) from exc
        # A trailing \r may be the first half of \r\n: keep it for the next chunk.
        cut = len(pending) - 1 if pending.endswith("\r") else len(pending)
        complete, pending = pending[:cut], pending[cut:]
        parts = complete.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        pending = parts.pop() + pending
        for part in parts:
            yield part + "\n"
        if len(pending) > max_line:
            if fmt == "csv":
                raise DatasetRejected(f"a CSV line is longer than {max_line:,} characters")
            cut = len(pending) - 1 if pending.endswith("\r") else len(pending)
            yield pending[:cut]
            pending = pending[cut:]
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc, position) from exc
    # Split at \n alone, as above and as the worker's file reads it: str.splitlines
    # also splits at \v, \f, \x1c-\x1e, \x85, U+2028 and U+2029, so a last line
    # without its newline was judged as rows the worker never sees (a review).
    *ended, last = pending.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for part in ended:
        yield part + "\n"
    if last:
        yield last


def _text_shape(lines: Iterator[str], limits: UploadLimits) -> TextShape:
    chars = 0
    distinct: set[str] = set()
    first: str | None = None
    two_within: int | None = None
    blank = True
    for line in lines:
        if first is None and line:
            first = line[0]
        if two_within is None and first is not None:
            later = next((i for i, char in enumerate(line) if char != first), None)
            if later is not None:
                two_within = chars + later + 1
        # In slices: a text of a million distinct characters is refused after the
        # first few thousand, not after building a set of all of them.
        for start in range(0, len(line), DISTINCT_SLICE_CHARS):
            distinct.update(line[start : start + DISTINCT_SLICE_CHARS])
            if len(distinct) > limits.vocabulary:
                raise DatasetRejected(
                    f"the text has more than {limits.vocabulary:,} distinct characters "
                    "(the server's vocabulary limit)"
                )
        blank = blank and not line.strip()
        chars += len(line)
    if blank:
        raise DatasetRejected("the file is empty")
    return TextShape(chars=chars, distinct_chars=len(distinct), two_distinct_within=two_within)


def _is_number(cell: str) -> bool:
    """Finite, and within float32's range: a model in float32 (the default dtype)
    read 1e39 as infinity, and its first gradient was NaN (a review)."""
    try:
        return abs(float(cell)) < FLOAT32_OVERFLOW
    except ValueError:
        return False


class _OneLinePerRecord:
    """The lines the csv module reads, refusing a record that runs onto a second
    line (a quoted cell holding a line break): numbers never need one, and the csv
    module held such a record whole, over any number of lines, before a check could
    see it (a review: +246 MiB for a 20 MB file)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.read = 0  # lines handed to the csv module
        self.record_start = 0  # lines read before the record being parsed

    def __iter__(self) -> _OneLinePerRecord:
        return self

    def __next__(self) -> str:
        line = next(self.lines)  # none left: the record ends here, as on the worker
        if self.read > self.record_start:
            raise DatasetRejected(
                f"CSV line {self.record_start + 1}: a quoted cell runs onto the next line "
                "(a number never holds a line break)"
            )
        self.read += 1
        return line


def _label(cell: str) -> int | None:
    return int(cell) if is_integer(cell) and int(cell) >= 0 else None


def _csv_shape(lines: Iterator[str], limits: UploadLimits) -> CsvShape:
    width: int | None = None
    rows = 0
    integer_labels = True
    largest = 0
    seen_record = False
    first_line = 0
    source = _OneLinePerRecord(lines)
    reader = csv.reader(source)
    try:
        for record in reader:
            source.record_start = source.read
            if is_blank_record(record):
                continue
            if not seen_record:
                seen_record = True
                if is_header_record(record):
                    _check_width(len(record), limits)
                    continue
            rows += 1
            # Rows are counted without the header and blank lines; the line is what an
            # editor shows.
            where = f"CSV data row {rows} (line {reader.line_num})"
            if width is None:
                width = _check_width(len(record), limits)
                first_line = reader.line_num
            if len(record) != width:
                # Both rows named: the first one may be the odd one out.
                columns = "1 column" if len(record) == 1 else f"{len(record)} columns"
                raise DatasetRejected(
                    f"{where} has {columns}, but data row 1 (line {first_line}) "
                    f"has {width}; every data row needs the same number"
                )
            for column, cell in enumerate(record, start=1):
                if not _is_number(cell):
                    # A semicolon- or tab-separated file reads as one column of text:
                    # say so (a walkthrough's upload got only the number's rule).
                    other = next((s for s in (";", "\t") if s in cell), None)
                    hint = (
                        ""
                        if other is None
                        else f"; fields are separated by commas, this one holds {other!r}"
                    )
                    raise DatasetRejected(
                        f"{where}, column {column}: {cell[:40]!r} is not a finite number "
                        f"within float32's range (±3.4e38){hint}"
                    )
            label = _label(record[0])
            if label is None:
                integer_labels = False
            else:
                largest = max(largest, label)
    except csv.Error as exc:
        raise DatasetRejected(f"CSV does not parse: {exc}") from exc
    if not seen_record:
        raise DatasetRejected("the file is empty")
    if width is None:
        raise DatasetRejected("CSV has no data rows")
    return CsvShape(
        rows=rows,
        columns=width,
        integer_labels=integer_labels,
        classes=largest + 1 if integer_labels else 0,
    )


def _check_width(columns: int, limits: UploadLimits) -> int:
    if columns > limits.csv_columns:
        raise DatasetRejected(
            f"CSV has {columns:,} columns; the server's limit is {limits.csv_columns:,}"
        )
    return columns
