"""An event's time never precedes a commit its transaction saw: the SQLite clock is
read under the write lock; on PostgreSQL the claim reads clock_timestamp() inside its
UPDATE, a transition reads it once it holds the job's row lock (the reaper's too)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Connection, event, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.store import lifecycle
from service.store.attempts import ClaimedJob, claim_next, requeue_expired
from service.store.db import db_now, is_sqlite, transaction
from service.store.models import Job, JobAttempt, JobEvent, JobStatus
from tests.polling import wait_until
from tests.store.conftest import MakeUser, Submit


def test_sqlite_reads_the_clock_only_once_it_holds_the_write_lock(
    db_url: str, session_factory: sessionmaker[Session]
) -> None:
    # Without it a dispatcher read the time, waited for the lock while the sweep
    # controller queued a job, then claimed that job: its `running` event came out
    # 60 ms before its `queued` one (tests/e2e/test_sweeps_e2e.py saw 3 trial jobs
    # "at once" with parallel 2).
    if not is_sqlite(db_url):
        pytest.skip("PostgreSQL stamps with clock_timestamp(); there is no database lock")
    with transaction(session_factory) as session:
        db_now(session=session)
        other = sqlite3.connect(str(make_url(db_url).database), timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # no commit can come in between
        finally:
            other.close()


# PostgreSQL: READ COMMITTED gives every statement its own snapshot, so a time read by
# one statement can precede commits the next one sees. The clock must be read by (or
# after) the statement that decides: the claim reads it inside its UPDATE, a
# transition after it holds the row lock.


def _events(factory: sessionmaker[Session], job_id: int) -> list[tuple[str, datetime]]:
    with factory() as session:
        rows = session.execute(
            select(JobEvent.to_status, JobEvent.at)
            .where(JobEvent.job_id == job_id)
            .order_by(JobEvent.id)
        ).all()
    return [(status, at) for status, at in rows]


def _on_next(connection: Connection, marker: str, action: Callable[[], None]) -> None:
    """Run `action` once, just before `connection` sends a statement containing `marker`."""
    fired: list[bool] = []

    def before(_conn: Connection, _cursor: object, statement: str, *_args: object) -> None:
        if marker in statement and not fired:
            fired.append(True)
            action()

    event.listen(connection, "before_cursor_execute", before)


@pytest.fixture
def postgres(db_url: str) -> None:
    """PostgreSQL only: on SQLite BEGIN IMMEDIATE orders whole transactions, so nothing
    can commit between a transaction's clock and its statements (first test)."""
    if is_sqlite(db_url):
        pytest.skip("SQLite orders whole transactions (BEGIN IMMEDIATE)")


def _claim(
    factory: sessionmaker[Session],
    job_id: int,
    lease_seconds: float = 60,
    time_zone: str | None = None,
) -> ClaimedJob:
    """Claim `job_id` and commit; `time_zone`: the PostgreSQL session's, for the claim."""
    with transaction(factory) as session:
        if time_zone is not None and session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"SET LOCAL TIME ZONE '{time_zone}'"))
        claimed = claim_next(
            session=session, dispatcher_id="d", lease_seconds=lease_seconds, free_cpus=99,
            free_gpus=0,
        )  # fmt: skip
    assert claimed is not None and claimed.job_id == job_id
    return claimed


def _note(factory: sessionmaker[Session], claimed: ClaimedJob) -> None:
    """The dispatcher appends an event (a note: from = to = running) and commits."""
    with transaction(factory) as session:
        lifecycle.note(
            session=session, job_id=claimed.job_id, token=claimed.fencing_token,
            actor="dispatcher:d", reason="resumed from an older checkpoint",
        )  # fmt: skip


