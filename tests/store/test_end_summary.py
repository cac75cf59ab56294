"""The summary a job keeps when its dispatcher ends it (workers.job_outcome.summary,
stored by service.store.attempts): succeeded, and also cancelled or failed after
rounds ran, with how far it got; none when no round ran, none on a retry, and none
when the reaper ends a job whose dispatcher is gone."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.store.attempts import (
    ClaimedJob,
    acknowledge_cancel,
    claim_next,
    fail,
    release,
    requeue_expired,
)
from service.store.db import transaction
from service.store.jobs import request_cancel
from service.store.metrics import MetricIn, append_metrics
from service.store.models import utcnow
from tests.store.conftest import MakeUser, Submit, get_job, load_job
from workers.job_outcome import Progress, summary

TRAFFIC = {
    "train_loss": 0.25,
    "uploads_total": 30.0,
    "dense_equiv_uploads": 40.0,
    "bytes_up_total": 3000.0,
    "dense_equiv_bytes": 4000.0,
}


def claim(factory: sessionmaker[Session], **kw: Any) -> ClaimedJob:
    with transaction(factory) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d1", lease_seconds=30, free_cpus=99, free_gpus=0, **kw
        )
    assert claimed is not None
    return claimed


def ran(factory: sessionmaker[Session], claimed: ClaimedJob, rounds: int) -> None:
    """The attempt records `rounds` rounds (seq = round + 1, as the gang sends them)."""
    records = [MetricIn(seq=r + 1, round=r, values=TRAFFIC, uploaded=(0,)) for r in range(rounds)]
    with transaction(factory) as session:
        append_metrics(
            session=session,
            job_id=claimed.job_id,
            token=claimed.fencing_token,
            attempt=claimed.attempt,
            records=records,
        )


def summary_of(session: Session, claimed: ClaimedJob, progress: Progress) -> dict[str, Any] | None:
    return summary(
        session, job_id=claimed.job_id, rounds=10, progress=progress, attempt=1, wall_s=2.0
    )


def test_a_cancelled_job_keeps_what_its_rounds_uploaded(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("ann"))
    claimed = claim(session_factory)
    ran(session_factory, claimed, 4)
    with transaction(session_factory) as session:
        request_cancel(session=session, job=get_job(session, job_id), actor="u")
    with transaction(session_factory) as session:
        # A resumed attempt ran no round itself: the stored records say how far it got.
        done = summary_of(session, claimed, Progress())
        acknowledge_cancel(
            session=session, job_id=job_id, token=claimed.fencing_token, summary=done
        )
    job = load_job(session_factory, job_id)
    assert job.status == "cancelled" and job.summary is not None
    assert (job.summary["rounds"], job.summary["rounds_completed"]) == (10, 4)
    assert job.summary["uploads_total"] == 30.0 and job.summary["bytes_up_total"] == 3000.0
    assert job.summary["uploads_saved_fraction"] == job.summary["bytes_saved_fraction"] == 0.25
    assert job.summary["final_metrics"]["train_loss"] == 0.25


def test_a_failed_job_keeps_its_summary_a_retry_does_not(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("ann"), max_attempts=2)
    first = claim(session_factory)
    progress = Progress(last_round=2, last_values={**TRAFFIC, "train_loss": math.inf})
    with transaction(session_factory) as session:
        retried = fail(
            session=session,
            job_id=job_id,
            token=first.fencing_token,
            reason="OOM",
            retryable=True,
            summary=summary_of(session, first, progress),
        )
        assert (retried.status, retried.summary) == ("queued", None)
    second = claim(session_factory)
    with transaction(session_factory) as session:
        fail(
            session=session,
            job_id=job_id,
            token=second.fencing_token,
            reason="training diverged at round 3",
            retryable=False,
            summary=summary_of(session, second, progress),
        )
    job = load_job(session_factory, job_id)
    assert job.status == "failed" and job.summary is not None
    assert job.summary["rounds_completed"] == 3 and job.summary["uploads_total"] == 30.0
    assert job.summary["final_metrics"]["train_loss"] is None  # non-finite: null


def test_a_hand_back_while_cancelling_ends_cancelled_with_the_summary(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("ann"))
    claimed = claim(session_factory)
    ran(session_factory, claimed, 7)
    with transaction(session_factory) as session:
        request_cancel(session=session, job=get_job(session, job_id), actor="u")
        release(
            session=session,
            job_id=job_id,
            token=claimed.fencing_token,
            reason="the worker drained after 7 rounds",
            summary=summary_of(session, claimed, Progress()),
        )
    job = load_job(session_factory, job_id)
    assert job.status == "cancelled" and job.summary is not None
    assert job.summary["rounds_completed"] == 7


def test_ends_before_the_first_round_or_by_the_reaper_have_no_summary(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("ann")
    queued, unstarted, reaped = submit(owner), submit(owner), submit(owner)
    with transaction(session_factory) as session:
        request_cancel(session=session, job=get_job(session, queued), actor="u")
    t0 = utcnow()
    first = claim(session_factory, now=t0)
    assert first.job_id == unstarted
    with transaction(session_factory) as session:
        nothing = summary_of(session, first, Progress())
        assert nothing is None  # no record in any attempt
        fail(
            session=session,
            job_id=unstarted,
            token=first.fencing_token,
            reason="could not start the gang",
            retryable=False,
            summary=nothing,
        )
    # The reaper writes no summary: the dispatcher that knew the run is gone.
    gone = claim(session_factory, now=t0)
    ran(session_factory, gone, 3)
    with transaction(session_factory) as session:
        request_cancel(session=session, job=get_job(session, reaped), actor="u")
    with transaction(session_factory) as session:
        assert requeue_expired(session=session, now=t0 + timedelta(seconds=60)) == [reaped]
    assert [
        (load_job(session_factory, j).status, load_job(session_factory, j).summary)
        for j in (queued, unstarted, reaped)
    ] == [
        ("cancelled", None),
        ("failed", None),
        ("cancelled", None),
    ]
