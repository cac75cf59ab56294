"""explain's queue positions are the claim order: both come from
service.store.queue_order, and this checks that they agree on real data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from service.schemas.quota import QuotaDefaults
from service.store.attempts import claim_next
from service.store.db import read_transaction, transaction
from service.store.explain import explain_job, explain_queue_head
from service.store.job_removal import delete_jobs
from service.store.jobs import get_job
from service.store.models import User
from service.store.users import set_disabled
from tests.store.conftest import MakeUser, Submit


def claim_one(factory: sessionmaker[Session]) -> int | None:
    with transaction(factory) as session:
        claimed = claim_next(
            session=session, dispatcher_id="d1", lease_seconds=60, free_cpus=1e6, free_gpus=0
        )
    return None if claimed is None else claimed.job_id


def explained_order(
    factory: sessionmaker[Session], job_ids: list[int], window: timedelta = timedelta(0)
) -> list[int]:
    """The queued jobs sorted by the position explain gives each (checked 1..n), fair
    share counting runs within `window`."""
    with transaction(factory) as session:
        positions = {
            job_id: explain_job(
                session=session,
                job=get_job(session=session, job_id=job_id),
                dispatcher_timeout=timedelta(seconds=30),
                quota_defaults=QuotaDefaults(),
                fair_share_window=window,
            ).queue_position
            for job_id in job_ids
        }
    assert sorted(p for p in positions.values() if p is not None) == list(
        range(1, len(job_ids) + 1)
    ), positions
    return sorted(job_ids, key=lambda job_id: positions[job_id] or 0)


def test_explain_positions_are_the_claim_order(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann = make_user("ann", share_weight=2.0)
    bob = make_user("bob", share_weight=1.0)
    carl = make_user("carl", share_weight=0.5)
    dora = make_user("dora", share_weight=0.0)  # served only when nobody else waits
    # Running before the queue forms: ann 2 jobs (usage 1.0), bob 1 (usage 1.0).
    running = [submit(ann), submit(ann), submit(bob)]
    assert sorted(claim_one(session_factory) or 0 for _ in running) == running
    queued = [
        submit(owner, priority=priority)
        for owner, priority in [
            (ann, 0),
            (bob, 5),
            (carl, 0),
            (ann, 5),
            (dora, 9),
            (bob, 0),
            (carl, -1),
            (ann, 0),
            (bob, 0),
            (carl, 3),
            (dora, 0),
            (ann, -5),
        ]
    ]

    predicted = explained_order(session_factory, queued)
    # Fair share really shapes it: neither submit order nor priority order.
    assert predicted != queued
    # dora and carl run nothing (usage 0): their first jobs lead, by priority; dora's
    # second waits for everyone (any running job over a zero weight is huge usage).
    assert predicted[:2] == [queued[4], queued[9]] and predicted[-1] == queued[10]

    claimed: list[int] = []
    remaining = list(queued)
    while remaining:
        # At every step explain's first place is the job the next claim starts.
        expected = explained_order(session_factory, remaining)
        assert expected == [job_id for job_id in predicted if job_id in remaining]
        job_id = claim_one(session_factory)
        assert job_id == expected[0]
        claimed.append(job_id)
        remaining.remove(job_id)
    assert claimed == predicted
    assert claim_one(session_factory) is None


def set_disabled_by_id(factory: sessionmaker[Session], user_id: int, disabled: bool) -> None:
    with transaction(factory) as session:
        user = session.get(User, user_id)
        assert user is not None
        set_disabled(session=session, user=user, disabled=disabled)


def test_a_disabled_owners_queued_jobs_wait_unranked_until_enabled(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann, bob = make_user("ann"), make_user("bob")
    held, bobs = submit(ann), submit(bob)
    set_disabled_by_id(session_factory, ann, True)
    # ann's job is older and ann runs nothing, yet bob's is ranked first and claimed.
    assert explained_order(session_factory, [bobs]) == [bobs]
    with transaction(session_factory) as session:
        why = explain_job(
            session=session,
            job=get_job(session=session, job_id=held),
            dispatcher_timeout=timedelta(seconds=30),
            quota_defaults=QuotaDefaults(),
        )
    assert why.queue_position is None
    assert [r.kind for r in why.reasons] == ["owner_disabled"]
    assert "ann's account is disabled" in why.reasons[0].message
    assert claim_one(session_factory) == bobs
    assert claim_one(session_factory) is None
    set_disabled_by_id(session_factory, ann, False)
    assert claim_one(session_factory) == held


def test_the_queue_head_skips_a_job_deleted_between_its_two_reads(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit, db_url: str
) -> None:
    """On PostgreSQL the ranking and the jobs it names are two reads in autocommit, each
    its own snapshot: a job cancelled and deleted between them was a KeyError (a 500
    from GET /v1/cluster, seen once in 2000 polls beside a prune)."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite's read transaction is one snapshot: both reads see the job")
    owner = make_user("alice")
    gone, kept = submit(owner), submit(owner)
    statements = 0

    def delete_before_the_second_read(_state: ORMExecuteState) -> None:
        nonlocal statements
        statements += 1
        if statements == 2:  # the ranking was read; the jobs it names are next
            with transaction(session_factory) as other:
                delete_jobs(session=other, job_ids=[gone])

    with read_transaction(session_factory) as session:
        event.listen(session, "do_orm_execute", delete_before_the_second_read)
        head = explain_queue_head(
            session=session,
            limit=10,
            owner_id=None,
            dispatcher_timeout=timedelta(seconds=30),
            quota_defaults=QuotaDefaults(),
        )
    assert statements >= 2
    assert [job.id for job, _owner, _why in head] == [kept]
