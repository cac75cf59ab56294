"""The room hold's statement (claim_candidate.held_jobs: explain, `/v1/cluster`'s queue
head, the dispatcher's maintenance) is planned without nested loops on a store with a
long history and a deep queue, where the planner estimates the queue at a few rows
and looped over the users for each queued job (34 ms a live dispatcher against 10 at
a year's scale); and the setting is set back after, in a read transaction
(autocommit) as in a write one, so nothing else on the connection is planned under it."""

from __future__ import annotations

from contextlib import suppress
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.schemas.node_fit import ClusterRoom, NodeShape
from service.schemas.quota import QuotaDefaults
from service.store.claim_candidate import HeldJob, held_jobs, no_nested_loops
from service.store.db import make_engine, make_sessionmaker, read_transaction, transaction
from tests.conftest import create_postgres_database, drop_postgres_database, on_one_database
from tests.store.filled_postgres import analyse, filled_postgres
from workers.loop_errors import store_unreachable

QUEUED = 2_000
ROOM = ClusterRoom(64.0, 0.0, (NodeShape(16.0, 0.0, 64.0 * 2**30),) * 4)


def _queue(engine: Engine) -> None:
    """QUEUED jobs, waiting an hour, with their bundles (the room's per-node filters
    read them), over the filled store's users."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (owner_id, status, spec, priority, cpus_required, "
                "gpus_required, replica_cpus, replica_gpus, replica_memory_bytes, "
                "coordinator_memory_bytes, attempt, max_attempts, progress_round, "
                "progress_rounds, last_seq, created_at) SELECT u.id, 'queued', '{}', 0, 5, "
                "0, 2, 0, 2 ^ 20, 2 ^ 20, 0, 3, 0, 10, 0, now() - interval '1 hour' "
                "+ i * interval '1 second' FROM generate_series(1, :n) i "
                "JOIN users u ON u.name = 'u' || (1 + i % 40)"
            ),
            {"n": QUEUED},
        )
    analyse(engine)


def _held(session: Session) -> list[HeldJob | None]:
    return held_jobs(
        session=session,
        rooms=[ROOM] * 3,
        hold_room_after=timedelta(minutes=10),
        quota_defaults=QuotaDefaults(),
        fair_share_window=timedelta(hours=1),
    )


@on_one_database("postgresql")
def test_the_held_job_is_planned_without_nested_loops_and_the_setting_is_set_back() -> None:
    with filled_postgres() as engine:
        _queue(engine)
        sessions = make_sessionmaker(engine)
        plans: list[str] = []

        def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            # Planned under the settings in force as the statement runs.
            if "held_job AS MATERIALIZED" in statement:
                rows = cursor.connection.execute("EXPLAIN " + statement, parameters)
                plans.append("\n".join(row[0] for row in rows))

        event.listen(engine, "before_cursor_execute", explain)
        try:
            for begin in (read_transaction, transaction):
                with begin(sessions) as session:
                    held = _held(session)
                    after = session.scalar(text("SHOW enable_nestloop"))
                assert after == "on", begin
                assert len(set(held)) == 1 and held[0] is not None, held
        finally:
            event.remove(engine, "before_cursor_execute", explain)
    assert len(plans) == 6
    for plan in plans:
        assert "Nested Loop" not in plan, plan
        assert "Hash" in plan, plan


@on_one_database("postgresql")
def test_a_connection_lost_inside_raises_its_own_error_not_the_resets() -> None:
    """A backend that dies while the hold's statements run: the error raised is the
    lost connection's (an outage: a 503 with Retry-After, ridden out by the CLI and
    the dispatcher), not a PendingRollbackError from the RESET after it (a 500)."""
    url = create_postgres_database()
    engine = make_engine(url, pool_size=1)
    try:
        sessions = make_sessionmaker(engine)
        killer = make_engine(url)
        with (
            pytest.raises(OperationalError) as raised,
            read_transaction(sessions) as session,
            no_nested_loops(session),
        ):
            pid = session.scalar(text("SELECT pg_backend_pid()"))
            with killer.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killer.dispose()
            session.execute(text("SELECT 1"))
        assert store_unreachable(raised.value)
        with read_transaction(sessions) as session:  # a fresh connection, the defaults
            assert session.scalar(text("SHOW enable_nestloop")) == "on"
    finally:
        engine.dispose()
        drop_postgres_database(url)


@on_one_database("postgresql")
def test_a_python_error_caught_inside_a_transaction_leaves_the_setting_set_back() -> None:
    """A caller that catches an error raised inside and then commits: the pooled
    connection must not go on planning every later request without nested loops."""
    url = create_postgres_database()
    engine = make_engine(url, pool_size=1)
    try:
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as session, suppress(LookupError), no_nested_loops(session):
            assert session.scalar(text("SHOW enable_nestloop")) == "off"
            raise LookupError("a caller's own error")
        with read_transaction(sessions) as session:  # the same pooled connection
            assert session.scalar(text("SHOW enable_nestloop")) == "on"
    finally:
        engine.dispose()
        drop_postgres_database(url)
