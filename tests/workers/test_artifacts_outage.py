"""A short fault of the artifacts location, end to end on the session's real local Ray:
the job's checkpoint folder is unwritable at its first checkpoint (made a regular
file: as root, chmod does not stop a write), the driver waits it out retrying, and
the job succeeds on attempt 1 with that checkpoint recorded. Before, each attempt
failed at its first checkpoint and all three were used within seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import ray
from sqlalchemy.orm import Session, sessionmaker

from service.artifacts import job_folder
from service.settings import Settings
from service.store.models import Checkpoint, Job, JobAttempt, Metric
from tests.conftest import on_one_database
from tests.polling import wait_until
from tests.workers.test_dispatcher import finished, running_dispatcher, submit

pytestmark = pytest.mark.ray


def write_failures(sessions: sessionmaker[Session], job_id: int) -> int:
    """The failed checkpoint writes of the job's first attempt so far (its driver
    counts them), while the attempt has not failed."""
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.error is None, f"attempt failed: {job and job.error}"
    try:
        driver = ray.get_actor(f"lagtrain-job{job_id}-attempt1-driver")
    except ValueError:  # not started yet
        return 0
    failures: Any = ray.get(driver.checkpoint_write_failures.remote(), timeout=30)
    return int(failures)


def block(settings: Settings, job_id: int) -> Path:
    """The job's checkpoint folder made a regular file (as root, chmod stops no write)."""
    folder = Path(job_folder(settings.artifacts_url, job_id))
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_bytes(b"in the way")
    return folder


@on_one_database("postgresql")
def test_a_checkpoint_write_waits_out_an_unwritable_artifacts_folder(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None, ray_address: str
) -> None:
    rounds, every = 30, 10
    with running_dispatcher(settings, session_factory):
        job_id = submit(
            session_factory,
            {
                "task": {"kind": "adding"},
                "distributed": {"workers": 2, "cpus_per_worker": 0.5},
                "schedule": {"rounds": rounds, "checkpoint_every": every},
            },
        )
        # Blocked before the gang has started (seconds), so before its first checkpoint.
        folder = block(settings, job_id)

        # Two failures: the driver kept retrying, its attempt still running.
        wait_until(
            lambda: write_failures(session_factory, job_id) >= 2,
            timeout=120,
            what="the write to be retried",
        )
        with session_factory() as session:
            job = session.get(Job, job_id)
            assert job is not None and (job.status, job.attempt) == ("running", 1)
            assert session.query(Checkpoint).filter_by(job_id=job_id).count() == 0
        folder.unlink()  # the fault ends
        done = wait_until(lambda: finished(session_factory, job_id), timeout=120, what="the job")
    assert isinstance(done, Job)
    assert (done.status, done.attempt) == ("succeeded", 1), done.error
    with session_factory() as session:
        outcomes = [a.outcome for a in session.query(JobAttempt).filter_by(job_id=job_id)]
        recorded = sorted(c.round for c in session.query(Checkpoint).filter_by(job_id=job_id))
        seqs = [m.seq for m in session.query(Metric).filter_by(job_id=job_id).order_by(Metric.seq)]
    assert outcomes == ["succeeded"]
    assert recorded[0] == every - 1, "the checkpoint written after the fault is recorded"
    assert (folder / f"round-{every:08d}-a1.pt").is_file()
    assert seqs == list(range(1, rounds + 1))


@on_one_database("sqlite")
def test_a_drain_during_the_outage_hands_the_job_back_unused(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None, ray_address: str
) -> None:
    """A drain wants the checkpoint the outage holds up: the write keeps waiting, the
    drain's deadline hands the job back without using an attempt (its only one here),
    and the gang goes. The retry used to end at the drain's stop request, failing the
    attempt — the job, with max_attempts 1."""
    with running_dispatcher(settings, session_factory) as dispatcher:
        job_id = submit(
            session_factory,
            {
                "task": {"kind": "adding"},
                "distributed": {"workers": 2, "cpus_per_worker": 0.5},
                "schedule": {"rounds": 10_000, "checkpoint_every": 10},
            },
            max_attempts=1,
        )
        block(settings, job_id)
        wait_until(
            lambda: write_failures(session_factory, job_id) >= 2,
            timeout=120,
            what="the write to be retried",
        )
        dispatcher.drain(2.0)
        wait_until(lambda: queued_again(session_factory, job_id), timeout=60, what="the hand-back")
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.status, job.error) == ("queued", None)
        [attempt] = session.query(JobAttempt).filter_by(job_id=job_id).all()
        assert attempt.outcome == "released"
        assert session.query(Checkpoint).filter_by(job_id=job_id).count() == 0


def queued_again(sessions: sessionmaker[Session], job_id: int) -> bool:
    with sessions() as session:
        job = session.get(Job, job_id)
        return job is not None and job.status == "queued"
