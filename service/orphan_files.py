"""Files in the artifacts location that no row names, found and removed by an admin
(`lagtrain admin orphan-files`).

They come from faults, never from a clean path: a checkpoint file whose attempt was
fenced off (StaleLease) or whose dispatcher died before recording it, a file whose
row was deleted or replaced (retention, a user's delete, a resumed attempt's
checkpoint of the same round) but whose removal failed or never ran (a crash
between the commit and the removal). Only the folders lagtrain writes are searched
(`datasets/`, `jobs/`), and only files older than a grace period: an upload or a
checkpoint is written before its row commits, so a young file may be named a moment
later."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import fsspec
from sqlalchemy.orm import Session, sessionmaker

from service.artifacts import local_path, remove_file
from service.store.artifact_files import named_uris
from service.store.db import read_transaction

# The folders under the artifacts location that lagtrain writes, and how many path
# components a file's name has below the location: datasets/<file>, jobs/<job>/<file>.
OWNED_FOLDERS = {"datasets": 2, "jobs": 3}


@dataclass(frozen=True)
class StoredFile:
    url: str
    key: str  # its path below the artifacts location, e.g. "jobs/12/round-00000010-a1.pt"
    bytes: int
    modified: float  # seconds since the epoch


def stored_files(artifacts_url: str) -> Iterator[StoredFile]:
    """Every file in the owned folders, with its size and modification time."""
    fs, base = fsspec.core.url_to_fs(artifacts_url)
    local = local_path(artifacts_url) is not None
    for folder in OWNED_FOLDERS:
        root = f"{base.rstrip('/')}/{folder}"
        for path, info in sorted(fs.find(root, detail=True).items()):
            if info.get("type") != "file":
                continue
            yield StoredFile(
                url=path if local else fs.unstrip_protocol(path),
                key=path[len(base.rstrip("/")) + 1 :],
                bytes=int(info.get("size") or 0),
                modified=fs.modified(path).timestamp(),
            )


def _named_keys(uris: Iterable[str]) -> set[str]:
    """The names rows give, as keys below the location. Matched by their last path
    components rather than by the whole URL, so a row written under another spelling
    of the location (a relative path, another protocol prefix) still protects its file:
    a mismatch can only keep an orphan, never delete a named file."""
    keys: set[str] = set()
    for uri in uris:
        parts = uri.rstrip("/").split("/")
        keys.update("/".join(parts[-depth:]) for depth in set(OWNED_FOLDERS.values()))
    return keys


def find_orphans(
    *, sessions: sessionmaker[Session], artifacts_url: str, older_than: float
) -> list[StoredFile]:
    """The owned files no row names, last modified before `older_than` (epoch s).
    The files are listed before the rows are read: a file whose row commits in
    between is then seen as named."""
    files = [f for f in stored_files(artifacts_url) if f.modified < older_than]
    with read_transaction(sessions) as session:
        named = _named_keys(named_uris(session=session))
    return [f for f in files if f.key not in named]


def remove_orphans(orphans: Iterable[StoredFile]) -> tuple[int, int]:
    """Remove the files; returns (files, bytes) removed."""
    count = size = 0
    for orphan in orphans:
        remove_file(orphan.url)
        count += 1
        size += orphan.bytes
    return count, size
