"""Migration 0013: audit_events.actor holds the longest actor the service writes
("sweep:<id> for admin:<100-character name>", 136 characters), which PostgreSQL
refused at 120 and with it a sweep's whole step. Down and up again keeps every row
and id (SQLite rebuilds the table, AUTOINCREMENT kept); the downgrade cuts a longer
actor to 120 characters."""

from __future__ import annotations

import sqlalchemy as sa

from service.schemas.audit import AuditAction
from service.store import migrate
from service.store.audit import record
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.models import Base
from service.store.users import Principal
from tests.migrations.test_migrations import _below, diffs, sqlite_autoincrement_tables
from tests.migrations.test_migrations import pytestmark as migration_marks

pytestmark = migration_marks

LONGEST = Principal(user_id=7, name="n" * 100, role="admin", token_id=0)
VIA = f"sweep:{2**63 - 1}"


def _actors(engine: sa.Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, actor FROM audit_events ORDER BY id"))
        return [(int(i), str(a)) for i, a in rows]


def test_the_longest_actor_is_kept_whole_and_the_round_trip_keeps_the_rows(
    empty_db_url: str,
) -> None:
    # Below 0013, an entry deleted from the end (by hand: the service deletes none):
    # its id is not handed out again after the rebuild.
    migrate.upgrade(empty_db_url, _below("0013"))
    engine = make_engine(empty_db_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            for target in ("job:1", "job:2"):
                record(
                    session=session, actor="server", action=AuditAction.JOB_SUBMITTED, target=target
                )
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_events WHERE target = 'job:2'"))
        migrate.upgrade(empty_db_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_events"))
        with transaction(make_sessionmaker(engine)) as session:
            record(
                session=session,
                actor=LONGEST,
                action=AuditAction.JOB_SUBMITTED,
                target="job:1",
                via=VIA,
            )
            record(
                session=session, actor="server", action=AuditAction.JOB_SUBMITTED, target="job:2"
            )
        longest = f"{VIA} for admin:{'n' * 100}"
        assert len(longest) == 136
        before = _actors(engine)
        assert [a for _, a in before] == [longest, "server"]
        assert [i for i, _ in before] == [3, 4], "ids 1 and 2 were handed out before"

        migrate.downgrade(empty_db_url, _below("0013"))
        assert _actors(engine) == [(before[0][0], longest[:120]), before[1]]
        migrate.upgrade(empty_db_url)
        assert _actors(engine) == [(before[0][0], longest[:120]), before[1]]
        assert diffs(empty_db_url, Base.metadata) == []
        if engine.dialect.name == "sqlite":  # rebuilt, still never reusing ids
            assert "audit_events" in sqlite_autoincrement_tables(empty_db_url)
    finally:
        engine.dispose()
