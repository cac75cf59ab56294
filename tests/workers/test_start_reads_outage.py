"""An attempt's start reads the store (its uploaded dataset's files, the older
checkpoints when the newest fails its check): a store blip there is ridden through
as the run's writes are. Before, one lost connection failed the attempt "dispatcher
error" (a review, 2026-12-06): it used one of the job's attempts, and on the last
one failed the job. No Ray: the gang is a stand-in that records what it was given
and refuses to start, so the attempt ends in the gang's own words."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy.exc
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.resolve import resolve
from service.store.attempts import ClaimedJob, claim_next
from service.store.checkpoints import CheckpointRef
from service.store.datasets import create_dataset
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Job, JobEvent
from service.store.users import create_user
from tests.workers.dispatcher_seams import dispatcher_store
from workers import job_run
from workers.job_run import JobRun


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
    """Stands in for workers.ray_job.RayJob: keeps what it was given, never starts."""

    given: ClassVar[dict[str, Any]] = {}

    def __init__(self, _spec: Any, **kwargs: Any) -> None:
        NoGang.given = kwargs

    def start(self, *, resume: tuple[str, str] | None, **_kwargs: Any) -> None:
        NoGang.given["resume"] = resume
        raise RuntimeError("no Ray in this test")

    def free_resources(self) -> None:
        pass

    def stop(self) -> None:
        pass


def _claimed(sessions: sessionmaker[Session], spec: dict[str, Any]) -> ClaimedJob:
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
    monkeypatch.setattr(job_run, "RayJob", NoGang)


@pytest.mark.usefixtures("no_gang")
def test_a_store_blip_while_the_dataset_is_read_does_not_fail_the_attempt(tmp_path: Path) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        data = create_dataset(
            session=session,
            owner_id=user.id,
            filename="text.txt",
            fmt="text",
            size=5,
            sha256="0" * 64,
            uri=str(tmp_path / "text.txt"),
            shape={"chars": 5, "distinct_chars": 3, "two_distinct_within": 2},
        )
        spec = {"task": {"kind": "char_lm", "dataset": f"upload:{data.id}"}, "max_attempts": 1}
        job, _ = enqueue(session=session, owner_id=user.id, spec=resolve(spec))
    claimed = _claimed(sessions, spec)
    flaky = FirstWorkFails(sessions)
    JobRun(claimed, settings=settings, sessions=flaky).run()  # type: ignore[arg-type]
    assert flaky.calls >= 2, "the dataset's read was the first unit of work, and retried"
    assert NoGang.given["datasets"] == {str(data.id): str(tmp_path / "text.txt")}
    ended, _ = _ended(sessions, job.id)
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
    claimed = dataclasses.replace(_claimed(sessions, spec), resume=gone)
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
