"""Files in a remote artifacts location, on fsspec's in-memory filesystem. A worker's
local copy of an upload (service.artifacts.local_copy): made once, never seen
half-written by a second replica on the same machine, nothing left under the final
name by a failed copy, and copies unused for a week removed. The orphan-file search
(service.orphan_files) names a remote file by its key below the location."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

import service.artifacts as artifacts
from service.artifacts import (
    LOCAL_COPY_UNUSED_S,
    is_inside,
    local_copy,
    remove_empty_folders,
    remove_file,
    remove_quietly,
    write_file,
)
from service.orphan_files import stored_files
from tests.polling import wait_until

DAY = 24 * 3600.0


@pytest.fixture
def remote() -> Iterator[str]:
    """A directory of the in-memory filesystem, emptied afterwards."""
    root = f"memory://lagtrain-test-{os.getpid()}-{threading.get_ident()}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_a_remote_file_is_copied_once_and_a_local_one_is_used_in_place(
    remote: str, tmp_path: Path
) -> None:
    url = f"{remote}/datasets/a.txt"
    write_file(url, b"first")
    copy = local_copy(url, tmp_path / "copies")
    assert copy.read_bytes() == b"first" and copy.parent == tmp_path / "copies"
    write_file(url, b"changed")  # an upload's URL never changes its bytes: no re-copy
    assert local_copy(url, tmp_path / "copies") == copy
    assert copy.read_bytes() == b"first"
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == [copy.name]

    on_disk = tmp_path / "local.txt"
    on_disk.write_bytes(b"here")
    assert local_copy(str(on_disk), tmp_path / "copies") == on_disk
    assert local_copy(f"file://{on_disk}", tmp_path / "copies") == on_disk


class _HeldReader:
    """A source file whose reads stop after the first chunk until `release` is set."""

    def __init__(self, inner: Any, started: threading.Event, release: threading.Event) -> None:
        self.inner, self.started, self.release, self.reads = inner, started, release, 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads == 2:
            self.started.set()
            assert self.release.wait(30)
        data: bytes = self.inner.read(size)
        return data

    def __enter__(self) -> _HeldReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()


def test_a_second_replica_never_reads_a_copy_still_being_written(
    remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{remote}/datasets/big.txt"
    content = os.urandom(artifacts.CHUNK_BYTES * 2 + 123)
    write_file(url, content)
    started, release = threading.Event(), threading.Event()
    real_open, opened = fsspec.open, []

    def open_first_held(target: str, mode: str = "rb", **kwargs: Any) -> Any:
        opened.append(target)
        if len(opened) > 1:
            return real_open(target, mode, **kwargs)
        # Its own buffer: the memory filesystem hands every reader one shared file.
        return _HeldReader(io.BytesIO(content), started, release)

    monkeypatch.setattr(fsspec, "open", open_first_held)
    results: list[Path] = []
    first = threading.Thread(target=lambda: results.append(local_copy(url, tmp_path)))
    first.start()
    try:
        wait_until(started.is_set, timeout=30, what="the first copy to be half written")
        # The first replica's copy holds one chunk of three: the second must not use it.
        assert local_copy(url, tmp_path).read_bytes() == content
    finally:
        release.set()
        first.join(30)
    assert results and results[0].read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == [results[0].name]  # no temporary left


def test_a_failed_copy_leaves_nothing_under_the_final_name(
    remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{remote}/datasets/broken.txt"
    write_file(url, b"x" * (artifacts.CHUNK_BYTES + 1))

    class Broken:
        def read(self, size: int = -1) -> bytes:
            raise OSError("connection reset")

        def __enter__(self) -> Broken:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(fsspec, "open", lambda *a, **k: Broken())
    with pytest.raises(OSError, match="connection reset"):
        local_copy(url, tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert local_copy(url, tmp_path).stat().st_size == artifacts.CHUNK_BYTES + 1


def test_copies_unused_for_a_week_are_removed_when_a_new_one_is_made(
    remote: str, tmp_path: Path
) -> None:
    t0 = 1_900_000_000.0
    urls = {name: f"{remote}/datasets/{name}.txt" for name in ("old", "used", "new")}
    for url in urls.values():
        write_file(url, url.encode())
    old = local_copy(urls["old"], tmp_path, now=t0)
    used = local_copy(urls["used"], tmp_path, now=t0)
    crashed = tmp_path / f"{old.name}.tmp-0123456789abcdef"  # a copy a crash cut short
    crashed.write_bytes(b"half")
    os.utime(crashed, (t0, t0))
    stray = tmp_path / "not-a-copy"  # housekeeping never fails a job over it
    stray.mkdir()
    os.utime(stray, (t0, t0))

    assert local_copy(urls["used"], tmp_path, now=t0 + 6 * DAY) == used  # marks it used
    # By its access time: its modification time, which keys the sha256 memo of a
    # dataset file (data_files.file_sha256), stays, so the copy is not hashed again.
    assert used.stat().st_mtime == t0
    local_copy(urls["new"], tmp_path, now=t0 + LOCAL_COPY_UNUSED_S + DAY)
    assert not old.exists() and not crashed.exists() and stray.is_dir()
    assert used.read_bytes() == urls["used"].encode()
    # Removed, it is copied again when a job needs it.
    assert local_copy(urls["old"], tmp_path).read_bytes() == urls["old"].encode()


def test_a_remote_locations_files_are_found_by_their_key_below_it(remote: str) -> None:
    for name in ("datasets/a.txt", "jobs/7/round-00000001-a1.pt", "elsewhere/b.txt"):
        write_file(f"{remote}/artifacts/{name}", b"x")
    found = {f.key: f for f in stored_files(f"{remote}/artifacts")}
    assert sorted(found) == ["datasets/a.txt", "jobs/7/round-00000001-a1.pt"]
    assert all(f.bytes == 1 and f.modified > 0 for f in found.values())
    remove_file(found["datasets/a.txt"].url)  # its URL reaches the same file
    assert [f.key for f in stored_files(f"{remote}/artifacts")] == ["jobs/7/round-00000001-a1.pt"]


def test_removal_stays_inside_the_artifacts_location(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows store absolute URLs: a database restored beside a live system, its files
    copied elsewhere, names the live system's files. Deleting through it must not
    reach them (a walkthrough's delete-checkpoints removed the originals)."""
    live, restored = tmp_path / "live", tmp_path / "restored"
    original = live / "jobs" / "1" / "round-00000010-a1.pt"
    write_file(str(original), b"weights")
    remove_quietly(str(original), location=str(restored))
    assert original.read_bytes() == b"weights"
    assert "outside LAGTRAIN_ARTIFACTS_URL" in caplog.text
    remove_quietly(f"file://{original}", location=f"{live}/")
    assert not original.exists()
    assert is_inside("s3://bucket/lab", "s3://bucket/lab/jobs/1/x.pt")
    assert not is_inside("s3://bucket/lab", "s3://bucket/lab2/jobs/1/x.pt")
    assert not is_inside(str(live), f"{live}/../restored/x.pt")
    assert not is_inside(str(live), "s3://bucket/lab/x.pt")
    # A link inside the location is inside (removing it removes the link only).
    (live / "link.pt").symlink_to(tmp_path / "elsewhere.pt")
    assert is_inside(str(live), str(live / "link.pt"))


