"""A user's stored bytes (uploads plus their jobs' checkpoints), as the submit's
standing and the users' usage read them (service.store.stored_bytes), on SQLite and
PostgreSQL; and, on a PostgreSQL store with enough checkpoints to tempt it,
ANALYZEd, the plan reads one owner's checkpoints by the index, never by a scan of
the whole table (the join it replaced was planned as one: ≈ 300 ms a submit at a
year's million checkpoints)."""

from __future__ import annotations

from sqlalchemy import delete, insert, text
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.quota import QuotaDefaults
from service.store.db import read_transaction, transaction
from service.store.models import Checkpoint, Dataset, table_of, utcnow
from service.store.quotas import _SUBMIT_STANDING_PG, _standing, usage
from tests.conftest import on_one_database
from tests.store.conftest import MakeUser, Submit
from tests.store.filled_postgres import (
    CHECKPOINT_BYTES,
    CHECKPOINTS_PER_JOB,
    JOBS,
    USERS,
    filled_postgres,
    plan,
)


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


@on_one_database("postgresql")
def test_one_owners_checkpoints_are_read_by_the_index() -> None:
    with filled_postgres() as engine:
        compiled = _SUBMIT_STANDING_PG.compile(engine)
        with engine.connect() as conn:
            user_id = conn.scalar(text("SELECT min(id) FROM users"))
            standing = conn.execute(_SUBMIT_STANDING_PG, {"user_id": user_id}).one()
        found = plan(engine, str(compiled), {**compiled.params, "user_id": user_id})
    assert "Seq Scan on checkpoints" not in found, found
    assert "ix_checkpoints_job_id_bytes" in found, found
    assert standing.checkpoints == JOBS // USERS * CHECKPOINTS_PER_JOB * CHECKPOINT_BYTES
