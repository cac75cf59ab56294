"""Migration 0014: jobs.replica_cpus and replica_gpus, filled from each job's spec.
Jobs written at head lose the columns on a downgrade (their rows and ids kept, and
SQLite's AUTOINCREMENT sequence untouched) and get them back from their specs on the
upgrade: the backfill is what gives jobs queued before 0014 their per-node fit."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from service.schemas.resolve import resolve
from service.store import migrate
from service.store.db import make_engine, transaction
from service.store.jobs import enqueue
from service.store.models import Base, Job
from service.store.users import create_user
from tests.migrations.test_migrations import _below, diffs
from tests.migrations.test_migrations import pytestmark as migration_marks

pytestmark = migration_marks

_SPECS = [
    {"task": {"kind": "adding"}, "distributed": {"workers": 2, "gpus_per_worker": 2}},
    {"task": {"kind": "adding"}, "distributed": {"workers": 3, "cpus_per_worker": 0.5}},
]


def _replicas(engine: sa.Engine) -> list[tuple[int, float | None, float | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, replica_cpus, replica_gpus FROM jobs ORDER BY id"))
        return [(int(i), c, g) for i, c, g in rows]


def _columns(engine: sa.Engine) -> set[str]:
    return {str(c["name"]) for c in sa.inspect(engine).get_columns("jobs")}


def test_the_backfill_reads_each_jobs_spec_and_a_downgrade_keeps_the_jobs(
    empty_db_url: str,
) -> None:
    migrate.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        with transaction(sessionmaker(engine)) as session:
            user, _, _ = create_user(session=session, name="ann", role="user")
            owner = user.id
            specs = [*_SPECS, _SPECS[1], _SPECS[1], _SPECS[0]]
            ids = [enqueue(session=session, owner_id=owner, spec=resolve(s))[0].id for s in specs]
            gpu, cpu, done, stripped, newest = ids
            # A finished job; a spec stored without gpus_per_worker (an old release's).
            session.execute(update(Job).where(Job.id == done).values(status="succeeded"))
            job = session.get(Job, stripped)
            assert job is not None
            job.spec = {**job.spec, "distributed": {**job.spec["distributed"]}}
            del job.spec["distributed"]["gpus_per_worker"]
        written = _replicas(engine)
        assert written[:2] == [(gpu, 1.0, 2.0), (cpu, 0.5, 0.0)]  # 1 CPU by a GPU
        with engine.begin() as conn:  # the newest id gone: it must not come back
            conn.execute(sa.text("DELETE FROM jobs WHERE id = :id"), {"id": newest})

        migrate.downgrade(empty_db_url, _below("0014"))
        assert not {"replica_cpus", "replica_gpus"} & _columns(engine)
        with engine.connect() as conn:
            kept = conn.execute(sa.text("SELECT id FROM jobs ORDER BY id")).scalars()
            assert list(kept) == ids[:-1]

        migrate.upgrade(empty_db_url)
        assert _replicas(engine) == [
            (gpu, 1.0, 2.0),
            (cpu, 0.5, 0.0),
            (done, None, None),  # finished: nothing reads its bundle
            (stripped, 0.5, None),  # a field its spec lacks: unknown
        ]
        assert diffs(empty_db_url, Base.metadata) == []
        # AUTOINCREMENT (SQLite) or the sequence (PostgreSQL): the next id is new.
        with transaction(sessionmaker(engine)) as session:
            again = enqueue(session=session, owner_id=owner, spec=resolve(_SPECS[0]))[0].id
        assert again > newest
    finally:
        engine.dispose()
