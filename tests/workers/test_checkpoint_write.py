"""workers.checkpoint_write: a checkpoint write waits out a fault of the artifacts
location (retried with backoff, up to a bound), and fails at once on anything that is
not an OSError. Fakes only at the seam: the wait and clock."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from service.artifacts import read_file, write_file
from tests.polling import wait_until
from workers.checkpoint_write import write_with_retry


class FakeTime:
    """A clock that a wait advances: the backoff is observed without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def failing(times: int, error: Exception) -> tuple[Callable[[], None], list[int]]:
    """A write that raises `error` its first `times` calls, then succeeds."""
    calls = [0]

    def write() -> None:
        calls[0] += 1
        if calls[0] <= times:
            raise error

    return write, calls


def test_succeeds_after_failures_with_doubling_backoff(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="workers.checkpoint_write")
    fake = FakeTime()
    write, calls = failing(8, OSError(errno.ENOSPC, "No space left on device"))
    seen: list[OSError] = []
    write_with_retry(
        write,
        name="job 7",
        url="/a/jobs/7/round-00000010-a1.pt",
        give_up_seconds=300.0,
        wait=fake.wait,
        clock=fake.clock,
        on_failure=seen.append,
    )
    assert calls[0] == 9 and len(seen) == 8
    assert fake.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 8
    line = warnings[0].getMessage()
    assert "job 7" in line and "/a/jobs/7/round-00000010-a1.pt" in line
    assert "No space left on device" in line and "retrying in 0.5 s" in line
    assert all(r.exc_info is None for r in caplog.records), "no traceback per retry"


def test_gives_up_after_the_bound_raising_the_error() -> None:
    fake = FakeTime()
    error = PermissionError(errno.EACCES, "Permission denied")
    write, calls = failing(1000, error)
    with pytest.raises(PermissionError) as raised:
        write_with_retry(
            write,
            name="job 7",
            url="/a/f",
            give_up_seconds=10.0,
            wait=fake.wait,
            clock=fake.clock,
        )
    assert raised.value is error
    # 0.5 + 1 + 2 + 4, then the 2.5 s left: the last try is at the bound, not past it.
    assert fake.waits == [0.5, 1.0, 2.0, 4.0, 2.5]
    assert calls[0] == 6


def test_an_error_that_is_not_an_oserror_is_raised_without_retry() -> None:
    fake = FakeTime()
    write, calls = failing(1, ValueError("bad checkpoint"))
    with pytest.raises(ValueError, match="bad checkpoint"):
        write_with_retry(
            write,
            name="job 7",
            url="/a/f",
            give_up_seconds=300.0,
            wait=fake.wait,
            clock=fake.clock,
        )
    assert calls[0] == 1 and fake.waits == []


def test_a_real_write_lands_once_its_folder_is_unblocked(tmp_path: Path) -> None:
    # As root, chmod does not stop a write: the job's folder is a regular file instead,
    # so the artifacts writer's makedirs fails (FileExistsError / NotADirectoryError).
    folder = tmp_path / "artifacts" / "jobs" / "7"
    folder.parent.mkdir(parents=True)
    folder.write_bytes(b"in the way")
    url = str(folder / "round-00000010-a1.pt")
    failures: list[OSError] = []
    done = threading.Event()

    def run() -> None:
        write_with_retry(
            lambda: write_file(url, b"checkpoint"),
            name="job 7",
            url=url,
            give_up_seconds=60.0,
            on_failure=failures.append,
        )
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: failures, timeout=10, what="the blocked write to fail")
    assert not done.is_set()
    folder.unlink()  # the fault ends
    wait_until(done.is_set, timeout=10, what="the write to land")
    thread.join(timeout=5)
    assert read_file(url) == b"checkpoint"
    assert isinstance(failures[0], FileExistsError | NotADirectoryError), failures[0]
    assert [p.name for p in folder.iterdir()] == ["round-00000010-a1.pt"], "no temporary left"
