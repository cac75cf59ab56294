"""The submit path's database work, pinned (issue 13): each statement is a round trip
and a slice of the server's CPU at a lab's load, so a change that adds one should
fail here and say so, not show up weeks later as a slower benchmark."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, text

from service.store.cluster_capacity import ClusterCapacity
from service.store.db import make_engine
from tests.api.conftest import SMALL_SPEC, Api
from tests.polling import wait_until

# Per submit without an Idempotency-Key, on PostgreSQL, all in one transaction: the
# token look-up that also takes the user's quota lock; the user's quota standing with
# the database clock (a statement after the lock's, so that it counts the jobs of a
# concurrent submit that held the lock: docs/decisions.md); the job with its first
# event (and the NOTIFY) in one WITH statement; the audit row. SQLite looks the token
# up first, in a read transaction of its own, reads the standing by itself, writes
# the job and its event apart, and also counts its BEGINs.
MAX_STATEMENTS = {"sqlite": 7, "postgresql": 4}
# PostgreSQL round trips (libpq's ReadyForQuery messages): the statements plus BEGIN
# and COMMIT of the one transaction; the pool's liveness check costs none on a
# healthy connection.
MAX_ROUND_TRIPS = 6
# With an Idempotency-Key: its look-up, and the savepoint around the insert.
MAX_STATEMENTS_WITH_KEY = {"sqlite": 10, "postgresql": 7}


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def app_engine(api: Api) -> Engine:
    engine: Engine = api.client.app.state.engine  # type: ignore[attr-defined]
    return engine


def _no_dispatcher_read(api: Api) -> None:
    """The live dispatchers are read once per 5 s per process (ClusterCapacity), not
    per submit: kept out of the count, as the token's last_used_at write is."""
    api.client.app.state.cluster_capacity = ClusterCapacity(refresh_seconds=3600)  # type: ignore[attr-defined]


def test_a_submit_costs_a_fixed_number_of_statements(api: Api) -> None:
    _no_dispatcher_read(api)
    _uid, alice = api.create_user("alice")
    api.submit(alice)  # warm: the token's last_used_at write happens at most once a minute
    kind = app_engine(api).dialect.name
    with counting(app_engine(api)) as statements:
        api.submit(alice)
    assert 0 < len(statements) <= MAX_STATEMENTS[kind], "\n".join(statements)
    with counting(app_engine(api)) as statements:
        r = api.client.post("/v1/jobs", json=SMALL_SPEC, headers={**alice, "Idempotency-Key": "k"})
    assert r.status_code == 201, r.text
    assert len(statements) <= MAX_STATEMENTS_WITH_KEY[kind], "\n".join(statements)


def test_a_submit_costs_a_fixed_number_of_round_trips(api: Api) -> None:
    engine = app_engine(api)
    if engine.dialect.name != "postgresql":
        pytest.skip("round trips are PostgreSQL's")
    _no_dispatcher_read(api)
    _uid, alice = api.create_user("alice")
    api.submit(alice)
    engine.dispose()  # new connections, each traced by libpq into one file
    with tempfile.TemporaryFile("w+") as trace:

        def traced(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.pgconn.trace(trace.fileno())
            dbapi_conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

        event.listen(engine, "connect", traced)
        try:
            api.submit(alice)  # opens the connections
            trace.seek(0, os.SEEK_END)
            start = trace.tell()
            api.submit(alice)
            trace.seek(start)
            log = trace.read()
        finally:
            event.remove(engine, "connect", traced)
            engine.dispose()
    round_trips = log.count("\tReadyForQuery\t")
    assert 0 < round_trips <= MAX_ROUND_TRIPS, log


def test_a_pooled_connection_the_server_dropped_is_replaced(db_url: str) -> None:
    """The pool's liveness check skips the round trip on a healthy connection; one
    whose backend was terminated (as by a database restart) is still caught."""
    engine = make_engine(db_url, pool_size=1)
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL backends")
    admin = make_engine(db_url)
    try:
        with engine.connect() as conn:
            first = conn.scalar(text("SELECT pg_backend_pid()"))
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})

        def gone() -> bool:
            with admin.connect() as conn:
                return not conn.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": first},
                )

        wait_until(gone, timeout=10, what="the terminated backend to exit")
        with engine.connect() as conn:  # no error: the dead connection was replaced
            second = conn.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        engine.dispose()
        admin.dispose()
