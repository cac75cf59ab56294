"""max_job_hours: a running job past its owner's limit is stopped at a heartbeat and
ends failed ("time limit ..."), its checkpoints kept."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.store.attempts import acknowledge_cancel, claim_next, heartbeat
from service.store.checkpoints import prune_checkpoints, record_checkpoint
from service.store.db import transaction
from service.store.models import Checkpoint, User
from tests.store.conftest import MakeUser, Submit, load_job


def test_a_job_past_max_job_hours_fails_with_a_reason_keeping_checkpoints(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("alice")
    with transaction(session_factory) as session:
        user = session.get(User, owner)
        assert user is not None
        user.max_job_hours = 1.0
    job_id = submit(owner)
    with transaction(session_factory) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d", lease_seconds=60, free_cpus=8, free_gpus=0
        )
        assert claimed is not None
        record_checkpoint(
            session=session,
            job_id=job_id,
            token=claimed.fencing_token,
            round=1,
            seq=0,
            uri="file:///nowhere/ckpt",
            sha256="0" * 64,
            bytes=10,
        )
    started = load_job(session_factory, job_id).started_at
    assert started is not None
    token = claimed.fencing_token
    with transaction(session_factory) as session:
        within = heartbeat(
            session=session,
            job_id=job_id,
            token=token,
            lease_seconds=60,
            now=started + timedelta(minutes=59),
        )
    assert not within.cancel_requested
    with transaction(session_factory) as session:
        over = heartbeat(
            session=session,
            job_id=job_id,
            token=token,
            lease_seconds=60,
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
    removed: list[str] = []
    for round_ in range(5):
        with transaction(session_factory) as session:
            record_checkpoint(
                session=session,
                job_id=job_id,
                token=claimed.fencing_token,
                round=round_,
                seq=0,
                uri=f"file:///c/{round_}",
                sha256="0" * 64,
                bytes=1,
            )
            removed += prune_checkpoints(session=session, job_id=job_id, keep=2)
    assert removed == ["file:///c/0", "file:///c/1", "file:///c/2"]
    with session_factory() as session:
        kept = session.scalars(select(Checkpoint.round).where(Checkpoint.job_id == job_id))
        assert sorted(kept) == [3, 4]
