"""What an attempt reads as it starts: the store (its uploaded dataset's files, the
older checkpoints when the newest fails its check), where a blip is ridden through
as the run's writes are — before, one lost connection failed the attempt
"dispatcher error" (a review, 2026-12-06), using one of the job's attempts — and
the dataset's file, checked against its sha256 from the upload. No Ray: the gang is
a stand-in that records what it was given and refuses to start, so the attempt ends
in the gang's own words."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, ClassVar

import pytest
import ray
import sqlalchemy.exc
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.resolve import resolve
from service.settings import Settings
from service.store.attempts import ClaimedJob, claim_next
from service.store.checkpoints import (
    CheckpointRef,
    checkpoint_ref,
    list_checkpoints,
)
from service.store.datasets import create_dataset
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Job, JobEvent
from service.store.users import create_user
from tests.workers.checkpoint_files import record_checkpoints
from tests.workers.dispatcher_seams import dispatcher_store
from workers import job_run
from workers.job_run import JobRun
from workers.resume import ResumeFailed, resume_failure
from workers.training.checkpoint import CorruptCheckpoint


class FirstWorkFails:
    """The store drops one connection: the first unit of work raises the error a
    PostgreSQL restart gives (OperationalError), then all is well."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions, self.calls = sessions, 0

    def __call__(self) -> Session:
        self.calls += 1
        session = self.sessions()
        if self.calls == 1:

            @event.listens_for(session, "after_begin")
            def lost(*_args: Any) -> None:
                raise sqlalchemy.exc.OperationalError(
                    "BEGIN", {}, Exception("server closed the connection unexpectedly")
                )

        return session


class NoGang:
    """Stands in for workers.ray_job.RayJob: keeps what it was given, never starts;
    its driver cannot load the checkpoints in `unloadable`."""

    given: ClassVar[dict[str, Any]] = {}
    unloadable: ClassVar[set[str]] = set()
    resumed_from: ClassVar[list[str | None]] = []
    stopped: ClassVar[bool] = False

    def __init__(self, _spec: Any, **kwargs: Any) -> None:
        NoGang.given = kwargs

    def start(self, *, resume: tuple[str, str] | None, **_kwargs: Any) -> None:
        NoGang.given["resume"] = resume
        self.restart(resume=resume)

    def restart(self, *, resume: tuple[str, str] | None, **_kwargs: Any) -> None:
        # The placement group stays held between tries: no stop() before the end.
        assert not NoGang.stopped, "the gang's room was given up between tries"
        NoGang.resumed_from.append(None if resume is None else resume[0])
        if resume is not None and resume[0] in NoGang.unloadable:
            raise ResumeFailed(resume[0], "KeyError: 'format'")
        raise RuntimeError("no Ray in this test")

    def free_resources(self) -> None:
        NoGang.stopped = True

    def stop(self) -> None:
        NoGang.stopped = True


def _job_on_an_upload(
    sessions: sessionmaker[Session], path: Path, *, max_attempts: int
) -> tuple[int, int]:
    """(job id, dataset id): a char_lm job queued on an upload stored at `path`."""
    text = b"hello world\n" * 100
    path.write_bytes(text)
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        data = create_dataset(
            session=session,
            owner_id=user.id,
            filename="text.txt",
            fmt="text",
            size=len(text),
            sha256=hashlib.sha256(text).hexdigest(),
            uri=str(path),
            shape={"chars": len(text), "distinct_chars": 8, "two_distinct_within": 2},
        )
        task = {"kind": "char_lm", "dataset": f"upload:{data.id}"}
        spec = resolve({"task": task, "max_attempts": max_attempts})
        job, _ = enqueue(session=session, owner_id=user.id, spec=spec)
        return job.id, data.id


def _claimed(sessions: sessionmaker[Session]) -> ClaimedJob:
    with transaction(sessions) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d1", lease_seconds=60, free_cpus=64, free_gpus=0
        )
        assert claimed is not None
        return claimed


def _ended(sessions: sessionmaker[Session], job_id: int) -> tuple[Job, list[str]]:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        reasons = session.scalars(
            select(JobEvent.reason).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        )
        return job, [r for r in reasons if r]


@pytest.fixture
def no_gang(monkeypatch: pytest.MonkeyPatch) -> None:
    NoGang.given, NoGang.unloadable, NoGang.resumed_from = {}, set(), []
    NoGang.stopped = False
    monkeypatch.setattr(job_run, "RayJob", NoGang)


@pytest.mark.usefixtures("no_gang")
def test_a_store_blip_while_the_dataset_is_read_does_not_fail_the_attempt(tmp_path: Path) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    job_id, data_id = _job_on_an_upload(sessions, tmp_path / "text.txt", max_attempts=1)
    claimed = _claimed(sessions)
    flaky = FirstWorkFails(sessions)
    JobRun(claimed, settings=settings, sessions=flaky).run()  # type: ignore[arg-type]
    assert flaky.calls >= 2, "the dataset's read was the first unit of work, and retried"
    assert NoGang.given["datasets"] == {str(data_id): str(tmp_path / "text.txt")}
    ended, _ = _ended(sessions, job_id)
    assert ended.status == "failed" and ended.error is not None
    assert ended.error.startswith("could not start the gang: RuntimeError: no Ray in this test"), (
        ended.error
    )


