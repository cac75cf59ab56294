"""Choosing the checkpoint a new attempt resumes from: the newest one whose file
still matches its recorded sha256. A file that fails the check (overwritten, cut
short, lost) is skipped for the next older one, and the job's events say so; with
none left the attempt starts at round 0 (the metrics already stored are kept: the
store ignores records it has, by seq). One the driver then cannot load (written by
another version) is left the same way, on a fresh gang (`fallback_resume`). And the
uploaded dataset's files the attempt reads, checked against their upload."""

from __future__ import annotations

import functools
import hashlib
import logging
import pickle
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import ray
from sqlalchemy.orm import Session

from service.artifacts import iter_file
from service.schemas.resolved import ResolvedSpec
from service.store import lifecycle
from service.store.attempts import ClaimedJob
from service.store.checkpoints import CheckpointRef, checkpoint_ref, list_checkpoints
from service.store.datasets import UPLOAD_PREFIX, dataset_files

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreRun(Protocol):
    """Runs one unit of store work and returns its result: the attempt's writer,
    which rides through an outage (workers.store_writer)."""

    def __call__(self, fn: Callable[[Session], T], /) -> T: ...


def rounds_done(count: int) -> str:
    """A count of finished rounds for a message ("after 677 rounds"): the API numbers
    rounds from 0 and checkpoint files by rounds done, so "after round N" read both
    ways."""
    return "1 round" if count == 1 else f"{count} rounds"


def file_matches(ref: CheckpointRef) -> bool:
    """True when the file at ref.uri exists and hashes to ref.sha256; False for a
    file gone or changed. A read that fails otherwise raises (`_hashes_to`)."""
    return _hashes_to(ref.uri, ref.sha256)


def _hashes_to(uri: str, sha256: str) -> bool:
    """False for a file gone or changed; a read that fails otherwise (a permission,
    an NFS blip, a network error) raises, the start's error, retried: the next
    attempt may read it. Taken for damage, it failed a job's dataset for good
    ("upload it again"), and a resume fell back from a good checkpoint, saying it
    "failed the sha256 check" and training its rounds again (reviews)."""
    try:
        return _sha256_of(uri) == sha256
    except FileNotFoundError:
        return False


def _sha256_of(uri: str) -> str:
    digest = hashlib.sha256()
    for chunk in iter_file(uri):
        digest.update(chunk)
    return digest.hexdigest()


def verified_resume(
    newest: CheckpointRef | None, *, job_id: int, run: StoreRun
) -> tuple[CheckpointRef | None, str | None]:
    """(the checkpoint to resume from, or None for round 0; a note for the job's
    events when it is not `newest`, else None). `run` runs a unit of store work
    (the run's outage-riding writer)."""
    if newest is None or file_matches(newest):
        return newest, None
    older = [
        ref
        for ref in run(lambda session: _checkpoints_newest_first(session, job_id))
        if ref.round < newest.round
    ]
    chosen = next((ref for ref in older if file_matches(ref)), None)
    failed = [r for r in older if chosen is None or r.round > chosen.round]
    skipped = [newest.round + 1, *(r.round + 1 for r in failed)]
    rounds = ", ".join(str(r) for r in skipped)
    if chosen is None:
        note = (
            f"no checkpoint file verifies (the files written after {rounds} rounds are "
            "missing or fail the sha256 check); resuming from the start (round 0)"
        )
    else:
        note = (
            f"the checkpoint files written after {rounds} rounds failed the sha256 "
            f"check; resuming from the one after {rounds_done(chosen.round + 1)}"
        )
    log.warning("job %s: %s", job_id, note)
    return chosen, note


def resume_point(
    claimed: ClaimedJob,
    *,
    run: StoreRun,
    write: Callable[[Callable[[Session], Any]], Any],
) -> tuple[str, str] | None:
    """(uri, sha256) of the checkpoint the attempt resumes from, or None for round 0.
    Older checkpoints are listed through `run`, and a fallback to one is written to
    the job's events through `write` (the run's fenced, outage-riding store writer)."""
    ref, note = verified_resume(claimed.resume, job_id=claimed.job_id, run=run)
    if note is not None:
        _note(claimed, write, note)
    _log_resume(claimed, ref)
    return None if ref is None else (ref.uri, ref.sha256)


