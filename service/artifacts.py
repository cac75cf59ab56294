"""Files in the artifacts location (settings.artifacts_url, any fsspec URL)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import fsspec

CHUNK_BYTES = 1 << 20


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def artifact_url(base_url: str, relative: str) -> str:
    """An absolute URL for ``relative`` under ``base_url``; local paths are resolved so
    that a process with another working directory finds the same file."""
    if _is_local(base_url):
        base = Path(base_url.removeprefix("file://")).resolve()
        return (base / relative).as_posix()
    return f"{base_url.rstrip('/')}/{relative}"


def write_once(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` unless it exists (content-addressed names make an
    existing file the same file). Written under a temporary name, then moved, so a
    reader never sees half a file."""
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path):
        return
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{secrets.token_hex(8)}"
    with fs.open(tmp, "wb") as fh:
        fh.write(data)
    fs.mv(tmp, path)


def iter_file(url: str) -> Iterator[bytes]:
    with fsspec.open(url, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk


def file_size(url: str) -> int:
    """Size in bytes; FileNotFoundError if the file is missing."""
    fs, path = fsspec.core.url_to_fs(url)
    return int(fs.size(path))
