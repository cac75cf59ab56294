"""A job deleted under its dispatcher: the reaper can end a job while its dispatcher is
paused (failed after max_attempts, or cancelled once a cancelling job's lease ran
out), and its owner can then delete it. When the dispatcher resumes, every fenced
call it makes must be a StaleLease, like any lost lease, so that it stops as it would
then — not a NotFound, which it takes for an unexpected error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.errors import NotFound, StaleLease
from service.schemas.quota import QuotaDefaults
from service.store import lifecycle
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
from service.store.checkpoints import record_checkpoint
from service.store.db import transaction
from service.store.job_removal import check_job, delete_jobs
from service.store.jobs import request_cancel
from service.store.metrics import MetricIn, append_metrics
from service.store.models import JobStatus, utcnow
from tests.polling import wait_until
from tests.store.conftest import MakeUser, Submit, get_job
from workers.lease_keeper import LeaseKeeper

SERVER_HOURS = QuotaDefaults().max_job_hours


def _claim(factory: sessionmaker[Session]) -> ClaimedJob:
    with transaction(factory) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d1", lease_seconds=30, free_cpus=99, free_gpus=0
        )
    assert claimed is not None
    return claimed


def _reap(factory: sessionmaker[Session], job_id: int) -> None:
    """End the job as the reaper would once its (paused) dispatcher's lease ran out."""
    with transaction(factory) as session:
        assert requeue_expired(session=session, now=utcnow() + timedelta(minutes=5)) == [job_id]


def _fail_by_reaper(factory: sessionmaker[Session], claimed: ClaimedJob) -> None:
    _reap(factory, claimed.job_id)  # its only attempt: failed


def _cancel_by_reaper(factory: sessionmaker[Session], claimed: ClaimedJob) -> None:
    with transaction(factory) as session:
        request_cancel(session=session, job=get_job(session, claimed.job_id), actor="u")
    _reap(factory, claimed.job_id)  # cancelling: cancelled


def _finish(factory: sessionmaker[Session], claimed: ClaimedJob) -> None:
    with transaction(factory) as session:
        finish(session=session, job_id=claimed.job_id, token=claimed.fencing_token)


ENDINGS: dict[str, tuple[Callable[[sessionmaker[Session], ClaimedJob], None], JobStatus]] = {
    "failed by the reaper": (_fail_by_reaper, JobStatus.FAILED),
    "cancelled by the reaper": (_cancel_by_reaper, JobStatus.CANCELLED),
    "finished": (_finish, JobStatus.SUCCEEDED),
}


def _delete(factory: sessionmaker[Session], job_id: int) -> None:
    """As DELETE /v1/jobs/{id} does at its end (the metric records go by the cascade)."""
    with transaction(factory) as session:
        removal = check_job(session=session, job=get_job(session, job_id))
        delete_jobs(session=session, job_ids=removal.job_ids)


@pytest.mark.parametrize("ending", ENDINGS)
def test_every_fenced_call_for_a_deleted_job_is_a_stale_lease(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit, ending: str
) -> None:
    job_id = submit(make_user("ann"), max_attempts=1)
    claimed = _claim(session_factory)
    end, status = ENDINGS[ending]
    end(session_factory, claimed)
    token = claimed.fencing_token
    # A Job object read before the delete, as a caller of transition holds one. Read
    # in a transaction of its own: on SQLite an open one would block the delete.
    held = session_factory()
    with held.begin():
        stale_job = get_job(held, job_id)
    assert stale_job.status == status.value
    _delete(session_factory, job_id)

    def calls(session: Session) -> dict[str, Callable[[], object]]:
        return {
            "heartbeat": lambda: heartbeat(
                session=session,
                job_id=job_id,
                token=token,
                lease_seconds=30,
                default_max_job_hours=SERVER_HOURS,
            ),
            "append_metrics": lambda: append_metrics(
                session=session,
                job_id=job_id,
                token=token,
                attempt=1,
                records=[MetricIn(seq=1, round=0, values={}, uploaded=[0])],
            ),
            "record_checkpoint": lambda: record_checkpoint(
                session=session,
                job_id=job_id,
                token=token,
                round=0,
                seq=1,
                uri="mem://0",
                sha256="a" * 64,
                bytes=1,
            ),
            "note": lambda: lifecycle.note(
                session=session, job_id=job_id, token=token, actor="d1", reason="x"
            ),
            "lease_holder": lambda: lifecycle.lease_holder(
                session=session, job_id=job_id, token=token
            ),
            "finish": lambda: finish(session=session, job_id=job_id, token=token),
            "fail": lambda: fail(
                session=session, job_id=job_id, token=token, reason="x", retryable=True
            ),
            "release": lambda: release(session=session, job_id=job_id, token=token, reason="x"),
            "acknowledge_cancel": lambda: acknowledge_cancel(
                session=session, job_id=job_id, token=token
            ),
        }

    with transaction(session_factory) as session:
        for call in calls(session).values():
            with pytest.raises(StaleLease, match=f"job {job_id} no longer exists"):
                call()
    with held.begin(), pytest.raises(StaleLease, match=f"job {job_id} no longer exists"):
        lifecycle.transition(
            session=held, job=stale_job, to=JobStatus.FAILED, actor="d1", expect_token=token
        )
    # Unfenced callers (the reaper, a cancel) are told the job is gone: not found.
    with held.begin(), pytest.raises(NotFound):
        lifecycle.transition(session=held, job=stale_job, to=JobStatus.FAILED, actor="reaper")
    with held.begin(), pytest.raises(NotFound):
        request_cancel(session=held, job=stale_job, actor="u")
    held.close()


def test_the_lease_keeper_of_a_deleted_job_reports_the_lease_lost(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("ann"), max_attempts=1)
    claimed = _claim(session_factory)
    _fail_by_reaper(session_factory, claimed)
    _delete(session_factory, job_id)
    keeper = LeaseKeeper(
        session_factory,
        job_id=job_id,
        token=claimed.fencing_token,
        lease_seconds=30,
        heartbeat_seconds=0.05,
        default_max_job_hours=SERVER_HOURS,
    )
    keeper.start()
    try:
        # A NotFound here was logged and retried every beat, and `lost` never set.
        wait_until(keeper.lost.is_set, timeout=30, what="the keeper to see the lease lost")
        # What the worker logs: why, not "taken over".
        assert keeper.lost_reason == f"job {job_id} no longer exists; its lease ended with it"
    finally:
        keeper.stop()
