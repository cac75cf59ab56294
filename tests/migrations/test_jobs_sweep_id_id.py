"""Migration 0016: jobs (sweep_id, id) in place of jobs (sweep_id). Up, down and up
again keep the rows, each way leaves exactly one of the two indexes, and at head the
schema is the models' (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from service.store import migrate
from service.store.db import make_engine
from service.store.models import Base
from tests.migrations.test_migrations import _below, diffs
from tests.migrations.test_migrations import pytestmark as migration_marks

pytestmark = migration_marks

OLD, NEW = "ix_jobs_sweep_id", "ix_jobs_sweep_id_id"


def _ours(engine: sa.Engine) -> dict[str, list[str]]:
    """The two indexes' names and columns, of those the table has."""
    found = sa.inspect(engine).get_indexes("jobs")
    return {
        str(i["name"]): [str(c) for c in i["column_names"]]
        for i in found
        if i["name"] in (OLD, NEW)
    }


def _rows(engine: sa.Engine) -> list[tuple[int, int | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, sweep_id FROM jobs ORDER BY id"))
        return [(int(i), None if s is None else int(s)) for i, s in rows]


def test_round_trip_swaps_the_index_and_keeps_the_rows(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, _below("0016"))
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
                    "INSERT INTO sweeps (owner_id, status, spec, best, created_at) "
                    "SELECT id, 'running', '{}', '[]', CURRENT_TIMESTAMP FROM users"
                )
            )
            for sweep in ("(SELECT min(id) FROM sweeps)", "NULL"):
                conn.execute(
                    sa.text(
                        "INSERT INTO jobs (owner_id, status, spec, priority, cpus_required, "
                        "gpus_required, attempt, max_attempts, progress_round, "
                        f"progress_rounds, last_seq, sweep_id, created_at) SELECT id, "
                        f"'succeeded', '{{}}', 0, 2, 0, 1, 3, 10, 10, 10, {sweep}, "
                        "CURRENT_TIMESTAMP FROM users"
                    )
                )
        before = _rows(engine)
        assert len(before) == 2 and before[0][1] is not None
        assert _ours(engine) == {OLD: ["sweep_id"]}
        migrate.upgrade(empty_db_url)
        assert _ours(engine) == {NEW: ["sweep_id", "id"]}
        migrate.downgrade(empty_db_url, _below("0016"))
        assert _ours(engine) == {OLD: ["sweep_id"]}
        migrate.upgrade(empty_db_url)
        assert _ours(engine) == {NEW: ["sweep_id", "id"]}
        assert _rows(engine) == before
        assert diffs(empty_db_url, Base.metadata) == []
    finally:
        engine.dispose()
