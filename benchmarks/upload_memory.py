"""Memory of upload validation: a generated CSV and text of --mb megabytes each,
validated the way POST /v1/datasets does (service.schemas.datasets.validate_stream
over 1 MiB chunks read from the spooled file). Reports the peak of Python
allocations during validation (tracemalloc: the validator is pure Python) and the
process's RSS growth. The whole-file path used before (read everything, decode, keep
every row) is shown beside it for the CSV at --old-mb.

    .venv/bin/python benchmarks/upload_memory.py [--mb 50] [--old-mb 5]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from service.artifacts import CHUNK_BYTES
from service.schemas.datasets import validate_stream


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def make_csv(path: Path, megabytes: int) -> None:
    rng = random.Random(0)
    target = megabytes * 1_000_000
    with path.open("w") as fh:
        while fh.tell() < target:
            fh.write(
                "\n".join(
                    f"{rng.randrange(10)}," + ",".join(f"{rng.random():.4f}" for _ in range(64))
                    for _ in range(1000)
                )
                + "\n"
            )


def make_text(path: Path, megabytes: int) -> None:
    rng = random.Random(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "\u00e9t\u00e9", "\n"]
    with path.open("w") as fh:
        while fh.tell() < megabytes * 1_000_000:
            fh.write(" ".join(rng.choice(words) for _ in range(10_000)))


def chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk


def measure(label: str, fn: object) -> None:
    assert callable(fn)
    before = rss_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    grown = rss_bytes() - before
    print(
        f"{label:34} peak allocations {peak / 2**20:7.1f} MiB   RSS growth "
        f"{grown / 2**20:7.1f} MiB   {seconds:5.1f} s   {result}"
    )


def old_whole_file(path: Path) -> int:
    text = path.read_bytes().decode("utf-8")
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--old-mb", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, text_path, old_path = Path(tmp, "d.csv"), Path(tmp, "t.txt"), Path(tmp, "o.csv")
        make_csv(csv_path, args.mb)
        make_text(text_path, args.mb)
        make_csv(old_path, args.old_mb)
        measure(f"csv {args.mb} MB, streaming", lambda: validate_stream(chunks(csv_path), "csv"))
        measure(f"text {args.mb} MB, streaming", lambda: validate_stream(chunks(text_path), "text"))
        measure(f"csv {args.old_mb} MB, whole file (old)", lambda: old_whole_file(old_path))


if __name__ == "__main__":
    main()
