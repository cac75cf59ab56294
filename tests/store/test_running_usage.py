"""Explain's view of usage — what each owner's running and cancelling jobs hold — read
from the live jobs alone (SQLite and PostgreSQL): the same figures as the whole usage
gives, without its storage sum over every checkpoint."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from service.store.attempts import claim_next, finish
from service.store.db import read_transaction, transaction
from service.store.jobs import request_cancel
from service.store.quotas import RunningUsage, running_usage, usage
from tests.store.conftest import MakeUser, Submit, get_job


def test_running_usage_is_what_the_whole_usage_says_of_running_jobs(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann, bob, cid = make_user("ann"), make_user("bob"), make_user("cid")
    jobs = [submit(ann), submit(ann), submit(ann), submit(bob), submit(bob)]
    claimed = []
    for _ in range(4):
        with transaction(session_factory) as session:
            one = claim_next(
                session=session, dispatcher_id="d1", lease_seconds=60, free_cpus=99, free_gpus=0
            )
        assert one is not None
        claimed.append(one)
    with transaction(session_factory) as session:
        finish(session=session, job_id=claimed[0].job_id, token=claimed[0].fencing_token)
        request_cancel(session=session, job=get_job(session, claimed[1].job_id), actor="t")
    assert len(jobs) == 5  # one queued, one finished, one cancelling, two running
    with read_transaction(session_factory) as session:
        running = running_usage(session=session, user_ids=[ann, bob, cid])
        whole = usage(session=session, user_ids=[ann, bob, cid])
    for user in (ann, bob, cid):
        full = whole[user]
        assert running[user] == RunningUsage(full.running_jobs, full.cpus, full.gpus)
    assert running[cid] == RunningUsage()
    assert sum(r.running_jobs for r in running.values()) == 3
