"""A file an attempt's start reads (an uploaded dataset's, a checkpoint's, for its
sha256 check) whose read fails otherwise than by being gone — a permission, an NFS
blip, a directory where the file was — is the start's error, retried: "could not
start the gang: …". Only a file gone or hashing to something else is damage. Before
(a review), a dataset's failed the attempt "dispatcher error (see the dispatcher's
log)", and a checkpoint's was taken for a damaged file: the resume fell back to an
older checkpoint, the job's events said the good one "failed the sha256 check", and
its rounds were trained again. No Ray: the gang is test_attempt_start_reads's
stand-in, which records what it was given and refuses to start."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.artifacts import iter_file
from tests.workers.dispatcher_seams import dispatcher_store
from tests.workers.test_attempt_start_reads import (  # noqa: F401  (no_gang: a fixture)
    NoGang,
    _checkpointed,
    _claimed,
    _ended,
    _job_on_an_upload,
    no_gang,
)
from workers import resume as resume_module
from workers.job_run import JobRun


@pytest.mark.usefixtures("no_gang")
def test_a_dataset_file_that_cannot_be_read_is_the_starts_error_retried(tmp_path: Path) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    path = tmp_path / "text.txt"
    job_id, _ = _job_on_an_upload(sessions, path, max_attempts=2)
    path.unlink()
    path.mkdir()  # read: IsADirectoryError (an EIO or a PermissionError goes alike)
    JobRun(_claimed(sessions), settings=settings, sessions=sessions).run()
    ended, reasons = _ended(sessions, job_id)
    assert (ended.status, ended.attempt) == ("queued", 1), (ended.error, reasons)
    failed = [r for r in reasons if "could not start the gang" in r]
    assert len(failed) == 1 and "IsADirectoryError" in failed[0], reasons
    assert not any("dispatcher error" in r or "upload it again" in r for r in reasons), reasons
    assert "datasets" not in NoGang.given, "no gang without its data"


def _eio_reading(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    """Reading the file at `uri` fails with an I/O error (an NFS blip); it is there,
    and verifies once read."""

    def flaky(read: str, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        if read == uri:
            raise OSError(errno.EIO, "Input/output error", read)
        return iter_file(read, *args, **kwargs)

    monkeypatch.setattr(resume_module, "iter_file", flaky)


@pytest.mark.usefixtures("no_gang")
def test_a_checkpoint_read_error_at_the_resume_is_the_starts_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newest checkpoint verifies, but its read for the check fails: the attempt
    fails to start (retried: the next may read it), saying why, and no older
    checkpoint is resumed from."""
    settings, sessions = dispatcher_store(tmp_path)
    claimed, (_older, newest) = _checkpointed(settings, sessions, (9, 19))
    _eio_reading(monkeypatch, newest.uri)
    JobRun(claimed, settings=settings, sessions=sessions).run()
    ended, reasons = _ended(sessions, claimed.job_id)
    assert NoGang.resumed_from == [], "no gang started from an older checkpoint"
    assert not any("sha256" in r or "resuming from" in r for r in reasons), reasons
    assert ended.error is not None
    assert ended.error.startswith("could not start the gang: OSError: [Errno 5]"), ended.error


@pytest.mark.usefixtures("no_gang")
def test_a_checkpoint_read_error_in_a_fallback_does_not_skip_to_round_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newest does not load (another version's), and reading the older one for
    its check fails: the start's error, not a resume from round 0."""
    settings, sessions = dispatcher_store(tmp_path)
    claimed, (older, newest) = _checkpointed(settings, sessions, (9, 19))
    NoGang.unloadable = {newest.uri}
    _eio_reading(monkeypatch, older.uri)
    JobRun(claimed, settings=settings, sessions=sessions).run()
    ended, reasons = _ended(sessions, claimed.job_id)
    assert NoGang.resumed_from == [newest.uri], "no restart from round 0"
    assert not any("resuming from" in r for r in reasons), reasons
    assert ended.error is not None
    assert ended.error.startswith("could not start the gang: OSError: [Errno 5]"), ended.error
