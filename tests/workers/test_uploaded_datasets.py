"""What a claimed job's uploaded dataset resolves to before its gang starts
(workers.resume.uploaded_datasets): a file checked against its upload's sha256, and a
dataset whose row is gone refused at once, not a gang failing at every attempt."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.schemas.resolve import resolve
from workers.resume import DatasetChanged, uploaded_datasets

SPEC = resolve({"task": {"kind": "char_lm", "dataset": "upload:7"}})


def rows(found: dict[str, tuple[str, str]]) -> Callable[[Callable[[Any], Any]], Any]:
    """A stand-in for the store read: `dataset_files`' answer."""
    return lambda _read: found


def test_a_file_that_matches_its_upload_is_handed_to_the_job(tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_bytes(b"hello world\n" * 10)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert uploaded_datasets(SPEC, run=rows({"7": (str(path), digest)})) == {"7": str(path)}


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_bytes(b"other bytes")
    with pytest.raises(DatasetChanged, match="no longer matches"):
        uploaded_datasets(SPEC, run=rows({"7": (str(path), "0" * 64)}))


def test_a_dataset_whose_row_is_gone_is_refused() -> None:
    # A database restored from before the upload: the gang's driver found no file for
    # the job and failed its start, once per attempt.
    with pytest.raises(DatasetChanged, match="upload:7 is no longer in the store"):
        uploaded_datasets(SPEC, run=rows({}))
