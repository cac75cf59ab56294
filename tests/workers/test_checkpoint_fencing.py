"""Checkpoints fenced and verified (issue 9, point 3): file names carry the attempt,
and a resume whose newest checkpoint fails its sha256 falls back to the newest one
that verifies, saying so in the job's events."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.artifacts import checkpoint_url, local_path, write_file
from service.schemas.resolve import resolve
from service.settings import Settings
from service.store.attempts import claim_next
from service.store.checkpoints import checkpoint_ref, latest_checkpoint
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import TERMINAL, Checkpoint, Job, JobEvent, Metric
from service.store.users import create_user
from tests.conftest import on_one_database
from tests.polling import wait_until
from tests.workers.checkpoint_files import record_checkpoints
from workers.dispatcher import Dispatcher
from workers.resume import verified_resume
from workers.store_writer import RetryingWriter


def _job(sessions: sessionmaker[Session], spec: dict[str, object]) -> int:
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name=f"ck-{uuid.uuid4().hex[:12]}", role="user")
        job, _ = enqueue(session=session, owner_id=user.id, spec=resolve(spec))
        return job.id


def test_resume_skips_checkpoints_whose_bytes_changed(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None
) -> None:
    job_id = _job(session_factory, {"task": {"kind": "adding"}, "max_attempts": 3})
    with transaction(session_factory) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d", lease_seconds=60, free_cpus=64, free_gpus=0
        )
        assert claimed is not None
        record_checkpoints(session, settings.artifacts_url, claimed, (9, 19, 29))
        newest = checkpoint_ref(latest_checkpoint(session=session, job_id=job_id))  # type: ignore[arg-type]
    store = RetryingWriter(session_factory, give_up_seconds=10, name="resume")
    assert verified_resume(newest, job_id=job_id, run=store.write) == (newest, None)

    write_file(newest.uri, b"overwritten by a lost attempt")
    older = newest.uri.replace("round-00000030", "round-00000020")
    path = local_path(older)
    assert path is not None
    path.unlink()  # and the one before is gone
    chosen, note = verified_resume(newest, job_id=job_id, run=store.write)
    assert chosen is not None and chosen.round == 9
    assert note is not None and "after 30, 20 rounds" in note and "one after 10 rounds" in note


def _start(
    settings: Settings, sessions: sessionmaker[Session]
) -> tuple[Dispatcher, threading.Thread]:
    fast = settings.model_copy(update={"lease_seconds": 5.0, "heartbeat_seconds": 0.5})
    dispatcher = Dispatcher(fast, sessions)
    thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
    thread.start()
    return dispatcher, thread


@on_one_database("postgresql")
@pytest.mark.ray
def test_a_corrupt_newest_checkpoint_falls_back_and_the_job_still_succeeds(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None, ray_address: str
) -> None:
    rounds = 80
    job_id = _job(
        session_factory,
        {
            "task": {"kind": "adding"},
            "distributed": {"workers": 2, "cpus_per_worker": 0.5},
            "schedule": {"rounds": rounds, "checkpoint_every": 10},
            "max_attempts": 3,
        },
    )

    def checkpoints() -> list[Checkpoint]:
        with session_factory() as session:
            query = session.query(Checkpoint).filter_by(job_id=job_id)
            return list(query.order_by(Checkpoint.round))

    first, thread = _start(settings, session_factory)
    try:
        wait_until(lambda: len(checkpoints()) >= 2, timeout=180, what="two checkpoints")
    finally:
        first.stop()  # hands the job back to the queue
        thread.join(timeout=60)
    newest = checkpoints()[-1]
    assert newest.uri.endswith(f"round-{newest.round + 1:08d}-a1.pt"), newest.uri
    write_file(newest.uri, b"not the recorded bytes")  # as a leftover gang could

    def done() -> Job | None:
        with session_factory() as session:
            job = session.get(Job, job_id)
            return job if job is not None and job.status in {s.value for s in TERMINAL} else None

    second, thread = _start(settings, session_factory)
    try:
        job = wait_until(done, timeout=240, what="the job to end")
    finally:
        second.stop()
        thread.join(timeout=60)
    assert isinstance(job, Job) and job.status == "succeeded", getattr(job, "error", None)
    with session_factory() as session:
        seqs = [m.seq for m in session.query(Metric).filter_by(job_id=job_id).order_by(Metric.seq)]
        uris = [c.uri for c in session.query(Checkpoint).filter_by(job_id=job_id)]
        notes = [
            e.reason or ""
            for e in session.query(JobEvent).filter_by(job_id=job_id)
            if e.from_status == e.to_status
        ]
    assert seqs == list(range(1, rounds + 1))
    assert any(u.endswith(f"-a{job.attempt}.pt") for u in uris), uris
    assert any("failed the sha256 check" in n for n in notes), notes


def test_a_round_checkpointed_again_by_a_resumed_attempt_hands_back_the_old_file(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None
) -> None:
    """The resumed attempt's row replaces its predecessor's for the same round; the
    predecessor's file is returned for removal (it was left behind, named by no row)."""
    from service.store.attempts import fail
    from workers.event_writes import store_events
    from workers.ray_actors import CheckpointEvent

    job_id = _job(session_factory, {"task": {"kind": "adding"}, "max_attempts": 3})
    uris = []
    for attempt in (1, 2):
        with transaction(session_factory) as session:
            claimed = claim_next(
                session=session, dispatcher_id="d", lease_seconds=60, free_cpus=64, free_gpus=0
            )
            assert claimed is not None and claimed.attempt == attempt
            uri = checkpoint_url(settings.artifacts_url, job_id, 9, attempt)
            uris.append(uri)
            event = CheckpointEvent(round=9, uri=uri, sha256="0" * 64, bytes=1)
            gone = store_events(
                session=session,
                job_id=job_id,
                token=claimed.fencing_token,
                attempt=attempt,
                batch=[event],
                checkpoints_keep=5,
            )
            if attempt == 1:
                assert gone == []
                fail(
                    session=session,
                    job_id=job_id,
                    token=claimed.fencing_token,
                    reason="worker lost",
                    retryable=True,
                )
    assert gone == [uris[0]]
    with transaction(session_factory) as session:
        rows = session.query(Checkpoint).filter_by(job_id=job_id).all()
        assert [(c.round, c.uri, c.attempt) for c in rows] == [(9, uris[1], 2)]
