"""A gang that fails as it closes, after its last round (or the drain's round) and
that round's checkpoint are stored: nothing is lost, so the attempt is not failed (a
data-plane review: the job used an attempt, or ended `failed` on its last, with
every round and the final checkpoint recorded). No Ray: the gang is a stand-in
whose events are given, then an error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.resolve import resolve
from service.store.attempts import ClaimedJob, claim_next
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.users import create_user
from tests.store.conftest import load_job
from tests.workers.dispatcher_seams import dispatcher_store
from workers import job_run
from workers.job_run import JobRun
from workers.ray_job import CheckpointEvent, JobEvent, RecordEvent

ROUNDS = 3


class ClosingFails:
    """Stands in for workers.ray_job.RayJob: starts, sends `script`'s events, then
    raises as its group closes."""

    script: ClassVar[list[JobEvent]] = []

    def __init__(self, _spec: Any, **_kwargs: Any) -> None:
        self.hands_back = False

    def start(self, **_kwargs: Any) -> None:
        pass

    def events(self) -> Iterator[JobEvent]:
        yield from ClosingFails.script
        raise RuntimeError("gloo: the group's close failed")

    def request_stop(self, checkpoint: bool = True) -> None:
        pass

    def free_resources(self) -> None:
        pass

    def stop(self) -> None:
        pass


def _record(round_: int) -> RecordEvent:
    return RecordEvent(round_, {"train_loss": 1.0 / (round_ + 1)}, (0,))


def _checkpoint(round_: int, tmp_path: Path) -> CheckpointEvent:
    path = tmp_path / f"ckpt-{round_}.pt"
    path.write_bytes(b"x")
    return CheckpointEvent(round_, str(path), "0" * 64, 1)


@pytest.fixture
def gang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_run, "RayJob", ClosingFails)


def _claimed(sessions: sessionmaker[Session]) -> ClaimedJob:
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        spec = resolve({"task": {"kind": "adding"}, "schedule": {"rounds": ROUNDS}})
        enqueue(session=session, owner_id=user.id, spec=spec.model_copy(update={"max_attempts": 1}))
        claimed = claim_next(
            session=session, dispatcher_id="d1", lease_seconds=60, free_cpus=64, free_gpus=0
        )
        assert claimed is not None
        return claimed


@pytest.mark.usefixtures("gang")
def test_an_error_after_the_final_checkpoint_is_stored_ends_the_job_succeeded(
    tmp_path: Path,
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    ClosingFails.script = [*map(_record, range(ROUNDS)), _checkpoint(ROUNDS - 1, tmp_path)]
    claimed = _claimed(sessions)
    JobRun(claimed, settings=settings, sessions=sessions).run()
    job = load_job(sessions, claimed.job_id)
    assert (job.status, job.attempt, job.error) == ("succeeded", 1, None)
    assert job.summary is not None and job.summary["rounds_completed"] == ROUNDS


@pytest.mark.usefixtures("gang")
def test_an_error_before_the_final_checkpoint_is_stored_still_fails_the_attempt(
    tmp_path: Path,
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    ClosingFails.script = [*map(_record, range(ROUNDS))]  # the last round's checkpoint lost
    claimed = _claimed(sessions)
    JobRun(claimed, settings=settings, sessions=sessions).run()
    job = load_job(sessions, claimed.job_id)
    assert job.status == "failed" and job.error is not None
    assert "the group's close failed" in job.error


@pytest.mark.usefixtures("gang")
def test_a_drained_job_whose_checkpoint_is_stored_goes_back_to_the_queue(
    tmp_path: Path,
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    ClosingFails.script = [_record(0), _checkpoint(0, tmp_path)]  # the drain's checkpoint
    claimed = _claimed(sessions)
    run = JobRun(claimed, settings=settings, sessions=sessions)
    run.drain_requested.set()
    run.run()
    job = load_job(sessions, claimed.job_id)
    # Handed back, its attempt not used (max_attempts grows by one).
    assert (job.status, job.max_attempts) == ("queued", 2), job.error
