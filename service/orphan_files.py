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
from dataclasses import dataclass, field
from datetime import UTC, datetime

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from sqlalchemy.orm import Session, sessionmaker

from service.artifacts import local_path, remove_empty_folders, removed_file
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


@dataclass(frozen=True)
class Scan:
    location: str  # the artifacts location searched, as resolved here
    listed: int  # files in the owned folders
    named: int  # of those, files a row names
    rows: int  # file names the rows give
    orphans: list[StoredFile]  # old enough, named by no row

    @property
    def looks_misplaced(self) -> bool:
        """Rows name files, files are there, and not one of them is named: the rows
        were written for another location (a relative LAGTRAIN_ARTIFACTS_URL read
        from another working directory, another server's settings)."""
        return self.rows > 0 and self.listed > 0 and self.named == 0


@dataclass
class Removal:
    files: int = 0
    bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, why)


def unsearchable(artifacts_url: str) -> str | None:
    """Why a local artifacts location cannot be searched, or None. A folder that does
    not exist lists no files, which would read as "nothing to clean": an operator who
    mistyped the location, or ran the command from another working directory with a
    relative one, must be told, not reassured. A remote location (gs://, s3://) is not
    checked: an object store has no folders, only keys under a prefix."""
    path = local_path(artifacts_url)
    if path is None:
        return None
    try:
        if path.is_dir():
            return None
        where = path.resolve()  # a relative location is read from the working directory
        return f"{where} is not a folder" if path.exists() else f"there is no folder {where}"
    except (OSError, RuntimeError) as exc:  # not allowed to look; a symlink loop
        return f"cannot be read: {exc}"


def _searched(artifacts_url: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem and the base path searched: a local location is the folder the
    server writes to, read by the one rule (artifacts.local_path), resolved."""
    path = local_path(artifacts_url)
    if path is not None:
        return LocalFileSystem(), path.resolve().as_posix()
    fs, base = fsspec.core.url_to_fs(artifacts_url)
    return fs, base


def _unless_missing(exc: OSError) -> None:
    """An owned folder not made yet (no upload, no checkpoint) holds no files; one
    that cannot be listed must not read as empty."""
    if not isinstance(exc, FileNotFoundError):
        raise exc


def stored_files(artifacts_url: str) -> Iterator[StoredFile]:
    """Every file in the owned folders, with its size and modification time."""
    fs, base = _searched(artifacts_url)
    local = local_path(artifacts_url) is not None
    for folder in OWNED_FOLDERS:
        root = f"{base.rstrip('/')}/{folder}"
        listed = fs.find(root, detail=True, on_error=_unless_missing)
        for path, info in sorted(listed.items()):
            if info.get("type") != "file":
                continue
            yield StoredFile(
                url=path if local else fs.unstrip_protocol(path),
                key=path[len(base.rstrip("/")) + 1 :],
                bytes=int(info.get("size") or 0),
                modified=_epoch(fs.modified(path)),
            )


def _epoch(modified: datetime) -> float:
    # A backend's naive time is UTC (object stores' Last-Modified): read as local
    # time it would make files look hours older on a host east of Greenwich.
    return (modified if modified.tzinfo else modified.replace(tzinfo=UTC)).timestamp()


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


def find_orphans(*, sessions: sessionmaker[Session], artifacts_url: str, older_than: float) -> Scan:
    """The owned files no row names, last modified before `older_than` (epoch s).
    The files are listed before the rows are read: a file whose row commits in
    between is then seen as named."""
    files = list(stored_files(artifacts_url))
    with read_transaction(sessions) as session:
        uris = named_uris(session=session)
    named = _named_keys(uris)
    fs, base = _searched(artifacts_url)
    return Scan(
        location=base if local_path(artifacts_url) is not None else fs.unstrip_protocol(base),
        listed=len(files),
        named=sum(f.key in named for f in files),
        rows=len(uris),
        orphans=[f for f in files if f.key not in named and f.modified < older_than],
    )


def remove_orphans(orphans: Iterable[StoredFile], removal: Removal, *, location: str) -> None:
    """Remove the files, going on past one that cannot be removed (named in `failed`);
    `removal` counts as it goes, so a caller interrupted midway knows what went — only
    files that were there (two runs at once, or a dispatcher's late removal, counted
    one file twice). Then a job's folder the removals left empty goes too, as a
    job's delete removes it (a deleted job's late checkpoint left `jobs/<id>/`)."""
    job_files: list[str] = []
    try:
        for orphan in orphans:
            try:
                if not removed_file(orphan.url):
                    continue
            except OSError as exc:
                removal.failed.append((orphan.url, str(exc) or type(exc).__name__))
                continue
            removal.files += 1
            removal.bytes += orphan.bytes
            if orphan.key.startswith("jobs/"):
                job_files.append(orphan.url)
    finally:
        remove_empty_folders(job_files, location=location)
