"""Files in the artifacts location (settings.artifacts_url, any fsspec URL)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import fsspec

CHUNK_BYTES = 1 << 20
# A worker's copy of a remote dataset not used for this long is removed (the next job
# that needs it copies it again); a temporary file this old was left by a crash.
LOCAL_COPY_UNUSED_S = 7 * 24 * 3600.0
log = logging.getLogger(__name__)


def local_path(url: str) -> Path | None:
    """The filesystem path of a local URL (a plain path or file://), else None. A
    leading "~" is the home folder, as a shell would read it: a location written in a
    systemd Environment= line or an .env file reaches us unexpanded, and taken
    literally it was a folder named "~" in the working directory."""
    if "://" not in url or url.startswith("file://"):
        return Path(url.removeprefix("file://")).expanduser()
    return None


def artifact_url(base_url: str, relative: str) -> str:
    """An absolute URL for ``relative`` under ``base_url``; local paths are resolved so
    that a process with another working directory finds the same file."""
    base = local_path(base_url)
    if base is not None:
        return (base.resolve() / relative).as_posix()
    return f"{base_url.rstrip('/')}/{relative}"


def write_once(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` unless it exists (a name that says what the file
    holds makes an existing file the same file)."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        write_file(url, data)


def write_once_from(url: str, source: BinaryIO) -> None:
    """write_once, copying from a file object in chunks (bounded memory)."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        _write_through_temp(url, lambda fh: shutil.copyfileobj(source, fh, CHUNK_BYTES))


def write_file(url: str, data: bytes) -> None:
    """Write ``data`` to ``url``, replacing any file there."""
    _write_through_temp(url, lambda fh: fh.write(data))


def _write_through_temp(url: str, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``url`` under a unique temporary name, then move it there: a reader never
    sees half a file, two writers never share a temporary file, and a write that
    fails (a source cut off, a full disk) leaves no temporary file behind.

    On a local disk the file's data and then its folder's entry are synced before
    this returns: a checkpoint's row is committed and older checkpoints are pruned
    once it does, so a power cut must not leave the newest file empty or unnamed
    with the older ones already gone; so are the folders that name any folder this
    write created (a job's first checkpoint makes `jobs/<id>/`). (Object stores make
    a finished PUT durable.)"""
    fs, path = fsspec.core.url_to_fs(url)
    folder = path.rsplit("/", 1)[0]
    local = local_path(url) is not None
    created = _missing_folders(folder) if local else []
    fs.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{secrets.token_hex(8)}"
    try:
        with fs.open(tmp, "wb") as fh:
            fill(fh)
            if local:
                fh.flush()
                os.fsync(fh.fileno())
        fs.mv(tmp, path)
        if local:
            for named in [folder, *(os.path.dirname(new) for new in created)]:
                _sync_folder(named)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.rm_file(tmp)
        raise


def _missing_folders(folder: str) -> list[str]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while folder and not os.path.isdir(folder) and folder != os.path.dirname(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def _sync_folder(folder: str) -> None:
    """Make a local folder's entries (a file just moved into it) durable. A file
    system that cannot sync a folder says EINVAL: nothing more to do there (as
    PostgreSQL's fsync_fname takes it)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def unwritable(base_url: str) -> str | None:
    """Why files cannot be written under the artifacts location, or None: a probe file
    is written and removed (a server's uploads and a worker's checkpoints go there,
    so a location that refuses them must stop the process at start, not fail every
    job at its first checkpoint)."""
    probe = artifact_url(base_url, f".write-probe-{secrets.token_hex(8)}")
    try:
        write_file(probe, b"")
    except Exception as exc:  # any fsspec backend's error
        return f"cannot write there: {type(exc).__name__}: {exc}"
    try:
        remove_file(probe)
    except Exception as exc:  # retention and deletes would leave every file behind
        return f"cannot remove a file written there ({probe}): {type(exc).__name__}: {exc}"
    return None


def read_file(url: str) -> bytes:
    with fsspec.open(url, "rb") as fh:
        data: bytes = fh.read()
    return data


def iter_file(url: str) -> Iterator[bytes]:
    with fsspec.open(url, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk


def file_size(url: str) -> int:
    """Size in bytes; FileNotFoundError if the file is missing."""
    fs, path = fsspec.core.url_to_fs(url)
    return int(fs.size(path))


def remove_file(url: str) -> None:
    """Delete the file at ``url``; a missing file is not an error."""
    removed_file(url)


def removed_file(url: str) -> bool:
    """Delete the file at ``url``; False if it was not there (something else removed
    it meanwhile). A remote store may not say: True there."""
    fs, path = fsspec.core.url_to_fs(url)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        return False
    return True


def remove_quietly(url: str, *, location: str) -> None:
    """remove_file for a file that no committed row names (any more): a failure
    (permissions, a store that is down) is logged, not raised, since what the caller
    answers for has happened or failed already; the file is left as an orphan.

    Only inside `location` (the artifacts location this process writes to): rows
    store absolute URLs, so a database restored beside a live system, with its files
    copied elsewhere, names the live system's files (docs/operations.md, Backups)."""
    if not is_inside(location, url):
        log.warning(
            "not removing %s: it is outside LAGTRAIN_ARTIFACTS_URL (%s); a database "
            "restored from a system whose artifacts were elsewhere?",
            url,
            artifact_url(location, ""),
        )
        return
    try:
        remove_file(url)
    except Exception:
        log.exception("could not remove %s; its row is gone, the file is left behind", url)


def job_folder(location: str, job_id: int | str) -> str:
    """The folder a job's checkpoints are written in."""
    return artifact_url(location, f"jobs/{job_id}")


def checkpoint_url(location: str, job_id: int | str, round_: int, attempt: int) -> str:
    """Where the checkpoint after round `round_` goes (the driver writes it).
    Named by the attempt too: a lost attempt's gang that still runs never writes over
    the file the current attempt recorded."""
    return f"{job_folder(location, job_id)}/round-{round_ + 1:08d}-a{attempt}.pt"


def remove_empty_folders(urls: list[str], *, location: str, job_ids: Iterable[int] = ()) -> None:
    """After files went (remove_quietly): the local folders that held them, and each
    of `job_ids`' own folder (its checkpoints may have been deleted before the job,
    leaving no row to name it), when empty now and below `location` (never the
    location itself), so deleting a job leaves no `jobs/<id>/` behind — best effort:
    a folder not empty is kept (a file no row names stays where `lagtrain
    orphan-files` finds it), and a gang the reaper cut off may still write one. Like
    remove_quietly it never raises: the delete has committed. Remote stores have no
    folders to remove."""
    root = local_path(location)
    if root is None:
        return
    top = root.resolve()
    folders = {path.parent for url in urls if (path := local_path(url)) is not None}
    folders |= {Path(job_folder(location, job_id)) for job_id in job_ids}  # local: a path
    for folder in folders:
        try:
            if folder.resolve() == top or not is_inside(location, folder.as_posix()):
                continue
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty, or not ours to remove: left, not an error
            log.debug("kept %s", folder, exc_info=True)
        except Exception:  # e.g. a symlink loop (RuntimeError): the folder is left
            log.warning("could not remove the folder %s", folder, exc_info=True)


def is_inside(location: str, url: str) -> bool:
    """Whether `url` names a file under the artifacts location `location`."""
    root = local_path(location)
    target = local_path(url)
    if root is not None:
        # The folder resolved, not the file: removing a link inside removes the link.
        if target is None:
            return False
        return (target.parent.resolve() / target.name).is_relative_to(root.resolve())
    # Remote: compared as written (a location is always written the same way here;
    # `gs://` and `gcs://` for one bucket would not match, and nothing is removed).
    return target is None and url.startswith(location.rstrip("/") + "/")


def local_copy(url: str, cache_dir: Path, *, now: float | None = None) -> Path:
    """A local path holding the file at ``url``: the path itself for a local URL, else
    a copy in ``cache_dir`` made once per URL on this machine (an upload's URL names
    one upload's bytes, so a copy never goes stale).

    The copy is written under a temporary name and renamed, so the replicas of a job
    sharing a machine never read half a file (a second one copies too and renames
    the same bytes over), and a crash mid-copy leaves no file under the final name.
    Each use marks the copy used (its access time); copies unused for
    LOCAL_COPY_UNUSED_S are removed when a new one is made (a deleted upload's copy
    goes that way too)."""
    path = local_path(url)
    if path is not None:
        return path
    now = time.time() if now is None else now
    target = cache_dir / hashlib.sha256(url.encode()).hexdigest()
    try:
        # Its access time only: the sha256 memo of a dataset file is keyed by its
        # modification time (workers.training.data_files), and marking each use there
        # made every job start hash the whole copy again (a review).
        os.utime(target, ns=(int(now * 1e9), target.stat().st_mtime_ns))
        return target
    except FileNotFoundError:
        pass
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_unused(cache_dir, now - LOCAL_COPY_UNUSED_S)
    with fsspec.open(url, "rb") as source:
        write_once_from(str(target), source)
    os.utime(target, (now, now))
    return target


def _remove_unused(cache_dir: Path, before: float) -> None:
    """Housekeeping, never the job's failure: what cannot be removed stays (logged).
    A job reading an old copy keeps it open, so unlinking never cuts a read short; a
    copy marked used between this stat and its unlink (after a week unused, in that
    instant) is lost to its job's attempt, which is retried."""
    try:
        for entry in cache_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file() and entry.stat().st_atime < before:
                    entry.unlink()
    except OSError:
        log.warning("could not prune the copies in %s", cache_dir, exc_info=True)