@pytest.mark.usefixtures("no_gang")
def test_a_store_blip_while_older_checkpoints_are_listed_does_not_fail_the_attempt(
    tmp_path: Path,
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    spec = {"task": {"kind": "adding"}, "max_attempts": 1}
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        job, _ = enqueue(session=session, owner_id=user.id, spec=resolve(spec))
    # Resumed from a checkpoint whose file is gone: the older ones are listed.
    gone = CheckpointRef(
        id=1, attempt=1, round=9, seq=10, uri=str(tmp_path / "gone.pt"), sha256="0" * 64, bytes=1
    )
    claimed = dataclasses.replace(_claimed(sessions), resume=gone)
    flaky = FirstWorkFails(sessions)
    JobRun(claimed, settings=settings, sessions=flaky).run()  # type: ignore[arg-type]
    assert flaky.calls >= 2
    assert NoGang.given["resume"] is None, "no file verifies: round 0"
    ended, reasons = _ended(sessions, job.id)
    assert any("resuming from the start (round 0)" in r for r in reasons), reasons
    assert ended.error is not None
    assert ended.error.startswith("could not start the gang: RuntimeError: no Ray in this test"), (
        ended.error
    )


@pytest.mark.usefixtures("no_gang")
def test_a_dataset_file_changed_since_its_upload_fails_the_job_without_a_retry(
    tmp_path: Path,
) -> None:
    """Its bytes were checked at upload, and a job on them at submit: training on
    other bytes would be a silent lie (checkpoints are checked so before a resume).
    No retry can mend it, so the job fails, saying what to do."""
    settings, sessions = dispatcher_store(tmp_path)
    path = tmp_path / "text.txt"
    job_id, data_id = _job_on_an_upload(sessions, path, max_attempts=3)
    path.write_bytes(b"changed where the server stores artifacts\n")
    JobRun(_claimed(sessions), settings=settings, sessions=sessions).run()
    ended, _ = _ended(sessions, job_id)
    assert (ended.status, ended.attempt) == ("failed", 1), ended.error
    assert ended.error is not None and f"the file of upload:{data_id} is missing" in ended.error
    assert "upload it again" in ended.error and "datasets" not in NoGang.given


def _checkpointed(
    settings: Settings, sessions: sessionmaker[Session], rounds: tuple[int, ...]
) -> tuple[ClaimedJob, list[CheckpointRef]]:
    """A claimed job whose attempt recorded a checkpoint after each of `rounds` (files
    that verify), claimed again to resume from the newest; its refs oldest first."""
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        spec = resolve({"task": {"kind": "adding"}, "max_attempts": 1})
        job, _ = enqueue(session=session, owner_id=user.id, spec=spec)
    claimed = _claimed(sessions)
    with transaction(sessions) as session:
        record_checkpoints(session, settings.artifacts_url, claimed, rounds)
        refs = [checkpoint_ref(c) for c in list_checkpoints(session=session, job_id=job.id)]
    return dataclasses.replace(claimed, resume=refs[-1]), refs


@pytest.mark.usefixtures("no_gang")
@pytest.mark.parametrize("loadable", ["older", "none"])
def test_a_checkpoint_the_driver_cannot_load_falls_back_to_an_older_one(
    tmp_path: Path, loadable: str
) -> None:
    """A checkpoint written by another version (a deploy between a drain and the
    resume) passes its sha256 but does not load: each attempt failed on it and the
    job failed (a review). Now a fresh gang resumes from the next older checkpoint
    that loads, or from round 0, and the job's events say so."""
    settings, sessions = dispatcher_store(tmp_path)
    claimed, (older, newest) = _checkpointed(settings, sessions, (9, 19))
    NoGang.unloadable = {newest.uri} if loadable == "older" else {newest.uri, older.uri}
    JobRun(claimed, settings=settings, sessions=sessions).run()
    expected = [newest.uri, older.uri] + ([None] if loadable == "none" else [])
    assert NoGang.resumed_from == expected
    ended, reasons = _ended(sessions, claimed.job_id)
    assert ended.error is not None and "no Ray in this test" in ended.error, ended.error
    unloadable = "could not be loaded (KeyError: 'format'); resuming from"
    notes = [
        f"the checkpoint after 20 rounds {unloadable} the one after 10 rounds",
        f"the checkpoint after 10 rounds {unloadable} the start (round 0)",
    ]
    assert [r for r in reasons if unloadable in r] == notes[: 1 if loadable == "older" else 2]


def _replica_raised(cause: BaseException) -> BaseException:
    """What the driver's ray.get of a replica's call raises in the driver: Ray's
    wrapper, also an instance of the cause's class (as_instanceof_cause)."""
    wrapped = ray.exceptions.RayTaskError("load_state_dict", "tb", cause)  # type: ignore[no-untyped-call]
    error: BaseException = wrapped.as_instanceof_cause()  # type: ignore[no-untyped-call]
    return error


@pytest.mark.parametrize(
    ("cause", "unloadable"),
    [
        (CorruptCheckpoint("/c is not a lagtrain-checkpoint-v3 checkpoint"), True),
        (KeyError("format"), True),
        (RuntimeError("Error(s) in loading state_dict for RNN:\n\tsize mismatch"), True),
        (FileNotFoundError("/c"), False),  # a read: the next attempt may read it
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), False),
        (ray.exceptions.ActorDiedError(), False),  # a replica died during the load
        # A replica's own load, as the driver's call to it raises it (a review: a
        # rule's replica state whose key changed was retried on every attempt).
        (_replica_raised(KeyError("held")), True),
        (_replica_raised(ray.exceptions.ActorDiedError()), False),
    ],
)
def test_only_a_load_the_checkpoint_itself_failed_falls_back(
    cause: BaseException, unloadable: bool
) -> None:
    """A fallback to an older checkpoint throws away rounds: only for errors of the
    load itself, not for a replica that died or memory that ran out (a review)."""
    error = ray.exceptions.RayTaskError("resume", "traceback", cause)  # type: ignore[no-untyped-call]
    seen = resume_failure(error, "/c")
    assert isinstance(seen, ResumeFailed) is unloadable, seen
    assert seen is error or str(seen).startswith("the checkpoint /c could not be loaded: ")