def test_a_deleted_jobs_emptied_folder_goes_and_nothing_else(tmp_path: Path) -> None:
    """Deleting a job removes its files, then its folder once empty: never one that
    still holds a file (an orphan that `lagtrain orphan-files` should find), never
    the location itself, never a folder outside it."""
    live, other = tmp_path / "live", tmp_path / "other"
    emptied = live / "jobs" / "1" / "round-00000010-a1.pt"
    still_used = live / "jobs" / "2" / "round-00000010-a1.pt"
    stray = live / "jobs" / "2" / "round-00000020-a1.pt"
    outside = other / "jobs" / "3" / "round-00000010-a1.pt"
    top = live / "top.pt"
    for path in (emptied, still_used, stray, outside, top):
        write_file(str(path), b"w")
    for path in (emptied, still_used, outside, top):
        path.unlink()

    urls = [f"file://{emptied}", str(still_used), str(outside), str(top)]
    remove_empty_folders(urls, location=f"{live}/")
    assert not emptied.parent.exists()
    assert stray.exists()  # its folder stays with it
    assert outside.parent.is_dir()  # not this location's
    assert live.is_dir() and (live / "jobs").is_dir()  # the location and jobs/ stay
    remove_empty_folders(urls, location=str(live))  # a folder already gone: no error
    # The location itself, empty once its last file went, stays (file:// or a path).
    (live / "jobs" / "2").rename(tmp_path / "moved")
    (live / "jobs").rmdir()
    assert not any(live.iterdir())
    remove_empty_folders([str(top)], location=f"file://{live}/")
    remove_empty_folders([str(top)], location=str(live))
    assert live.is_dir()
    remove_empty_folders(["s3://bucket/lab/jobs/4/x.pt"], location="s3://bucket/lab")


def test_a_local_file_and_its_folder_entry_are_synced_before_the_write_returns(
    remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's row is committed, and older checkpoints pruned, once its write
    returns: on a local disk its data must be durable by then (a power cut left the
    newest file empty or unnamed, the older ones gone), and its name in the folder."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    (tmp_path / "jobs").mkdir()
    target = tmp_path / "jobs" / "7" / "ckpt-round-10.pt"
    write_file(str(target), b"theta")
    assert target.read_bytes() == b"theta"
    [data, folder, parent] = synced
    assert data.startswith(f"{target}.tmp-"), "the data, before the move to its name"
    assert folder == str(target.parent), "then the folder that names it"
    assert parent == str(tmp_path / "jobs"), "and the one naming the folder it created"
    synced.clear()
    write_file(str(target.with_name("ckpt-round-20.pt")), b"theta")
    assert synced[1:] == [str(target.parent)], "no folder created: only its own"
    synced.clear()
    write_file(f"{remote}/jobs/7/ckpt-round-10.pt", b"theta")
    assert synced == [], "an object store's finished write is durable: nothing to sync"
