"""Migration 0010: the listings' filter indexes. Up, down and up again keep the rows,
and on SQLite (no planner statistics, as deployed) the store's own queries use them:
an admin's status filter reads its page in id order, and the audit filters no longer
scan the table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from service.store import migrate
from service.store.audit import audit_page
from service.store.db import make_engine, make_sessionmaker
from service.store.jobs import list_jobs
from service.store.users import Principal
from tests.migrations.test_migrations import _below

NEW = {
    "jobs": {"ix_jobs_status_id"},
    "audit_events": {
        "ix_audit_events_action_id",
        "ix_audit_events_target_id",
        "ix_audit_events_actor_id_id",
    },
}


def _indexes(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {t: {str(i["name"]) for i in inspector.get_indexes(t)} & NEW[t] for t in NEW}
    finally:
        engine.dispose()


def test_round_trip_keeps_the_rows(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, _below("0010"))
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO audit_events (at, actor, action, target, detail) "
                    "VALUES (CURRENT_TIMESTAMP, 'admin', 'user.created', 'user:1', '{}')"
                )
            )
        assert _indexes(empty_db_url) == {"jobs": set(), "audit_events": set()}
        migrate.upgrade(empty_db_url)
        assert _indexes(empty_db_url) == NEW
        migrate.downgrade(empty_db_url, _below("0010"))
        assert _indexes(empty_db_url) == {"jobs": set(), "audit_events": set()}
        migrate.upgrade(empty_db_url)
        assert _indexes(empty_db_url) == NEW
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT actor, action, target FROM audit_events")).all()
        assert [tuple(r) for r in rows] == [("admin", "user.created", "user:1")]
    finally:
        engine.dispose()


@contextmanager
def _statements(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_sqlite_plans_use_the_indexes(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    sessions = make_sessionmaker(engine)
    admin = Principal(user_id=1, name="admin", role="admin", token_id=1)
    try:
        # The store's own statements, explained as they were sent.
        with _statements(engine) as seen, sessions() as session:
            list_jobs(
                session=session,
                viewer=admin,
                owner_id=None,
                status="succeeded",
                sweep_id=None,
                finished_before=None,
                limit=51,
                before_id=None,
            )
            for filters in ({"action": "user.disabled"}, {"target": "job:42"}, {"actor_id": 7}):
                audit_page(session=session, after_id=None, limit=51, newest_first=True, **filters)
        assert len(seen) == 4
        with engine.connect() as conn:
            plans = [
                " | ".join(
                    str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", p)
                )
                for s, p in seen
            ]
        expected = [
            "ix_jobs_status_id",
            "ix_audit_events_action_id",
            "ix_audit_events_target_id",
            "ix_audit_events_actor_id_id",
        ]
        for plan, index in zip(plans, expected, strict=True):
            assert index in plan and "TEMP B-TREE" not in plan, plan
    finally:
        engine.dispose()


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_sqlite_sweep_filter_reads_the_sweeps_rows_in_order(empty_db_url: str) -> None:
    """`?sweep_id=` (the sweep page's one read per redraw) needs no index of its own:
    ix_jobs_sweep_id (0006) carries the rowid (= id) on SQLite, so a plain user's page
    and an admin's are read in id order from the sweep's rows alone, not from every
    job of the user (ix_jobs_owner_id_id) and with no sort. Without the store's
    `owner_id + 0` SQLite chose between the two indexes by their order in the schema,
    which the migrations' table rebuilds leave arbitrary (1 run in 8 failed here)."""
    migrate.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    sessions = make_sessionmaker(engine)
    viewers = [
        Principal(user_id=2, name="alice", role="user", token_id=2),
        Principal(user_id=1, name="admin", role="admin", token_id=1),
    ]
    try:
        with _statements(engine) as seen, sessions() as session:
            for viewer, before_id in ((v, b) for v in viewers for b in (None, 1000)):
                list_jobs(
                    session=session,
                    viewer=viewer,
                    owner_id=None,
                    status=None,
                    sweep_id=7,
                    finished_before=None,
                    limit=501,
                    before_id=before_id,
                )
        assert len(seen) == 4
        with engine.connect() as conn:
            for statement, parameters in seen:
                plan = " | ".join(
                    str(row[-1])
                    for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                )
                assert "ix_jobs_sweep_id " in plan and "TEMP B-TREE" not in plan, plan
    finally:
        engine.dispose()
