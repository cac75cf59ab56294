"""Upload validation in one streaming pass: the same shape whatever the chunking
(\\r\\n and multi-byte characters split across chunks), errors as before, and memory
bounded by the chunk, not the file (a 25 MB text, more than the bound as bytes; a 10
MB CSV, several times the bound as parsed rows)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest

from service.schemas.datasets import DatasetRejected, UploadLimits, validate_stream

CHUNK = 1 << 20
BOUND = 16 << 20  # peak Python allocations while validating, whatever the file size


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        ("ab\r\ncd\u00e9\u4e2d\rx\n\ny".encode(), "text"),
        (b'label,a,b\r\n1,0.5,2\r\n\r\n0,1e-3,-4\n3,"7",8', "csv"),
        ("aaaa\u00e9".encode(), "text"),
    ],
)
def test_any_chunking_gives_the_same_shape(data: bytes, fmt: str) -> None:
    whole = validate_stream([data], fmt)  # type: ignore[arg-type]
    for size in range(1, 8):
        assert validate_stream(split(data, size), fmt) == whole  # type: ignore[arg-type]


@pytest.mark.parametrize(("body", "fmt"), [(b"0,1\r\n1,2", "csv"), (b"ab", "text")])
def test_a_bom_split_across_chunks_is_still_dropped(body: bytes, fmt: str) -> None:
    without = validate_stream([body], fmt)  # type: ignore[arg-type]
    for size in range(1, 5):
        with_bom = validate_stream(split("\ufeff".encode() + body, size), fmt)  # type: ignore[arg-type]
        assert with_bom == without


def test_shapes_count_as_the_worker_reads() -> None:
    shape = validate_stream([b"aa\r\nb"], "text")
    assert shape.model_dump() == {"chars": 4, "distinct_chars": 3, "two_distinct_within": 3}


def test_errors_name_the_position_and_limits() -> None:
    with pytest.raises(DatasetRejected, match=r"byte offset 3\)"):
        validate_stream(split(b"abc\xff", 2), "text")
    with pytest.raises(DatasetRejected, match="more than 3 distinct"):
        validate_stream([b"abcd"], "text", UploadLimits(vocabulary=3))
    with pytest.raises(DatasetRejected, match="longer than"):
        validate_stream([b"1" * 100], "csv", UploadLimits(csv_columns=2))
    # The lines count right whatever the chunking (here a byte at a time).
    with pytest.raises(
        DatasetRejected, match=r"row 2 \(line 3\) has 1 column, but data row 1 \(line 2\)"
    ):
        validate_stream(split(b"a,b\n1,2\n3\n", 1), "csv")


@pytest.mark.parametrize(
    ("data", "bad"),
    [
        (b"abc\xffd", 3),
        ("\ufeffabc".encode() + b"\xffd", 6),  # a BOM is 3 bytes of the file too
        ("a\u00e9\u4e2d".encode() + b"\xe2\x82\xff", 6),  # the bad sequence starts at \xe2
        ("\ufeffab\u00e9".encode() + b"\xe2\x82", 7),  # cut short at the end
    ],
    ids=["plain", "after-a-bom", "after-multibyte-characters", "cut-short"],
)
def test_the_bad_byte_is_named_by_its_offset_in_the_file_whatever_the_chunking(
    data: bytes, bad: int
) -> None:
    for size in range(1, len(data) + 1):
        with pytest.raises(DatasetRejected, match=rf"\(at byte offset {bad}\)"):
            validate_stream(split(data, size), "text")


def _text(megabytes: int) -> Iterator[bytes]:
    line = ("to be or not to be, that is the question \u00e9t\u00e9\n" * 20_000).encode()
    sent = 0
    while sent < megabytes * 1_000_000:
        yield from split(line, CHUNK)
        sent += len(line)


def _csv(megabytes: int) -> Iterator[bytes]:
    rows = ("3," + ",".join(["0.1234"] * 64) + "\n") * 2_000
    block = rows.encode()
    sent = 0
    while sent < megabytes * 1_000_000:
        yield block
        sent += len(block)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("fmt", "megabytes"), [("text", 25), ("csv", 10)])
def test_memory_is_bounded_by_the_chunk_not_the_file(fmt: str, megabytes: int) -> None:
    source = _text(megabytes) if fmt == "text" else _csv(megabytes)
    tracemalloc.start()
    try:
        shape = validate_stream(source, fmt)  # type: ignore[arg-type]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BOUND, f"{peak / 2**20:.1f} MiB"
    if fmt == "text":
        assert shape.model_dump()["chars"] > megabytes * 900_000
    else:
        assert shape.model_dump()["columns"] == 65


@pytest.mark.timeout(300)
def test_a_record_running_over_lines_is_refused_within_the_bound() -> None:
    """A quoted cell holding line breaks made the csv module hold one record across
    the whole file before any check (a review: +246 MiB for 20 MB); refused at its
    second line now."""
    block = b'"\n12",' * 100_000

    def source() -> Iterator[bytes]:
        for _ in range(30):  # ≈ 20 MB
            yield block

    tracemalloc.start()
    try:
        with pytest.raises(DatasetRejected, match="line 1: a quoted cell runs onto the next"):
            validate_stream(source(), "csv")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BOUND, f"{peak / 2**20:.1f} MiB"
