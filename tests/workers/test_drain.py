"""Graceful drain (issue 9, point 4): a draining dispatcher stops claiming, each of
its running jobs ends after its current round with a checkpoint of it and goes back
to the queue without using an attempt; another dispatcher resumes it from there.
Each dispatcher, drained or stopped, records that it stopped as it exits."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.resolve import resolve
from service.settings import Settings
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Checkpoint, Job, JobAttempt, Metric
from service.store.models import Dispatcher as DispatcherRow
from service.store.users import create_user
from tests.conftest import on_one_database
from tests.polling import wait_until
from workers.dispatcher import Dispatcher

pytestmark = pytest.mark.ray

ROUNDS = 200  # a drain acts within a round; the second dispatcher trains the rest


def _stopped(sessions: sessionmaker[Session], dispatcher: Dispatcher) -> bool:
    with sessions() as session:
        row = session.get(DispatcherRow, dispatcher.id)
        return row is not None and row.stopped_at is not None


def _start(
    settings: Settings, sessions: sessionmaker[Session]
) -> tuple[Dispatcher, threading.Thread]:
    fast = settings.model_copy(update={"lease_seconds": 10.0, "heartbeat_seconds": 0.5})
    dispatcher = Dispatcher(fast, sessions)
    thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
    thread.start()
    return dispatcher, thread


@on_one_database("postgresql")
def test_a_drained_dispatcher_hands_its_jobs_back_checkpointed_without_using_attempts(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None, ray_address: str
) -> None:
    spec = resolve(
        {
            "task": {"kind": "adding"},
            "distributed": {"workers": 2, "cpus_per_worker": 0.5},
            "schedule": {"rounds": ROUNDS, "checkpoint_every": 100},
            "max_attempts": 2,
        }
    )
    with transaction(session_factory) as session:
        user, _, _ = create_user(session=session, name="drain", role="user")
        job_ids = [enqueue(session=session, owner_id=user.id, spec=spec)[0].id for _ in range(2)]

    def jobs() -> list[Job]:
        with session_factory() as session:
            return [j for i in job_ids if (j := session.get(Job, i)) is not None]

    first, thread = _start(settings, session_factory)
    try:
        wait_until(
            lambda: all(j.status == "running" and j.progress_round >= 5 for j in jobs()),
            timeout=180,
            what="both jobs training",
        )
        first.drain(60)
        thread.join(timeout=90)
        assert not thread.is_alive(), "the drained dispatcher exits"
        assert _stopped(session_factory, first), "and says so as it exits"
    finally:
        first.stop()
        thread.join(timeout=30)
    with session_factory() as session:
        for job in jobs():
            assert job.status == "queued", (job.id, job.status, job.error)
            assert job.max_attempts == 3, "the released attempt is given back"
            done = session.query(Metric).filter_by(job_id=job.id).count()
            newest = (
                session.query(Checkpoint)
                .filter_by(job_id=job.id)
                .order_by(Checkpoint.round.desc())
                .first()
            )
            assert 0 < done < ROUNDS
            assert newest is not None and newest.round == done - 1, "checkpoint of the last round"
            attempt = session.query(JobAttempt).filter_by(job_id=job.id).one()
            assert attempt.outcome == "released"

    second, thread = _start(settings, session_factory)
    try:
        wait_until(
            lambda: all(j.status in {"succeeded", "failed"} for j in jobs()),
            timeout=300,
            what="the jobs to finish on the second dispatcher",
        )
    finally:
        second.stop()
        thread.join(timeout=30)
    assert _stopped(session_factory, second), "a dispatcher stopped at once says so too"
    with session_factory() as session:
        for job in jobs():
            assert (job.status, job.attempt) == ("succeeded", 2), job.error
            seqs = [
                m.seq for m in session.query(Metric).filter_by(job_id=job.id).order_by(Metric.seq)
            ]
            assert seqs == list(range(1, ROUNDS + 1))
            outcomes = [
                a.outcome
                for a in session.query(JobAttempt)
                .filter_by(job_id=job.id)
                .order_by(JobAttempt.number)
            ]
            assert outcomes == ["released", "succeeded"]
