"""The dispatcher against a real store (SQLite and PostgreSQL) and the session's
real local Ray: divergence fails the job with its round, a crashed replica costs an
attempt and the next one resumes (on SQLite), a hung one fails it once the gang is
silent (on PostgreSQL), an impossible gang fails naming the resource."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import ray
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.resolve import resolve
from service.settings import Settings
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import TERMINAL, Checkpoint, Job, JobAttempt, Metric
from service.store.users import create_user
from tests.conftest import on_one_database
from tests.polling import wait_until
from workers.dispatcher import Dispatcher

pytestmark = pytest.mark.ray


@contextmanager
def running_dispatcher(
    settings: Settings, sessions: sessionmaker[Session], **update: float
) -> Iterator[Dispatcher]:
    """A dispatcher on short leases (and `update`'s other settings), in its thread."""
    fast = settings.model_copy(update={"lease_seconds": 5.0, "heartbeat_seconds": 0.5, **update})
    running = Dispatcher(fast, sessions)
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.stop()
        thread.join(timeout=60)


@pytest.fixture
def dispatcher(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None, ray_address: str
) -> Iterator[Dispatcher]:
    with running_dispatcher(settings, session_factory) as running:
        yield running


def submit(sessions: sessionmaker[Session], spec: dict[str, Any], max_attempts: int = 3) -> int:
    with transaction(sessions) as session:
        # A name of its own: an id() is reused once its object is gone (a Conflict).
        user, _, _ = create_user(session=session, name=f"u-{uuid.uuid4().hex[:12]}", role="user")
        job, _created = enqueue(
            session=session, owner_id=user.id, spec=resolve({**spec, "max_attempts": max_attempts})
        )
        return job.id


def finished(sessions: sessionmaker[Session], job_id: int) -> Job | None:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job if job.status in {s.value for s in TERMINAL} else None


def test_divergence_fails_the_job_naming_the_round_and_keeps_checkpoints(
    dispatcher: Dispatcher, session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workers.job_run")
    # lr far above 2/L on the paper's regression: the iterates blow up to inf.
    job_id = submit(
        session_factory,
        {
            "task": {"kind": "lag_paper_linreg"},
            "optimizer": {"lr": 50.0},
            "distributed": {"workers": 2, "cpus_per_worker": 0.5},
            "schedule": {"rounds": 400, "checkpoint_every": 5},
        },
    )
    job = wait_until(lambda: finished(session_factory, job_id), timeout=120, what="divergence")
    assert isinstance(job, Job)
    assert job.status == "failed" and job.attempt == 1, job.error
    # The divergence's own message, not Ray's traceback around it (DESIGN §6).
    assert job.error is not None and re.fullmatch(
        r"training diverged at round \d+ \(non-finite loss, parameters or metrics\): lower "
        r"optimizer\.lr, or set optimizer\.clip_grad_norm",
        job.error,
    ), job.error
    # The dispatcher's log says how the attempt ended, reason included.
    assert f"job {job_id}: attempt 1 ended: failed ({job.error})" in caplog.text
    with session_factory() as session:
        rounds = [c.round for c in session.query(Checkpoint).filter_by(job_id=job_id)]
    assert rounds and max(rounds) < 399, "the good checkpoints before the blow-up stay"
    # So does the summary of the rounds that ran: rounds 0 .. N-1 recorded, N diverged.
    diverged_at = int(job.error.split()[4])
    assert job.summary is not None, "a failed job keeps what its rounds did"
    assert (job.summary["rounds"], job.summary["rounds_completed"]) == (400, diverged_at)
    assert job.summary["uploads_total"] > 0 and job.summary["bytes_up_total"] > 0


@on_one_database("sqlite")
def test_a_crashed_replica_costs_an_attempt_and_the_next_resumes(
    dispatcher: Dispatcher, session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workers.job_run")
    # The kill must land while attempt 1 still trains: with 60 rounds, a fast machine
    # ran the 50 after the first checkpoint before it did (fresh-clone CI at 042d013:
    # succeeded on attempt 1: ≈ 10 ms a round against ≤ 0.6 s to see the checkpoint
    # — a flush every 0.5 s, a poll every 0.1 s). 390 rounds after it: ≈ 4 s.
    rounds = 400
    job_id = submit(
        session_factory,
        {
            "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
            "model": {"cell": "gru", "hidden_size": 16},
            "distributed": {"workers": 2, "cpus_per_worker": 0.5},
            "schedule": {"rounds": rounds, "batch_size": 16, "checkpoint_every": 10},
        },
    )

    def checkpointed() -> bool:
        with session_factory() as session:
            return session.query(Checkpoint).filter_by(job_id=job_id).count() > 0

    wait_until(checkpointed, timeout=120, what="a first checkpoint")
    ray.kill(ray.get_actor(f"lagtrain-job{job_id}-attempt1-replica1"))
    job = wait_until(lambda: finished(session_factory, job_id), timeout=180, what="the job")
    assert isinstance(job, Job)
    assert (job.status, job.attempt) == ("succeeded", 2), job.error
    with session_factory() as session:
        attempts = session.query(JobAttempt).filter_by(job_id=job_id).order_by(JobAttempt.number)
        outcomes = [(a.number, a.outcome) for a in attempts]
        seqs = [m.seq for m in session.query(Metric).filter_by(job_id=job_id).order_by(Metric.seq)]
        first = session.query(JobAttempt).filter_by(job_id=job_id, number=1).one()
    assert outcomes == [(1, "failed"), (2, "succeeded")]
    assert first.error is not None and first.error.startswith("replica 1 died: "), first.error
    assert seqs == list(range(1, rounds + 1))
    # The retried attempt's log line says why, though the job's status is `queued`,
    # as a warning (an attempt used up); the attempt that succeeded, as info.
    ends = {
        m: r.levelno
        for r in caplog.records
        if re.fullmatch(rf"job {job_id}: attempt \d+ ended: .*", m := r.getMessage(), re.S)
    }
    assert ends == {
        f"job {job_id}: attempt 1 ended: queued ({first.error})": logging.WARNING,
        f"job {job_id}: attempt 2 ended: succeeded": logging.INFO,
    }


@on_one_database("postgresql")
def test_a_hung_replica_fails_the_attempt_once_the_gang_is_silent(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None, ray_address: str
) -> None:
    # SIGSTOP: the replica's process lives on and holds its socket, so neither Ray nor
    # gloo sees anything wrong; only the silence tells.
    with running_dispatcher(settings, session_factory, stall_seconds=5.0):
        never = 10_000_000  # no evaluation or checkpoint: the rounds alone are the pace
        job_id = submit(
            session_factory,
            {
                "task": {"kind": "adding"},
                "distributed": {"workers": 2, "cpus_per_worker": 0.5},
                "schedule": {"rounds": 100_000, "eval_every": never, "checkpoint_every": never},
            },
            max_attempts=1,
        )

        def training() -> bool:
            with session_factory() as session:
                job = session.get(Job, job_id)
                return job is not None and job.progress_round >= 3

        # Armed from the first round's record on (before it: gang_ready_seconds more).
        wait_until(training, timeout=120, what="the job training")
        replica = ray.get_actor(f"lagtrain-job{job_id}-attempt1-replica1")
        # The actor's second thread answers while serve() runs the rounds.
        asked: ray.ObjectRef[int] = replica.__ray_call__.remote(lambda _self: os.getpid())
        pid = ray.get(asked, timeout=30)
        os.kill(pid, signal.SIGSTOP)
        try:
            job = wait_until(lambda: finished(session_factory, job_id), timeout=60, what="the job")
            assert isinstance(job, Job)
            assert job.status == "failed" and job.error is not None, (job.status, job.error)
            assert "stalled" in job.error and "LAGTRAIN_STALL_SECONDS=5" in job.error
            # The gang was killed, the stopped replica with it.
            wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=30, what="its end")
        finally:  # however the test ends, a stopped process is let go
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_a_gang_larger_than_the_cluster_fails_naming_the_resource(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None, ray_address: str
) -> None:
    # A dispatcher judges a job too large once it has watched its capacity window
    # whole (workers.capacity): one of 1 s here.
    with running_dispatcher(settings, session_factory, capacity_window_seconds=1.0):
        job_id = submit(
            session_factory,
            {"task": {"kind": "adding"}, "distributed": {"workers": 2, "gpus_per_worker": 1}},
        )
        job = wait_until(lambda: finished(session_factory, job_id), timeout=30, what="the failure")
    assert isinstance(job, Job)
    assert job.status == "failed" and job.error is not None
    assert "2 GPU" in job.error and "0 GPU" in job.error