@pytest.mark.usefixtures("postgres")
def test_postgres_claim_is_stamped_after_the_queueing_it_claims(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("u")
    queued: list[int] = []
    with transaction(session_factory) as session:
        # The job is queued (and committed) after the claim began, just before its
        # UPDATE is sent: the claim sees it and starts it.
        _on_next(
            session.connection(), "UPDATE jobs SET status", lambda: queued.append(submit(owner))
        )
        claimed = claim_next(
            session=session, dispatcher_id="d", lease_seconds=60, free_cpus=99, free_gpus=0
        )
    assert claimed is not None and [claimed.job_id] == queued
    (_, queued_at), (running, running_at) = _events(session_factory, claimed.job_id)
    assert running == "running" and queued_at <= running_at


# A lease over a daylight-saving change (US, 14 March 2027) when the claim is made
# before it: as days, PostgreSQL would add calendar days in the session's zone.
LONG_LEASE = timedelta(days=140, seconds=12.5)


def test_a_claim_has_one_time(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """The job's start, its attempt's and its running event's are one time, and the
    lease ends exactly `lease_seconds` after it, whatever the session's time zone
    (on PostgreSQL the claim reads the clock itself and the time is taken back from
    the lease's end, so that must be exact)."""
    job_id = submit(make_user("u"))
    claimed = _claim(
        session_factory, job_id, LONG_LEASE.total_seconds(), time_zone="America/New_York"
    )
    (_, queued_at), (_, running_at) = _events(session_factory, job_id)
    with session_factory() as session:
        attempt = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)).one()
        job = session.get(Job, job_id)
        assert job is not None
    assert attempt.started_at == running_at == job.started_at
    assert job.lease_expires_at == attempt.lease_expires_at == claimed.lease_expires_at
    assert claimed.lease_expires_at - running_at == LONG_LEASE
    assert queued_at <= running_at


@pytest.fixture
def postgres_running(
    postgres: None, session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> ClaimedJob:
    """A running job's claim, on PostgreSQL."""
    job_id = submit(make_user("u"))
    return _claim(session_factory, job_id)


def test_postgres_transition_is_stamped_after_the_lock_it_waited_for(
    session_factory: sessionmaker[Session], postgres_running: ClaimedJob
) -> None:
    claimed, job_id = postgres_running, postgres_running.job_id
    holding, failures = threading.Event(), []

    def dispatcher_writes_while_the_cancel_waits() -> None:
        try:
            with transaction(session_factory) as other:
                lifecycle.note(
                    session=other, job_id=job_id, token=claimed.fencing_token,
                    actor="dispatcher:d", reason="resumed from an older checkpoint",
                )  # fmt: skip
                holding.set()
                wait_until(
                    lambda: other.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND datname = current_database()"
                        )
                    ),
                    timeout=10,
                    what="the cancel to wait for the row lock",
                )
        except BaseException as error:  # reported by the main thread
            failures.append(error)
            holding.set()

    writer = threading.Thread(target=dispatcher_writes_while_the_cancel_waits)
    try:
        with transaction(session_factory) as session:
            job = session.get(Job, job_id)
            assert job is not None

            def start_writer() -> None:
                writer.start()
                assert holding.wait(10)

            _on_next(session.connection(), "FOR UPDATE", start_writer)
            lifecycle.transition(session=session, job=job, to=JobStatus.CANCELLING, actor="user:u")
    finally:
        if writer.ident is not None:  # started: never leave it holding the row lock
            writer.join(15)
    assert writer.ident is not None and not writer.is_alive(), "the hook never ran the writer"
    assert not failures, failures
    statuses = _events(session_factory, job_id)
    assert [status for status, _ in statuses] == ["queued", "running", "running", "cancelling"]
    (_, noted_at), (_, cancel_at) = statuses[2:]
    assert noted_at <= cancel_at


def test_postgres_reaper_stamps_after_a_change_made_while_it_judged(
    session_factory: sessionmaker[Session], postgres_running: ClaimedJob
) -> None:
    claimed, job_id = postgres_running, postgres_running.job_id
    with transaction(session_factory) as session:
        session.execute(  # its dispatcher stopped beating a while ago
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=func.clock_timestamp() - timedelta(minutes=1))
        )

    with transaction(session_factory) as session:
        # The reaper has read the clock to judge the leases; the note commits before
        # its SELECT ... FOR UPDATE SKIP LOCKED is sent.
        _on_next(session.connection(), "SKIP LOCKED", lambda: _note(session_factory, claimed))
        assert requeue_expired(session=session) == [job_id]
    events = _events(session_factory, job_id)
    assert [status for status, _ in events] == ["queued", "running", "running", "queued"]
    (_, noted_at), (_, requeued_at) = events[2:]
    assert noted_at <= requeued_at
