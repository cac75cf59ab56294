"""Files in the artifacts location (settings.artifacts_url, any fsspec URL)."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import fsspec

CHUNK_BYTES = 1 << 20
log = logging.getLogger(__name__)


def local_path(url: str) -> Path | None:
    """The filesystem path of a local URL (a plain path or file://), else None."""
    if "://" not in url or url.startswith("file://"):
        return Path(url.removeprefix("file://"))
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
    if fs.exists(path):
        return
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{path}.tmp-{secrets.token_hex(8)}"
    with fs.open(tmp, "wb") as fh:
        while chunk := source.read(CHUNK_BYTES):
            fh.write(chunk)
    fs.mv(tmp, path)


def write_file(url: str, data: bytes) -> None:
    """Write ``data`` to ``url``, replacing any file there. Written under a unique
    temporary name, then moved, so a reader never sees half a file and two writers
    never share a temporary file."""
    fs, path = fsspec.core.url_to_fs(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{path}.tmp-{secrets.token_hex(8)}"
    with fs.open(tmp, "wb") as fh:
        fh.write(data)
    fs.mv(tmp, path)


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
    fs, path = fsspec.core.url_to_fs(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def remove_quietly(url: str) -> None:
    """remove_file for a file that no committed row names (any more): a failure
    (permissions, a store that is down) is logged, not raised, since what the caller
    answers for has happened or failed already; the file is left as an orphan."""
    try:
        remove_file(url)
    except Exception:
        log.exception("could not remove %s; its row is gone, the file is left behind", url)
