"""Migration 0011: dispatchers.stopped_at. Down and up again with dispatchers present
keeps the rows; the stopped_at recorded goes with the column (a downgrade loses it)
and comes back NULL, i.e. "running, judged by last_seen_at", as before 0011."""

from __future__ import annotations

import sqlalchemy as sa

from service.store import migrate
from service.store.db import make_engine
from service.store.models import Base, utcnow
from tests.migrations.test_migrations import _below, diffs
from tests.migrations.test_migrations import pytestmark as migration_marks

# The comparison with the models warns about SQLite's expression index (see there).
pytestmark = migration_marks


def _columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {str(c["name"]) for c in sa.inspect(engine).get_columns("dispatchers")}
    finally:
        engine.dispose()


def test_stopped_at_round_trip_keeps_the_dispatchers(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    assert "stopped_at" in _columns(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            for dispatcher_id, stopped in (("running", None), ("stopped", utcnow())):
                conn.execute(
                    sa.text(
                        "INSERT INTO dispatchers (id, hostname, started_at, last_seen_at,"
                        " stopped_at, resources) VALUES (:i, 'h', :t, :t, :s, '{}')"
                    ),
                    {"i": dispatcher_id, "t": utcnow(), "s": stopped},
                )

        migrate.downgrade(empty_db_url, _below("0011"))
        assert "stopped_at" not in _columns(empty_db_url)
        with engine.connect() as conn:
            ids = conn.execute(sa.text("SELECT id FROM dispatchers ORDER BY id")).scalars()
            assert list(ids) == ["running", "stopped"]

        migrate.upgrade(empty_db_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, stopped_at FROM dispatchers ORDER BY id"))
            assert [tuple(r) for r in rows] == [("running", None), ("stopped", None)]
        assert diffs(empty_db_url, Base.metadata) == []
    finally:
        engine.dispose()
