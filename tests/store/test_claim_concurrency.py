"""4 OS processes claim from 400 queued jobs: every job is claimed exactly once."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Job, JobAttempt, JobEvent
from tests.store.claim_worker import claim_until_empty
from tests.store.conftest import MakeUser, minimal_spec

PROCESSES = 4
JOBS = 400


def test_each_job_claimed_exactly_once(
    db_url: str, session_factory: sessionmaker[Session], make_user: MakeUser
) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=claim_until_empty, args=(db_url, f"d{i}", start, results))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()  # they import while the queue fills, then wait for the barrier

    owners = [make_user(f"user{i}") for i in range(3)]
    spec = minimal_spec(max_attempts=1)
    with transaction(session_factory) as session:
        for i in range(JOBS):
            _job, created = enqueue(session=session, owner_id=owners[i % 3], spec=spec)
            assert created
    start.wait(timeout=120)
    per_process = [results.get(timeout=120) for _ in procs]
    deadline = time.monotonic() + 30
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        assert p.exitcode == 0

    claims = Counter(job_id for got in per_process for job_id in got)
    with session_factory() as session:
        all_ids = set(session.scalars(select(Job.id)))
        statuses = Counter(session.scalars(select(Job.status)))
        attempts = session.scalar(select(func.count()).select_from(JobAttempt))
        running_events = session.scalar(
            select(func.count()).select_from(JobEvent).where(JobEvent.to_status == "running")
        )
    assert set(claims) == all_ids and len(all_ids) == JOBS
    assert max(claims.values()) == 1
    assert statuses == {"running": JOBS}
    assert attempts == JOBS and running_events == JOBS
    # Not a timing assertion: just that the work really was shared.
    assert sum(1 for got in per_process if got) >= 2
