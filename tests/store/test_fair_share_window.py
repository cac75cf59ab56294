"""Fair share counts each owner's recent runs — jobs running now, and attempts that
ended within the window — not only running jobs. A walkthrough on a cluster where one gang fits at a
time saw bob (share 2) wait behind 19 of alice's jobs (share 1): every claim came
just after the last job ended, with both owners at 0 running, so submit time
decided. Explain's positions stay the claim order when jobs finish in between."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from service.store.attempts import ClaimedJob, claim_next, fail, finish
from service.store.db import transaction
from service.store.jobs import get_job, request_cancel
from tests.store.conftest import MakeUser, Submit
from tests.store.test_explain_order import explained_order

HOUR = timedelta(hours=1)


def claim(factory: sessionmaker[Session], window: timedelta) -> ClaimedJob:
    with transaction(factory) as session:
        claimed = claim_next(
            session=session,
            dispatcher_id="d1",
            lease_seconds=60,
            free_cpus=99,
            free_gpus=0,
            fair_share_window=window,
        )
    assert claimed is not None
    return claimed


def run_one_at_a_time(factory: sessionmaker[Session], n: int, window: timedelta) -> list[int]:
    """Claim, finish, claim...: the cluster fits one job, which ends before the next
    claim."""
    order = []
    for _ in range(n):
        claimed = claim(factory, window)
        order.append(claimed.job_id)
        with transaction(factory) as session:
            finish(
                session=session, job_id=claimed.job_id, token=claimed.fencing_token, summary=None
            )
    return order


def first_in_explain(factory: sessionmaker[Session], job_ids: list[int], window: timedelta) -> int:
    return explained_order(factory, job_ids, window)[0]


def test_a_heavy_user_yields_to_a_light_one_when_jobs_run_one_at_a_time(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    alice, bob = make_user("alice", share_weight=1.0), make_user("bob", share_weight=2.0)
    a = [submit(alice) for _ in range(5)]
    b = [submit(bob) for _ in range(2)]
    # alice's first (both at 0, hers is older); then bob at 0 against her 1, bob at
    # 1/2 against 1; then alice's rest.
    assert run_one_at_a_time(session_factory, 7, HOUR) == [a[0], b[0], b[1], *a[1:]]


def test_a_zero_window_counts_running_jobs_only(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """The old rule, kept for LAGTRAIN_FAIR_SHARE_WINDOW_SECONDS=0: first come, first
    served whenever nothing runs at a claim."""
    alice, bob = make_user("alice", share_weight=1.0), make_user("bob", share_weight=2.0)
    a = [submit(alice) for _ in range(3)]
    b = [submit(bob) for _ in range(2)]
    assert run_one_at_a_time(session_factory, 5, timedelta(0)) == [*a, *b]


def test_explain_predicts_the_claims_when_jobs_finish_in_between(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """The whole order explain gives up front is the order the claims follow, and so
    is its first place at every step."""
    ann, bob, carl = (
        make_user(n, share_weight=w) for n, w in (("ann", 1), ("bob", 2), ("carl", 0.5))
    )
    queued = [submit(owner) for owner in (ann, ann, ann, bob, carl, bob, ann, carl, bob)]
    predicted = explained_order(session_factory, queued, HOUR)
    assert predicted != queued  # fair share shapes it
    remaining, started = list(queued), []
    while remaining:
        expected = first_in_explain(session_factory, remaining, HOUR)
        (job_id,) = run_one_at_a_time(session_factory, 1, HOUR)
        assert job_id == expected, (job_id, expected)
        started.append(job_id)
        remaining.remove(job_id)
    assert started == predicted


def test_a_job_that_failed_and_retries_keeps_the_turn_it_used(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """Runs are counted, not finished jobs: a failing job that goes back to the queue
    would otherwise take every turn until its last attempt while others wait."""
    ann, bob = make_user("ann"), make_user("bob")
    flaky, steady = submit(ann, max_attempts=3), submit(bob)
    claimed = claim(session_factory, HOUR)
    assert claimed.job_id == flaky
    with transaction(session_factory) as session:
        token = claimed.fencing_token
        fail(session=session, job_id=flaky, token=token, reason="replica lost", retryable=True)
        assert get_job(session=session, job_id=flaky).status == "queued"
    # ann has run once in the window, bob not: bob's job goes first, then ann's retry.
    assert run_one_at_a_time(session_factory, 2, HOUR) == [steady, flaky]


def test_a_job_cancelled_while_queued_is_not_usage(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    for _ in range(3):
        job_id = submit(alice)
        with transaction(session_factory) as session:
            request_cancel(session=session, job=get_job(session=session, job_id=job_id), actor="t")
    later_alice, bob_job = submit(alice), submit(bob)
    # alice's cancelled jobs never ran: she is at 0 like bob, and hers is older.
    assert run_one_at_a_time(session_factory, 2, HOUR) == [later_alice, bob_job]
