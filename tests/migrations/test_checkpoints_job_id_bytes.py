"""Migration 0015: checkpoints (job_id, bytes) in place of checkpoints (job_id). Up,
down and up again keep the rows, each way leaves exactly one of the two indexes, and
at head the schema is the models' (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from service.store import migrate
from service.store.db import make_engine
from service.store.models import Base
from tests.migrations.test_migrations import _below, diffs
from tests.migrations.test_migrations import pytestmark as migration_marks

pytestmark = migration_marks

OLD, NEW = "ix_checkpoints_job_id", "ix_checkpoints_job_id_bytes"


def _ours(engine: sa.Engine) -> dict[str, list[str]]:
    """The two indexes' names and columns, of those the table has."""
    found = sa.inspect(engine).get_indexes("checkpoints")
    return {
        str(i["name"]): [str(c) for c in i["column_names"]]
        for i in found
        if i["name"] in (OLD, NEW)
    }


def _rows(engine: sa.Engine) -> list[tuple[int, int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT job_id, round, bytes FROM checkpoints ORDER BY id"))
        return [(int(j), int(r), int(b)) for j, r, b in rows]


def test_round_trip_swaps_the_index_and_keeps_the_rows(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, _below("0015"))
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO users (name, role, share_weight, created_at) "
                    "VALUES ('ann', 'user', 1.0, CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO jobs (owner_id, status, spec, priority, cpus_required, "
                    "gpus_required, attempt, max_attempts, progress_round, progress_rounds, "
                    "last_seq, created_at) SELECT id, 'succeeded', '{}', 0, 2, 0, 1, 3, 10, "
                    "10, 10, CURRENT_TIMESTAMP FROM users"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO checkpoints (job_id, attempt, round, seq, uri, sha256, bytes, "
                    "created_at) SELECT id, 1, 9, 9, 'file:///c', '', 12345, CURRENT_TIMESTAMP "
                    "FROM jobs"
                )
            )
        before = _rows(engine)
        assert len(before) == 1
        assert _ours(engine) == {OLD: ["job_id"]}
        migrate.upgrade(empty_db_url)
        assert _ours(engine) == {NEW: ["job_id", "bytes"]}
        migrate.downgrade(empty_db_url, _below("0015"))
        assert _ours(engine) == {OLD: ["job_id"]}
        migrate.upgrade(empty_db_url)
        assert _ours(engine) == {NEW: ["job_id", "bytes"]}
        assert _rows(engine) == before
        assert diffs(empty_db_url, Base.metadata) == []
    finally:
        engine.dispose()