class ResumeFailed(Exception):
    """The driver could not load the checkpoint it was to resume from (its format or
    contents are not what this version reads): an older checkpoint, or round 0, may
    still be (`fallback_resume`)."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"the checkpoint {uri} could not be loaded: {reason}")
        self.uri, self.reason = uri, reason


# What a load of a checkpoint this version cannot read raises: our format check
# (CorruptCheckpoint, a ValueError), torch's unpickler, a missing or changed key,
# and torch's "Error(s) in loading state_dict" (a RuntimeError, told by its text).
_UNLOADABLE = (ValueError, KeyError, TypeError, EOFError, pickle.UnpicklingError)


def resume_failure(exc: ray.exceptions.RayTaskError, uri: str) -> Exception:
    """What the resume's error means: the driver's load of the file raised
    (ResumeFailed: an older checkpoint may load), or anything else — its read
    failed, a replica died, memory ran out — which says nothing of the checkpoint:
    the error itself, retried as any start failure (falling back would throw away
    good rounds; a review). A replica's load raised inside the driver's call to it:
    Ray wraps its error once more (a RayTaskError, itself a RayError), so the
    wrappers are taken off first."""
    cause = exc.cause
    while isinstance(cause, ray.exceptions.RayTaskError) and cause.cause is not None:
        cause = cause.cause
    unloadable = isinstance(cause, _UNLOADABLE) or (
        isinstance(cause, RuntimeError) and "state_dict" in str(cause)
    )
    if not unloadable or isinstance(cause, ray.exceptions.RayError):
        return exc
    lines = str(cause).strip().splitlines()  # torch's can run to a dozen lines
    return ResumeFailed(uri, f"{type(cause).__name__}: {lines[0][:200] if lines else ''}")


def fallback_resume(
    failed: ResumeFailed,
    claimed: ClaimedJob,
    *,
    run: StoreRun,
    write: Callable[[Callable[[Session], Any]], Any],
) -> tuple[str, str] | None:
    """After the driver could not load the checkpoint at `failed.uri` (a checkpoint
    written by another version, after a deploy): the next older one whose file
    verifies, or None for round 0; the job's events say which and why. Before, every
    attempt failed on the same checkpoint and the job failed (a review)."""
    refs = run(lambda session: _checkpoints_newest_first(session, claimed.job_id))
    at = next((i for i, ref in enumerate(refs) if ref.uri == failed.uri), len(refs))
    chosen = next((ref for ref in refs[at + 1 :] if file_matches(ref)), None)
    what = (
        f"the checkpoint after {rounds_done(refs[at].round + 1)}"
        if at < len(refs)
        else "the checkpoint"
    )
    where = (
        "the start (round 0)"
        if chosen is None
        else f"the one after {rounds_done(chosen.round + 1)}"
    )
    note = f"{what} could not be loaded ({failed.reason}); resuming from {where}"
    log.warning("job %s: %s", claimed.job_id, note)
    _note(claimed, write, note)
    _log_resume(claimed, chosen)
    return None if chosen is None else (chosen.uri, chosen.sha256)


def _note(
    claimed: ClaimedJob, write: Callable[[Callable[[Session], Any]], Any], reason: str
) -> None:
    """`reason` in the job's events, under the attempt's token, through `write`."""
    write(
        lambda s: lifecycle.note(
            session=s,
            job_id=claimed.job_id,
            token=claimed.fencing_token,
            actor="dispatcher",
            reason=reason,
        )
    )


def _log_resume(claimed: ClaimedJob, ref: CheckpointRef | None) -> None:
    if ref is not None:
        # The chaos suite reads this line to count the rounds a resume re-trains.
        log.info(
            "job %s: attempt %s resumes after %s",
            claimed.job_id,
            claimed.attempt,
            rounds_done(ref.round + 1),
        )


class DatasetChanged(ValueError):
    """An uploaded dataset's file is gone, or no longer hashes to what its bytes hashed
    to at upload: the job would train on other data than it was checked against."""


def uploaded_datasets(spec: ResolvedSpec, *, run: StoreRun) -> dict[str, str]:
    """The files of the uploaded dataset the attempt trains on, by id ({} for a
    builtin dataset or a generated task), read through `run`, each checked against
    its sha256 from the upload as a checkpoint is before a resume (once per attempt,
    on the dispatcher's host: ≈ 0.1 s for a 50 MB file). DatasetChanged if one
    fails: no retry can fix it."""
    ref = spec.task.dataset or ""
    if not ref.startswith(UPLOAD_PREFIX):
        return {}
    dataset_id = int(ref[len(UPLOAD_PREFIX) :])
    files = run(lambda session: dataset_files(session=session, dataset_ids=[dataset_id]))
    if str(dataset_id) not in files:
        # No row (a database restored from before the upload, a row deleted by hand):
        # every attempt's gang failed at its start ("not handed to this job") instead.
        raise DatasetChanged(
            f"task.dataset: upload:{dataset_id} is no longer in the store (its row is "
            "gone); upload it again"
        )
    for key, (uri, sha256) in files.items():
        if not _hashes_to(uri, sha256):
            raise DatasetChanged(
                f"task.dataset: the file of upload:{key} is missing or no longer matches "
                "the sha256 recorded at its upload (changed or damaged where the server "
                "stores artifacts); upload it again"
            )
    return {key: uri for key, (uri, _sha256) in files.items()}


def _checkpoints_newest_first(session: Session, job_id: int) -> list[CheckpointRef]:
    """By round, then by when recorded: two attempts may each have written one after
    the same round (another version's, then this one's)."""
    refs = [checkpoint_ref(c) for c in list_checkpoints(session=session, job_id=job_id)]
    return sorted(refs, key=lambda ref: (ref.round, ref.id), reverse=True)


def start_with_fallback(
    gang: Any,
    claimed: ClaimedJob,
    resume: tuple[str, str] | None,
    *,
    ready_timeout_s: float,
    on_placed: Callable[[], None],
    run: StoreRun,
    write: Callable[[Callable[[Session], Any]], Any],
) -> None:
    """Start `gang` (a workers.ray_job.RayJob) from `resume`; while its driver cannot
    load the checkpoint (ResumeFailed), restart its actors in the placement group it
    holds from the next older one that verifies, or round 0 (`fallback_resume`). Each
    fallback is strictly older, so this ends, at round 0 at last."""
    start: Callable[..., int] = functools.partial(gang.start, on_placed=on_placed)
    while True:
        try:
            start(ready_timeout_s=ready_timeout_s, resume=resume)
            return
        except ResumeFailed as failed:  # an older checkpoint, or round 0, may load
            resume = fallback_resume(failed, claimed, run=run, write=write)
            start = gang.restart  # the placement group it holds, fresh actors
