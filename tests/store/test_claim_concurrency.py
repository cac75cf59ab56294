"""4 OS processes claim from 400 queued jobs: every job is claimed exactly once. And
claims at the same instant respect an owner's max_running_jobs exactly: claims take
turns (service/store/claim.py), so each sees the jobs the ones before it started."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.store.attempts import claim_next
from service.store.claim import CLAIM_LOCK_KEY
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Job, JobAttempt, JobEvent
from tests.polling import wait_until
from tests.store.claim_worker import claim_until_empty
from tests.store.conftest import MakeUser, minimal_spec

PROCESSES = 4
JOBS = 400


@contextmanager
def claims_held(session_factory: sessionmaker[Session], waiters: int) -> Iterator[None]:
    """Hold the claims' turn, so that no claim commits until the block ends: SQLite's
    write lock (BEGIN IMMEDIATE on the first statement), PostgreSQL's claim lock. On
    PostgreSQL the block ends only once `waiters` claims are seen waiting for it (a
    SQLite writer waiting in its busy handler is invisible)."""
    with transaction(session_factory) as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
        else:
            session.execute(text("SELECT 1"))
        yield
        if postgres:
            wait_until(
                lambda: _claims_waiting(session_factory) >= waiters,
                timeout=60,
                what=f"{waiters} claims waiting for the turn",
            )


def _claims_waiting(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_locks JOIN pg_database d ON d.oid = database"
                " WHERE d.datname = current_database() AND locktype = 'advisory'"
                " AND NOT granted"
            )
        )
    return int(waiting or 0)


def test_each_job_claimed_exactly_once(
    db_url: str, session_factory: sessionmaker[Session], make_user: MakeUser
) -> None:
    """All 4 are waiting to claim before the first claim can commit, so they contend
    for the whole queue. Who gets how many is the OS's business: SQLite's lock is not
    fair, and under load one process can take all 400 (an earlier "at least two got
    work" assertion failed that way in CI)."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES + 1)
    attempting = ctx.Queue()
    results = ctx.Queue()
    procs = [
        ctx.Process(target=claim_until_empty, args=(db_url, f"d{i}", start, attempting, results))
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
    with claims_held(session_factory, PROCESSES):
        start.wait(timeout=120)
        waiting = {attempting.get(timeout=60) for _ in procs}
        held_until = time.time()
    per_process = [results.get(timeout=120) for _ in procs]
    deadline = time.monotonic() + 30
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        assert p.exitcode == 0

    claims = Counter(job_id for got, _at in per_process for job_id in got)
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
    # The contention was real: every process was on its way into a claim while the
    # turn was held, and none committed before it was given back.
    assert waiting == {f"d{i}" for i in range(PROCESSES)}
    assert min(at for _got, at in per_process) > held_until


def claim_together(session_factory: sessionmaker[Session], claimers: int) -> list[int]:
    """`claimers` threads released at once, each claiming once as its own dispatcher:
    the owners of the jobs they claimed (an error in any thread fails the test)."""
    start = threading.Barrier(claimers)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def claim(name: str) -> None:
        try:
            start.wait(timeout=30)
            with transaction(session_factory) as session:
                got = claim_next(
                    session=session, dispatcher_id=name, lease_seconds=60, free_cpus=64, free_gpus=0
                )
            if got is not None:
                claimed.append(got.owner_id)
        except BaseException as exc:  # shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(f"d{i}",)) for i in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    return claimed


def test_claims_at_the_same_instant_keep_an_owner_within_max_running_jobs(
    session_factory: sessionmaker[Session], make_user: MakeUser
) -> None:
    """Before claims took turns, 8 dispatchers claiming together on PostgreSQL could
    start up to 8 jobs of an owner allowed 1 (each claim counted the owner's running
    jobs as committed when its statement began); one such round caught it in 2 of 3
    runs, so three rounds, each for a new owner."""
    for round_ in range(3):
        owner = make_user(f"owner{round_}", max_running_jobs=1)
        with transaction(session_factory) as session:
            for _ in range(16):
                enqueue(session=session, owner_id=owner, spec=minimal_spec(max_attempts=1))
        # Earlier owners' jobs are running: only this owner's queued ones are left.
        claimed = claim_together(session_factory, 8)
        assert claimed == [owner], (round_, claimed)
    with session_factory() as session:
        running = session.scalar(
            select(func.count()).select_from(Job).where(Job.status == "running")
        )
    assert running == 3
