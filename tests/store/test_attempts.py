"""Fenced writes: heartbeat, metrics, checkpoints and the final status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.errors import InvalidTransition, SequenceGap, StaleLease
from service.schemas.quota import QuotaDefaults
from service.store.attempts import (
    ClaimedJob,
    acknowledge_cancel,
    claim_next,
    fail,
    finish,
    heartbeat,
    release,
    requeue_expired,
)
from service.store.checkpoints import latest_checkpoint, record_checkpoint
from service.store.db import transaction
from service.store.jobs import request_cancel
from service.store.metrics import MetricIn, append_metrics
from service.store.models import Checkpoint, JobAttempt, Metric, utcnow
from tests.store.conftest import MakeUser, Submit, get_job, load_job

# The server's default time limit (its settings), for owners without their own.
SERVER_HOURS = QuotaDefaults().max_job_hours


def M(seq: int, round_: int, values: dict[str, Any], uploaded: tuple[int, ...] = (0,)) -> MetricIn:
    return MetricIn(seq=seq, round=round_, values=values, uploaded=uploaded)


def claim(factory: sessionmaker[Session], now: datetime | None = None) -> ClaimedJob:
    with transaction(factory) as session:
        claimed = claim_next(
            session=session,
            dispatcher_id="d1",
            lease_seconds=30,
            free_cpus=99,
            free_gpus=0,
            now=now,
        )
    assert claimed is not None
    return claimed


def metrics(factory: sessionmaker[Session], job_id: int) -> list[tuple[int, int, int]]:
    with factory() as session:
        rows = session.execute(
            select(Metric.seq, Metric.round, Metric.attempt)
            .where(Metric.job_id == job_id)
            .order_by(Metric.seq)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.fixture
def running(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> ClaimedJob:
    submit(make_user("ann"))
    return claim(session_factory)


def test_heartbeat_renews_lease_and_reports_cancel(
    session_factory: sessionmaker[Session], running: ClaimedJob
) -> None:
    later = utcnow() + timedelta(seconds=100)
    with transaction(session_factory) as session:
        reply = heartbeat(
            session=session,
            job_id=running.job_id,
            token=running.fencing_token,
            lease_seconds=30,
            default_max_job_hours=SERVER_HOURS,
            progress_round=4,
            now=later,
        )
    assert (reply.status, reply.cancel_requested) == ("running", False)
    assert reply.lease_expires_at == later + timedelta(seconds=30)
    job = load_job(session_factory, running.job_id)
    assert (job.lease_expires_at, job.progress_round) == (reply.lease_expires_at, 4)
    with session_factory() as session:
        attempt = session.scalars(select(JobAttempt)).one()
    assert attempt.lease_expires_at == reply.lease_expires_at

    with transaction(session_factory) as session:
        request_cancel(session=session, job=get_job(session, running.job_id), actor="u")
    with transaction(session_factory) as session:
        reply = heartbeat(
            session=session,
            job_id=running.job_id,
            token=running.fencing_token,
            lease_seconds=30,
            default_max_job_hours=SERVER_HOURS,
        )
        assert (reply.status, reply.cancel_requested) == ("cancelling", True)
        acknowledge_cancel(session=session, job_id=running.job_id, token=running.fencing_token)
    assert load_job(session_factory, running.job_id).status == "cancelled"


def test_unknown_job_is_a_stale_lease(session_factory: sessionmaker[Session]) -> None:
    # Ids are never reused: a job that is not there was deleted, its lease with it
    # (tests/store/test_deleted_job_fencing.py).
    with transaction(session_factory) as session, pytest.raises(StaleLease):
        heartbeat(
            session=session,
            job_id=12345,
            token="x",
            lease_seconds=1,
            default_max_job_hours=SERVER_HOURS,
        )
    with transaction(session_factory) as session, pytest.raises(StaleLease):
        finish(session=session, job_id=12345, token="x")


def test_metrics_are_idempotent_and_gapless(
    session_factory: sessionmaker[Session], running: ClaimedJob
) -> None:
    job_id, token = running.job_id, running.fencing_token

    def send(*records: MetricIn, attempt: int = 1) -> int:
        with transaction(session_factory) as session:
            return append_metrics(
                session=session, job_id=job_id, token=token, attempt=attempt, records=records
            )

    assert send(M(1, 1, {"train_loss": 0.5}), M(2, 2, {"train_loss": 0.4}, uploaded=())) == 2
    # Re-sent (and out of order) records are ignored; the new one is stored.
    assert send(M(3, 3, {"train_loss": 0.3}), M(2, 2, {"train_loss": 9.0})) == 1
    assert send(M(1, 1, {"train_loss": 9.0})) == 0
    with pytest.raises(SequenceGap, match=r"seq 7 leaves a gap, expected 6 \(stored up to 3\)"):
        send(M(4, 4, {}), M(5, 5, {}), M(7, 7, {}))
    with pytest.raises(SequenceGap):
        send(M(0, 0, {}))
    with pytest.raises(StaleLease):
        send(M(4, 4, {}), attempt=2)
    assert metrics(session_factory, job_id) == [(1, 1, 1), (2, 2, 1), (3, 3, 1)]
    job = load_job(session_factory, job_id)
    assert (job.last_seq, job.progress_round) == (3, 4)  # last stored round: index 3
    with session_factory() as session:
        stored = session.scalars(select(Metric.values).order_by(Metric.seq)).all()
    assert [v["train_loss"] for v in stored] == [0.5, 0.4, 0.3]
    with session_factory() as session:
        uploaded = session.scalars(select(Metric.uploaded).order_by(Metric.seq)).all()
    assert uploaded == [[0], [], [0]]


def test_non_finite_metric_values_are_stored_as_null(
    session_factory: sessionmaker[Session], running: ClaimedJob
) -> None:
    with transaction(session_factory) as session:
        append_metrics(
            session=session,
            job_id=running.job_id,
            token=running.fencing_token,
            attempt=1,
            records=[M(1, 1, {"train_loss": float("nan"), "grad": float("inf"), "uploads": 3})],
        )
    with session_factory() as session:
        values = session.scalars(select(Metric.values)).one()
    assert values == {"train_loss": None, "grad": None, "uploads": 3}


def test_checkpoint_record_replace_and_latest(
    session_factory: sessionmaker[Session], running: ClaimedJob
) -> None:
    job_id, token = running.job_id, running.fencing_token
    with transaction(session_factory) as session:
        for rnd in (5, 10):
            record_checkpoint(
                session=session,
                job_id=job_id,
                token=token,
                round=rnd,
                seq=rnd,
                uri=f"mem://{rnd}",
                sha256="a" * 64,
                bytes=100,
            )
        record_checkpoint(
            session=session,
            job_id=job_id,
            token=token,
            round=5,
            seq=5,
            uri="mem://5b",
            sha256="b" * 64,
            bytes=200,
        )
    with session_factory() as session:
        latest = latest_checkpoint(session=session, job_id=job_id)
        assert latest is not None and (latest.round, latest.uri) == (10, "mem://10")
        rows = session.execute(select(Checkpoint.round, Checkpoint.uri).order_by(Checkpoint.round))
        assert [tuple(r) for r in rows] == [(5, "mem://5b"), (10, "mem://10")]


def test_stale_token_is_rejected_everywhere_after_requeue(
    session_factory: sessionmaker[Session], running: ClaimedJob
) -> None:
    job_id, old = running.job_id, running.fencing_token
    with transaction(session_factory) as session:
        append_metrics(session=session, job_id=job_id, token=old, attempt=1, records=[M(1, 1, {})])
        record_checkpoint(
            session=session,
            job_id=job_id,
            token=old,
            round=1,
            seq=1,
            uri="mem://1",
            sha256="a" * 64,
            bytes=1,
        )
        append_metrics(session=session, job_id=job_id, token=old, attempt=1, records=[M(2, 2, {})])
    later = utcnow() + timedelta(minutes=5)
    with transaction(session_factory) as session:
        assert requeue_expired(session=session, now=later) == [job_id]

    def stale_calls(session: Session) -> None:
        calls: list[Callable[[], object]] = [
            lambda: heartbeat(
                session=session,
                job_id=job_id,
                token=old,
                lease_seconds=30,
                default_max_job_hours=SERVER_HOURS,
            ),
            lambda: append_metrics(
                session=session, job_id=job_id, token=old, attempt=1, records=[M(3, 3, {})]
            ),
            lambda: record_checkpoint(
                session=session,
                job_id=job_id,
                token=old,
                round=2,
                seq=2,
                uri="x",
                sha256="c" * 64,
                bytes=1,
            ),
            lambda: finish(session=session, job_id=job_id, token=old, summary={}),
            lambda: fail(session=session, job_id=job_id, token=old, reason="x", retryable=False),
            lambda: acknowledge_cancel(session=session, job_id=job_id, token=old),
        ]
        for call in calls:
            with pytest.raises(StaleLease):
                call()

    with transaction(session_factory) as session:
        stale_calls(session)  # while queued
    rerun = claim(session_factory, now=later)
    assert rerun.attempt == 2 and rerun.last_seq == 2
    assert rerun.resume is not None and (rerun.resume.round, rerun.resume.seq) == (1, 1)
    with transaction(session_factory) as session:
        stale_calls(session)  # while the rerun holds the lease
        # The rerun replays round 2 (seq 2, ignored) and continues.
        assert (
            append_metrics(
                session=session,
                job_id=job_id,
                token=rerun.fencing_token,
                attempt=2,
                records=[M(2, 2, {}), M(3, 3, {})],
            )
            == 1
        )
        finish(session=session, job_id=job_id, token=rerun.fencing_token, summary={"ok": True})
    assert metrics(session_factory, job_id) == [(1, 1, 1), (2, 2, 1), (3, 3, 2)]
    job = load_job(session_factory, job_id)
    assert (job.status, job.summary, job.lease_token) == ("succeeded", {"ok": True}, None)
    with transaction(session_factory) as session:
        stale_calls(session)  # after the end, even the last token is stale
        with pytest.raises(StaleLease):
            finish(session=session, job_id=job_id, token=rerun.fencing_token)


def test_fail_retryable_requeues_until_attempts_run_out(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("ann"), max_attempts=2)
    first = claim(session_factory)
    with transaction(session_factory) as session:
        job = fail(
            session=session, job_id=job_id, token=first.fencing_token, reason="OOM", retryable=True
        )
        assert (job.status, job.attempt, job.error) == ("queued", 1, None)
    second = claim(session_factory)
    assert second.attempt == 2
    with transaction(session_factory) as session:
        job = fail(
            session=session, job_id=job_id, token=second.fencing_token, reason="OOM", retryable=True
        )
    assert (job.status, job.error) == ("failed", "OOM (gave up after 2 of 2 attempts)")
    with session_factory() as session:
        outcomes = session.execute(
            select(JobAttempt.outcome, JobAttempt.error).order_by(JobAttempt.number)
        )
        assert [tuple(o) for o in outcomes] == [("failed", "OOM"), ("failed", job.error)]


def test_release_hands_a_running_job_back_without_using_an_attempt(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """A draining worker's hand-back: queued again, the attempt ends 'released' and
    max_attempts grows by one, so the attempts left stay as they were; the released
    attempt's token is stale from then on."""
    job_id = submit(make_user("ann"), max_attempts=2)
    first = claim(session_factory)
    with transaction(session_factory) as session:
        job = release(session=session, job_id=job_id, token=first.fencing_token, reason="drained")
        assert (job.status, job.attempt, job.max_attempts) == ("queued", 1, 3)
    with pytest.raises(StaleLease), transaction(session_factory) as session:
        heartbeat(
            session=session,
            job_id=job_id,
            token=first.fencing_token,
            lease_seconds=30,
            default_max_job_hours=SERVER_HOURS,
        )
    second = claim(session_factory)
    assert (second.attempt, load_job(session_factory, job_id).max_attempts) == (2, 3)
    with session_factory() as session:
        outcomes = session.execute(select(JobAttempt.outcome).order_by(JobAttempt.number))
        assert [o for (o,) in outcomes] == ["released", None]


def test_fail_permanent_and_while_cancelling(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("ann")
    permanent, retry_cancel = submit(owner), submit(owner)
    a, b = claim(session_factory), claim(session_factory)
    with transaction(session_factory) as session:
        job = fail(
            session=session,
            job_id=permanent,
            token=a.fencing_token,
            reason="bad spec",
            retryable=False,
        )
        assert (job.status, job.error) == ("failed", "bad spec")
    with transaction(session_factory) as session:
        request_cancel(session=session, job=get_job(session, retry_cancel), actor="u")
        job = fail(
            session=session,
            job_id=retry_cancel,
            token=b.fencing_token,
            reason="lost worker",
            retryable=True,
        )
        assert job.status == "cancelled"


def test_acknowledge_cancel_needs_a_cancel_request(
    session_factory: sessionmaker[Session], running: ClaimedJob
) -> None:
    with transaction(session_factory) as session, pytest.raises(InvalidTransition):
        acknowledge_cancel(session=session, job_id=running.job_id, token=running.fencing_token)
    assert load_job(session_factory, running.job_id).status == "running"
