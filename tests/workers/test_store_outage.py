"""Store outages shorter than the lease cost no attempt (issue 9, point 1).

On PostgreSQL a PRIVATE server (tests/private_postgres.py) is stopped and started
again with three jobs in flight; on SQLite another connection holds the database
locked past the dispatcher's busy timeout ("database is locked"). Either way every
job must end `succeeded` on attempt 1 with a gap- and duplicate-free metric series.
The outage lasts until the dispatcher has observably retried a write."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from service.errors import StaleLease
from service.schemas.resolve import resolve
from service.settings import Settings
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.jobs import enqueue
from service.store.migrate import upgrade
from service.store.models import Job, JobAttempt, Metric
from service.store.users import create_user
from tests.polling import wait_until
from tests.private_postgres import PrivatePostgres, postgres_binaries_available
from workers.dispatcher import Dispatcher
from workers.store_writer import RetryingWriter, StoreUnavailable

ROUNDS = 200


def _locked_sqlite(path: Path) -> sqlite3.Connection:
    """A connection holding the write lock until it commits."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_the_writer_retries_a_locked_sqlite_database_then_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    engine = make_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=50)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    writer = RetryingWriter(make_sessionmaker(engine), give_up_seconds=60, name="test")
    holder = _locked_sqlite(path)
    done: list[int] = []
    thread = threading.Thread(
        target=lambda: done.append(
            # Session.execute is typed as returning Result; for DML it is a CursorResult.
            writer.write(lambda s: s.execute(text("INSERT INTO t VALUES (1)")).rowcount)  # type: ignore[attr-defined]
        )
    )
    thread.start()
    wait_until(lambda: writer.retries >= 2, timeout=30, what="retries while locked")
    assert not done
    holder.execute("COMMIT")
    thread.join(timeout=30)
    assert done == [1]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    holder.close()
    engine.dispose()


def test_the_writer_gives_up_with_the_abort_reason_and_raises_real_errors_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    engine = make_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=20)
    writer = RetryingWriter(make_sessionmaker(engine), give_up_seconds=60, name="test")

    def stale(_session: Session) -> None:
        raise StaleLease("job 1: the lease token is not current")

    with pytest.raises(StaleLease):
        writer.write(stale)
    assert writer.retries == 0
    holder = _locked_sqlite(path)
    calls: list[int] = []

    def full() -> str | None:
        calls.append(1)
        return "12 events waited for the store (the buffer holds 10)" if len(calls) > 2 else None

    with pytest.raises(StoreUnavailable, match="buffer holds 10"):
        writer.write(lambda s: s.execute(text("CREATE TABLE u (x INTEGER)")), abort=full)
    holder.close()
    engine.dispose()


class Outage:
    """Where the store lives and how to take it away and bring it back."""

    def __init__(
        self,
        url: str,
        begin: Callable[[], None],
        end: Callable[[], None],
        engine_kwargs: dict[str, int],
    ) -> None:
        self.url, self.begin, self.end, self.engine_kwargs = url, begin, end, engine_kwargs


@pytest.fixture(params=["sqlite", "postgresql"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "sqlite":
        path = tmp_path / "lagtrain.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        holders: list[sqlite3.Connection] = []

        def lock() -> None:
            holders.append(_locked_sqlite(path))

        def unlock() -> None:
            holders.pop().close()

        yield Outage(url, lock, unlock, {"sqlite_busy_timeout_ms": 200})
        return
    if not postgres_binaries_available():
        pytest.skip("PostgreSQL server binaries not found (LAGTRAIN_PG_BIN)")
    server = PrivatePostgres()
    try:
        server.start()
        url = server.create_database()
        upgrade(url)
        yield Outage(url, server.stop, server.start, {})
    finally:
        server.destroy()


def _submit_jobs(sessions: sessionmaker[Session], count: int) -> list[int]:
    spec = resolve(
        {
            "task": {"kind": "adding"},
            "distributed": {"workers": 2, "cpus_per_worker": 0.5},
            "schedule": {"rounds": ROUNDS, "checkpoint_every": 20},
            "max_attempts": 3,
        }
    )
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="outage", role="user")
        return [enqueue(session=session, owner_id=user.id, spec=spec)[0].id for _ in range(count)]


@pytest.mark.ray
def test_jobs_ride_through_a_store_outage_on_attempt_one(
    outage: Outage, ray_address: str, tmp_path: Path
) -> None:
    # The dispatcher's engine (a short SQLite busy timeout makes the outage quick);
    # the test reads through its own, patient one.
    dispatcher_engine = make_engine(outage.url, **outage.engine_kwargs)
    engine = make_engine(outage.url)
    sessions = make_sessionmaker(engine)
    settings = Settings(
        database_url=outage.url,
        artifacts_url=str(tmp_path / "artifacts"),
        state_dir=tmp_path / "state",
        lease_seconds=30.0,
        heartbeat_seconds=0.5,
    )
    job_ids = _submit_jobs(sessions, 3)
    dispatcher = Dispatcher(settings, make_sessionmaker(dispatcher_engine))
    thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
    thread.start()
    try:

        def all_training() -> bool:
            with sessions() as session:
                jobs = [session.get(Job, i) for i in job_ids]
                return all(j is not None and j.progress_round >= 5 for j in jobs)

        wait_until(all_training, timeout=180, what="three jobs in flight")
        outage.begin()
        began = time.monotonic()
        try:
            wait_until(
                lambda: sum(run.store_retries for run, _ in list(dispatcher.runs.values())) >= 12,
                timeout=60,
                what="the dispatcher retrying writes during the outage",
            )
        finally:
            outage.end()
        answered = _first_answer_seconds(outage.url)
        print(
            f"store outage {time.monotonic() - began:.1f} s; answered again after {answered:.2f} s"
        )

        def all_done() -> bool:
            with sessions() as session:
                jobs = [session.get(Job, i) for i in job_ids]
                return all(j is not None and j.status in {"succeeded", "failed"} for j in jobs)

        wait_until(all_done, timeout=300, what="the jobs to finish")
        with sessions() as session:
            for job_id in job_ids:
                job = session.get(Job, job_id)
                assert job is not None
                assert (job.status, job.attempt) == ("succeeded", 1), job.error
                attempts = session.query(JobAttempt).filter_by(job_id=job_id).count()
                seqs = [
                    m.seq
                    for m in session.query(Metric).filter_by(job_id=job_id).order_by(Metric.seq)
                ]
                assert attempts == 1
                assert seqs == list(range(1, ROUNDS + 1))
    finally:
        dispatcher.stop()
        thread.join(timeout=60)
        engine.dispose()
        dispatcher_engine.dispose()


def _first_answer_seconds(url: str) -> float:
    """Seconds until a fresh connection answers a query (the API's readiness check)."""
    engine = create_engine(url)
    start = time.monotonic()

    def answers() -> bool:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    try:
        wait_until(answers, timeout=30, what="the store to answer")
        return time.monotonic() - start
    finally:
        engine.dispose()
