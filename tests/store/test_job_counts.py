"""Jobs per status for /v1/cluster and /metrics (service.store.job_counts), on SQLite
and PostgreSQL: every status present and exact when counted now; through a
TerminalCounts, the live statuses exact on every call and the terminal ones as of
the last refresh, at most refresh_seconds old (a hand-driven clock, no sleeping);
and on a PostgreSQL store with a long history the live statuses are counted by the
status index, not by reading every job."""

from __future__ import annotations

from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import read_transaction, transaction
from service.store.job_counts import (
    LIVE_STATUSES,
    TerminalCounts,
    count_by_status,
    count_statement,
    status_counts,
)
from service.store.models import Job, JobStatus
from tests.conftest import on_one_database
from tests.store.conftest import MakeUser, Submit
from tests.store.filled_postgres import JOBS, analyse, filled_postgres, plan


def _set_status(factory: sessionmaker[Session], job_id: int, status: JobStatus) -> None:
    with transaction(factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=status.value))


def _counts(factory: sessionmaker[Session], terminal: TerminalCounts | None) -> dict[str, int]:
    with read_transaction(factory) as session:
        return status_counts(session=session, terminal=terminal)


def test_every_status_is_counted_in_order(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann = make_user("ann")
    assert _counts(session_factory, None) == dict.fromkeys((s.value for s in JobStatus), 0)
    wanted = [JobStatus.QUEUED] * 3 + [JobStatus.RUNNING] * 2 + [JobStatus.CANCELLING]
    wanted += [JobStatus.SUCCEEDED] * 4 + [JobStatus.FAILED] + [JobStatus.CANCELLED] * 2
    for status in wanted:
        _set_status(session_factory, submit(ann), status)
    counts = _counts(session_factory, None)
    assert list(counts) == [s.value for s in JobStatus]
    assert counts == {s.value: wanted.count(s) for s in JobStatus}
    assert _counts(session_factory, TerminalCounts()) == counts


def test_live_counts_are_exact_and_terminal_ones_at_most_refresh_seconds_old(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann = make_user("ann")
    now = [1000.0]
    terminal = TerminalCounts(refresh_seconds=15, clock=lambda: now[0])
    first, second = submit(ann), submit(ann)
    _set_status(session_factory, first, JobStatus.SUCCEEDED)
    assert _counts(session_factory, terminal) == {
        **dict.fromkeys((s.value for s in JobStatus), 0),
        "queued": 1,
        "succeeded": 1,
    }
    # The second runs and ends, a third is queued: the live counts say so at once,
    # the terminal ones keep the last refresh's figures until 15 s have passed.
    _set_status(session_factory, second, JobStatus.RUNNING)
    submit(ann)
    live = _counts(session_factory, terminal)
    assert (live["queued"], live["running"], live["succeeded"]) == (1, 1, 1)
    _set_status(session_factory, second, JobStatus.FAILED)
    now[0] += 14.9
    stale = _counts(session_factory, terminal)
    assert (stale["running"], stale["failed"], stale["succeeded"]) == (0, 0, 1)
    now[0] += 0.1
    fresh = _counts(session_factory, terminal)
    assert (fresh["running"], fresh["failed"], fresh["succeeded"]) == (0, 1, 1)
    assert fresh == _counts(session_factory, None)


@on_one_database("postgresql")
def test_live_statuses_are_counted_by_the_status_index() -> None:
    with filled_postgres() as engine:
        with engine.begin() as conn:  # a queue of 50 behind a history of 20,000
            conn.execute(text("UPDATE jobs SET status = 'queued' WHERE id % 400 = 0"))
        analyse(engine)
        with Session(engine) as session:
            counts = count_by_status(session=session, statuses=LIVE_STATUSES)
        compiled = count_statement(LIVE_STATUSES).compile(
            engine, compile_kwargs={"render_postcompile": True}
        )
        found = plan(engine, str(compiled), dict(compiled.params))
    assert counts == {"queued": JOBS // 400, "running": 0, "cancelling": 0}
    assert "Seq Scan on jobs" not in found, found
    assert "ix_jobs_status" in found, found
