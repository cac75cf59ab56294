"""A private PostgreSQL database with a long history, built set-based in seconds,
for tests of query plans (which only show their choices at such sizes): 40 users,
20,000 succeeded jobs (every 40th one user's), 5 checkpoints each, ANALYZEd."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from service.store.db import make_engine
from service.store.migrate import upgrade
from tests.conftest import create_postgres_database, drop_postgres_database

USERS, JOBS, CHECKPOINTS_PER_JOB, CHECKPOINT_BYTES = 40, 20_000, 5, 1000


@contextmanager
def filled_postgres() -> Iterator[Engine]:
    url = create_postgres_database()
    engine = make_engine(url)
    try:
        upgrade(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (name, role, share_weight, created_at) "
                    "SELECT 'u' || i, 'user', 1.0, now() FROM generate_series(1, :n) i"
                ),
                {"n": USERS},
            )
            conn.execute(
                text(
                    "INSERT INTO jobs (owner_id, status, spec, priority, cpus_required, "
                    "gpus_required, attempt, max_attempts, progress_round, progress_rounds, "
                    "last_seq, created_at) SELECT u.id, 'succeeded', '{}', 0, 2, 0, 1, 3, 10, "
                    "10, 10, now() FROM generate_series(1, :n) i "
                    "JOIN users u ON u.name = 'u' || (1 + i % :users)"
                ),
                {"n": JOBS, "users": USERS},
            )
            conn.execute(
                text(
                    "INSERT INTO checkpoints (job_id, attempt, round, seq, uri, sha256, "
                    "bytes, created_at) SELECT j.id, 1, r, r, 'file:///c', '', :b, now() "
                    "FROM jobs j CROSS JOIN generate_series(1, :k) r"
                ),
                {"k": CHECKPOINTS_PER_JOB, "b": CHECKPOINT_BYTES},
            )
        analyse(engine)
        yield engine
    finally:
        engine.dispose()
        drop_postgres_database(url)


def analyse(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")


def plan(engine: Engine, statement: str, params: dict[str, object]) -> str:
    """EXPLAIN's lines of a driver-level statement (as compiled for psycopg)."""
    with engine.connect() as conn:
        return "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, params))
