"""Deleting a finished job of --records metric records, on a scratch SQLite file and
a scratch PostgreSQL database: the route's steps (the check, the metric records in
batches of job_removal.METRIC_BATCH each in its own transaction, then the rows)
against one transaction whose cascade deletes them all, on a second job of the same
size beside it. Prints the total and the longest transaction — on SQLite, how long
every other writer waits for the database's one write lock.

    .venv/bin/python benchmarks/job_delete.py [--records 200000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, insert, text
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import make_engine, make_sessionmaker, read_transaction, transaction
from service.store.job_removal import METRIC_BATCH, check_job, delete_jobs, delete_metric_batch
from service.store.migrate import upgrade
from service.store.models import Job, Metric, table_of

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SCRATCH = "lagtrain_job_delete_bench"


def finished_job(sessions: sessionmaker[Session], owner_id: int, records: int) -> int:
    """A succeeded job with `records` metric records (inserted directly, 10 000 a
    statement: the benchmark measures the delete, not the append)."""
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        job_id: int = session.execute(
            insert(Job)
            .values(
                owner_id=owner_id,
                status="succeeded",
                spec={},
                priority=0,
                cpus_required=1.0,
                gpus_required=0.0,
                attempt=1,
                max_attempts=1,
                progress_round=records,
                progress_rounds=records,
                last_seq=records,
                created_at=now,
            )
            .returning(Job.id)
        ).scalar_one()
        for start in range(1, records + 1, 10_000):
            rows = [
                {
                    "job_id": job_id,
                    "seq": seq,
                    "attempt": 1,
                    "round": seq - 1,
                    "time": now,
                    "values": {"train_loss": 0.1, "uploads": 3},
                    "uploaded": [0],
                }
                for seq in range(start, min(start + 10_000, records + 1))
            ]
            session.execute(insert(table_of(Metric)), rows)
    return job_id


def measure(url: str, label: str, records: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        owner_id: int = session.execute(
            text(
                "INSERT INTO users (name, role, share_weight, created_at) "
                "VALUES ('bench', 'user', 1.0, CURRENT_TIMESTAMP) RETURNING id"
            )
        ).scalar_one()
    batched, whole = (finished_job(sessions, owner_id, records) for _ in range(2))

    started = time.perf_counter()
    longest = 0.0
    with read_transaction(sessions) as session:
        removal = check_job(session=session, job=session.get_one(Job, batched))
    while True:
        began = time.perf_counter()
        with transaction(sessions) as session:
            gone = delete_metric_batch(session=session, job_ids=removal.job_ids, limit=METRIC_BATCH)
        longest = max(longest, time.perf_counter() - began)
        if gone < METRIC_BATCH:
            break
    began = time.perf_counter()
    with transaction(sessions) as session:
        delete_jobs(session=session, job_ids=removal.job_ids)
    longest = max(longest, time.perf_counter() - began)
    total = time.perf_counter() - started

    began = time.perf_counter()
    with transaction(sessions) as session:
        delete_jobs(session=session, job_ids=[whole])
    one = time.perf_counter() - began
    print(
        f"{label:10} batches of {METRIC_BATCH}: {total:.3f} s in all, longest transaction "
        f"{longest * 1000:.0f} ms; one transaction (the cascade): {one:.3f} s"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--postgres", default=ADMIN_URL, help="a server to make a scratch DB on")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {args.records} metric records a job")
    with tempfile.TemporaryDirectory() as folder:
        measure(f"sqlite:///{folder}/bench.db", "SQLite", args.records)
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {SCRATCH}"))
        conn.execute(text(f"CREATE DATABASE {SCRATCH}"))
    try:
        scratch = args.postgres.rsplit("/", 1)[0] + f"/{SCRATCH}"
        measure(scratch, "PostgreSQL", args.records)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {SCRATCH}"))
        admin.dispose()
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
