"""max_job_hours: a running job past its owner's limit is stopped at a heartbeat and
ends failed ("time limit ..."), its checkpoints kept, however its stop ends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.quota import QuotaDefaults
from service.store.attempts import (
    ClaimedJob,
    acknowledge_cancel,
    claim_next,
    fail,
    heartbeat,
    release,
    requeue_expired,
)
from service.store.checkpoints import prune_checkpoints, record_checkpoint
from service.store.db import transaction
from service.store.jobs import request_cancel
from service.store.lifecycle import note
from service.store.models import Checkpoint, Job, User, utcnow
from tests.store.conftest import MakeUser, Submit, load_job

# The server's default time limit (its settings), for owners without their own.
SERVER_HOURS = QuotaDefaults().max_job_hours


def test_a_job_past_max_job_hours_fails_with_a_reason_keeping_checkpoints(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id, token, started = _running_with_an_hour_limit(
        session_factory, make_user("alice"), submit
    )
    with transaction(session_factory) as session:
        record_checkpoint(
            session=session,
            job_id=job_id,
            token=token,
            round=1,
            seq=0,
            uri="file:///nowhere/ckpt",
            sha256="0" * 64,
            bytes=10,
        )
    with transaction(session_factory) as session:
        within = heartbeat(
            session=session,
            job_id=job_id,
            token=token,
            lease_seconds=60,
            default_max_job_hours=SERVER_HOURS,
            now=started + timedelta(minutes=59),
        )
    assert not within.cancel_requested
    with transaction(session_factory) as session:
        over = heartbeat(
            session=session,
            job_id=job_id,
            token=token,
            lease_seconds=60,
            default_max_job_hours=SERVER_HOURS,
            now=started + timedelta(minutes=61),
        )
    assert over.cancel_requested
    with transaction(session_factory) as session:
        acknowledge_cancel(session=session, job_id=job_id, token=token)
    job = load_job(session_factory, job_id)
    assert job.status == "failed"
    assert job.error is not None and job.error.startswith("time limit"), job.error
    assert job.error == "time limit: ran 1 h 1 min, the owner's max_job_hours is 1"
    with session_factory() as session:
        assert session.scalars(
            select(Checkpoint.round).where(Checkpoint.job_id == job_id)
        ).all() == [1]


def test_the_server_default_applies_without_an_own_limit(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("bob"))
    with transaction(session_factory) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d", lease_seconds=60, free_cpus=8, free_gpus=0
        )
    assert claimed is not None
    started = load_job(session_factory, job_id).started_at
    assert started is not None
    with transaction(session_factory) as session:
        reply = heartbeat(
            session=session,
            job_id=job_id,
            token=claimed.fencing_token,
            lease_seconds=60,
            now=started + timedelta(hours=3),
            default_max_job_hours=2.0,
        )
    assert reply.cancel_requested


def test_retention_keeps_the_newest_checkpoints(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("carol"))
    with transaction(session_factory) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d", lease_seconds=60, free_cpus=8, free_gpus=0
        )
    assert claimed is not None

    def checkpoint_and_prune(attempt: ClaimedJob, rounds: range, suffix: str) -> list[str]:
        """Record each round's checkpoint as `attempt`, pruning to 2 after each: the
        files retention removed."""
        removed: list[str] = []
        for round_ in rounds:
            with transaction(session_factory) as session:
                record_checkpoint(
                    session=session,
                    job_id=job_id,
                    token=attempt.fencing_token,
                    round=round_,
                    seq=0,
                    uri=f"file:///c/{round_}{suffix}",
                    sha256="0" * 64,
                    bytes=1,
                )
                removed += prune_checkpoints(
                    session=session, job_id=job_id, keep=2, attempt=attempt.attempt
                )
        return removed

    removed = checkpoint_and_prune(claimed, range(5), "")
    assert removed == ["file:///c/0", "file:///c/1", "file:///c/2"]
    with session_factory() as session:
        kept = session.scalars(select(Checkpoint.round).where(Checkpoint.job_id == job_id))
        assert sorted(kept) == [3, 4]

    # The attempt is lost, and the next finds no file that verifies (a wiped folder,
    # or a host that cannot read them): it starts again at round 0 and checkpoints
    # rounds below the kept ones. Its own newest are kept beside them; by round alone
    # each was deleted as it was written, and a third attempt began at 0 again.
    with transaction(session_factory) as session:
        requeue_expired(session=session, now=utcnow() + timedelta(minutes=5))
        again = claim_next(
            session=session, dispatcher_id="d", lease_seconds=60, free_cpus=8, free_gpus=0
        )
    assert again is not None and again.attempt == 2
    assert checkpoint_and_prune(again, range(3), "-a2") == ["file:///c/0-a2"]
    with session_factory() as session:
        rows = session.execute(
            select(Checkpoint.round, Checkpoint.attempt).where(Checkpoint.job_id == job_id)
        )
        assert sorted(tuple(r) for r in rows) == [(1, 2), (2, 2), (3, 1), (4, 1)]


def _running_with_an_hour_limit(
    session_factory: sessionmaker[Session], owner: int, submit: Submit
) -> tuple[int, str, datetime]:
    """A job of `owner`, given max_job_hours 1, claimed: (job id, lease token, its
    start)."""
    with transaction(session_factory) as session:
        user = session.get(User, owner)
        assert user is not None
        user.max_job_hours = 1.0
    job_id = submit(owner)
    with transaction(session_factory) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d", lease_seconds=60, free_cpus=8, free_gpus=0
        )
    assert claimed is not None and claimed.job_id == job_id
    started = load_job(session_factory, job_id).started_at
    assert started is not None
    return job_id, claimed.fencing_token, started


def _stopped_by_the_time_limit(
    session_factory: sessionmaker[Session], owner: int, submit: Submit
) -> tuple[int, str, datetime]:
    """A job of `owner` (max_job_hours 1) that a heartbeat past the hour moved to
    cancelling: (job id, lease token, the heartbeat's time)."""
    job_id, token, started = _running_with_an_hour_limit(session_factory, owner, submit)
    late = started + timedelta(minutes=61)
    with transaction(session_factory) as session:
        reply = heartbeat(
            session=session,
            job_id=job_id,
            token=token,
            lease_seconds=60,
            default_max_job_hours=SERVER_HOURS,
            now=late,
        )
    assert reply.cancel_requested
    return job_id, token, late


LIMIT = "time limit: ran 1 h 1 min, the owner's max_job_hours is 1"


# The ways a stop can end without the dispatcher's acknowledgement first.
STOP_ENDS: dict[str, Callable[[Session, int, str, datetime], object]] = {
    "failed attempt": lambda s, job, token, _now: fail(
        session=s, job_id=job, token=token, reason="gang lost", retryable=True
    ),
    "hand-back": lambda s, job, token, _now: release(
        session=s, job_id=job, token=token, reason="draining"
    ),
    "expired lease": lambda s, _job, _token, now: requeue_expired(
        session=s, now=now + timedelta(minutes=5)
    ),
    "acknowledged after a note": lambda s, job, token, _now: (
        note(session=s, job_id=job, token=token, actor="d", reason="checkpoint fell back"),
        acknowledge_cancel(session=s, job_id=job, token=token),
    ),
}


@pytest.mark.parametrize("how", STOP_ENDS)
def test_a_time_limited_job_ends_failed_however_its_stop_ends(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit, how: str
) -> None:
    """The dispatcher may not get to acknowledge the stop: the attempt fails (a
    retryable error) or is handed back (a drain) meanwhile, or its lease expires; and
    a note may come between the stop and its acknowledgement. Each way the job ends
    failed with the time limit's reason, as DESIGN §11 says, not cancelled."""
    job_id, token, late = _stopped_by_the_time_limit(session_factory, make_user("dora"), submit)
    with transaction(session_factory) as session:
        STOP_ENDS[how](session, job_id, token, late)
    job = load_job(session_factory, job_id)
    assert job.status == "failed"
    assert job.error is not None and job.error.startswith(LIMIT), job.error


def test_a_permanent_failure_while_the_time_limit_stops_a_job_names_both(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id, token, _late = _stopped_by_the_time_limit(session_factory, make_user("fay"), submit)
    with transaction(session_factory) as session:
        fail(session=session, job_id=job_id, token=token, reason="bad data", retryable=False)
    job = load_job(session_factory, job_id)
    assert job.status == "failed" and job.error == f"{LIMIT}; bad data"


def _cancelled_by_its_owner(
    session_factory: sessionmaker[Session], owner: int, submit: Submit
) -> tuple[int, str]:
    """A running job of `owner` that its owner asked to stop: (job id, lease token)."""
    job_id = submit(owner)
    with transaction(session_factory) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d", lease_seconds=60, free_cpus=8, free_gpus=0
        )
        assert claimed is not None and claimed.job_id == job_id
        job = session.get(Job, job_id)
        assert job is not None
        request_cancel(session=session, job=job, actor=f"user:{owner}")
    return job_id, claimed.fencing_token


@pytest.mark.parametrize("how", STOP_ENDS)
def test_a_job_cancelled_by_its_owner_ends_cancelled_however_its_stop_ends(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit, how: str
) -> None:
    job_id, token = _cancelled_by_its_owner(session_factory, make_user("eve"), submit)
    with transaction(session_factory) as session:
        STOP_ENDS[how](session, job_id, token, datetime.now(UTC))
    assert load_job(session_factory, job_id).status == "cancelled"


def test_a_permanent_failure_while_its_owner_cancels_a_job_is_a_failure(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id, token = _cancelled_by_its_owner(session_factory, make_user("gus"), submit)
    with transaction(session_factory) as session:
        fail(session=session, job_id=job_id, token=token, reason="bad data", retryable=False)
    job = load_job(session_factory, job_id)
    assert job.status == "failed" and job.error == "bad data"
