"""A user's stored bytes (uploads plus their jobs' checkpoints), as the submit's
standing and the users' usage read them (service.store.stored_bytes), on SQLite and
PostgreSQL; and, on a PostgreSQL store with enough checkpoints to tempt it,
ANALYZEd, the plan reads one owner's checkpoints by the index, never by a scan of
the whole table (the join it replaced was planned as one: ≈ 300 ms a submit at a
year's million checkpoints)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete, insert, text
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.quota import QuotaDefaults
from service.store.db import make_engine, read_transaction, transaction
from service.store.migrate import upgrade
from service.store.models import Checkpoint, Dataset, table_of, utcnow
from service.store.quotas import _SUBMIT_STANDING_PG, _standing, usage
from tests.conftest import create_postgres_database, drop_postgres_database, on_one_database
from tests.store.conftest import MakeUser, Submit


def _checkpoints(session: Session, job_id: int, sizes: list[int]) -> None:
    session.execute(
        insert(table_of(Checkpoint)),
        [
            {
                "job_id": job_id,
                "attempt": 1,
                "round": r,
                "seq": r,
                "uri": f"file:///c/{job_id}-{r}",
                "sha256": "0" * 64,
                "bytes": n,
                "created_at": utcnow(),
            }
            for r, n in enumerate(sizes)
        ],
    )


def _upload(session: Session, owner_id: int, n: int) -> None:
    session.execute(
        insert(table_of(Dataset)).values(
            owner_id=owner_id,
            filename="d.txt",
            format="text",
            bytes=n,
            sha256="0" * 64,
            uri="file:///d",
            created_at=utcnow(),
        )
    )


def _stored(factory: sessionmaker[Session], users: list[int]) -> list[tuple[int, int]]:
    """(standing's bytes, usage's bytes) of each user: the two readers of the rule."""
    with read_transaction(factory) as session:
        whole = usage(session=session, user_ids=users)
        return [
            (
                _standing(session, uid, QuotaDefaults(), owner_locked=True).storage_bytes,
                whole[uid].storage_bytes,
            )
            for uid in users
        ]


def test_uploads_and_every_checkpoint_of_the_owners_jobs_count(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann, bob, cid = make_user("ann"), make_user("bob"), make_user("cid")
    a1, a2, a3, b1 = submit(ann), submit(ann), submit(ann), submit(bob)
    with transaction(session_factory) as session:
        _checkpoints(session, a1, [100, 200, 300])
        _checkpoints(session, a2, [4_000])  # a3: none yet
        _checkpoints(session, b1, [50_000, 60_000])
        _upload(session, ann, 7)
        _upload(session, cid, 8)
        _upload(session, cid, 9)
    assert a3
    assert _stored(session_factory, [ann, bob, cid]) == [
        (4_607, 4_607),
        (110_000, 110_000),
        (17, 17),
    ]
    with transaction(session_factory) as session:  # a pruned checkpoint frees its bytes
        session.execute(delete(Checkpoint).where(Checkpoint.job_id == b1, Checkpoint.round == 0))
    assert _stored(session_factory, [bob, make_user("dee")]) == [(60_000, 60_000), (0, 0)]


@pytest.fixture
def filled_postgres() -> Iterator[Engine]:
    """A private database of 20,000 jobs of 40 users, 5 checkpoints each, ANALYZEd."""
    url = create_postgres_database()
    engine = make_engine(url)
    try:
        upgrade(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (name, role, share_weight, created_at) "
                    "SELECT 'u' || i, 'user', 1.0, now() FROM generate_series(1, 40) i"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO jobs (owner_id, status, spec, priority, cpus_required, "
                    "gpus_required, attempt, max_attempts, progress_round, progress_rounds, "
                    "last_seq, created_at) SELECT 1 + i % 40, 'succeeded', '{}', 0, 2, 0, 1, "
                    "3, 10, 10, 10, now() FROM generate_series(1, 20000) i"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO checkpoints (job_id, attempt, round, seq, uri, sha256, "
                    "bytes, created_at) SELECT j.id, 1, r, r, 'file:///c', '', 1000, now() "
                    "FROM jobs j CROSS JOIN generate_series(1, 5) r"
                )
            )
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        yield engine
    finally:
        engine.dispose()
        drop_postgres_database(url)


@on_one_database("postgresql")
def test_one_owners_checkpoints_are_read_by_the_index(filled_postgres: Engine) -> None:
    compiled = _SUBMIT_STANDING_PG.compile(filled_postgres)
    with filled_postgres.connect() as conn:
        user_id = conn.scalar(text("SELECT min(id) FROM users"))
        params = {**compiled.params, "user_id": user_id}
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + str(compiled), params))
        standing = conn.execute(_SUBMIT_STANDING_PG, {"user_id": user_id}).one()
    assert "Seq Scan on checkpoints" not in plan, plan
    assert "ix_checkpoints_job_id_bytes" in plan, plan
    assert standing.checkpoints == 500 * 5 * 1000
