"""What a claim costs with fair share counting recent runs (queue_order): a store of
20,000 finished jobs (40 users over 30 days, one attempt each) and 199 queued, the
median of 30 claims rolled back, for fair-share windows of 0 (running jobs only, as
before 2026-12-05), one hour (the default) and seven days; the ratio to the zero
window is printed beside each. Last, the default window's claim as a dispatcher
makes it, with 8 free nodes (the savepoint and the per-node test), against without;
then, every queued job back-dated an hour, the claim holding room after 10 minutes
against the same claim without a hold.
SQLite in a temporary file unless --url names a database (an empty PostgreSQL
database: it is filled); --analyze gathers statistics first (PostgreSQL's
autovacuum does; the service never analyses SQLite).

    python -m benchmarks.claim_cost [--url postgresql+psycopg://...] [--analyze]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.node_fit import ClusterRoom, NodeShape
from service.schemas.resolve import resolve
from service.store import claim
from service.store.attempts import claim_next
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.jobs import enqueue
from service.store.migrate import upgrade
from service.store.models import Job, JobAttempt, User, table_of, utcnow

FINISHED, QUEUED, USERS, CLAIMS = 20_000, 199, 40, 30


def fill(factory: sessionmaker[Session]) -> None:
    now = utcnow()
    spec = resolve({"task": {"kind": "adding"}, "schedule": {"rounds": 10}})
    with transaction(factory) as session:
        users = [
            {"name": f"u{i}", "role": "user", "share_weight": 1.0, "created_at": now}
            for i in range(USERS)
        ]
        session.execute(insert(table_of(User)), users)
        owners = list(session.scalars(select(User.id)))
        job, _ = enqueue(session=session, owner_id=owners[0], spec=spec)
        same = {
            "spec": job.spec,
            "priority": 0,
            "cpus_required": job.cpus_required,
            "gpus_required": job.gpus_required,
            "max_attempts": job.max_attempts,
            "progress_rounds": job.progress_rounds,
            "status": "succeeded",
            "attempt": 1,
        }
        rows = []
        for i in range(FINISHED):
            started = now - timedelta(minutes=2 * i)  # 30 days back, one every 2 min
            finished = started + timedelta(minutes=1)
            rows.append(
                {
                    **same,
                    "owner_id": owners[i % USERS],
                    "created_at": started,
                    "started_at": started,
                    "finished_at": finished,
                }
            )
        jobs = table_of(Job)
        ids = session.execute(insert(jobs).returning(jobs.c.id), rows).scalars().all()
        session.execute(
            insert(table_of(JobAttempt)),
            [
                {
                    "job_id": job_id,
                    "number": 1,
                    "fencing_token": f"t{job_id}",
                    "dispatcher_id": "d",
                    "lease_expires_at": row["finished_at"],
                    "started_at": row["started_at"],
                    "ended_at": row["finished_at"],
                    "outcome": "succeeded",
                }
                for job_id, row in zip(ids, rows, strict=True)
            ],
        )
        for i in range(QUEUED - 1):
            enqueue(session=session, owner_id=owners[i % USERS], spec=spec)


def claim_ms(
    factory: sessionmaker[Session],
    window: timedelta,
    free_nodes: tuple[NodeShape, ...] | None = None,
    hold: timedelta | None = None,
) -> list[float]:
    times = []
    for _ in range(CLAIMS):
        with factory() as session:
            started = time.perf_counter()
            claimed = claim_next(
                session=session,
                dispatcher_id="d",
                lease_seconds=60,
                free_cpus=99,
                free_gpus=0,
                fair_share_window=window,
                free_nodes=free_nodes,
                hold_room_after=hold,
                room=None if hold is None else ClusterRoom(99, 0),
            )
            times.append((time.perf_counter() - started) * 1e3)
            assert claimed is not None
            session.rollback()
    return times


def analyse(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--analyze", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'claims.db'}"
        upgrade(url)
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        fill(factory)
        if args.analyze:
            analyse(engine)
        print(f"load average {os.getloadavg()[0]:.2f}; {engine.dialect.name}", flush=True)
        base = None
        for window in (timedelta(0), timedelta(hours=1), timedelta(days=7)):
            times = sorted(claim_ms(factory, window))
            median = statistics.median(times)
            base = base or median
            print(
                f"window {window}: claim median {median:.2f} ms "
                f"(spread {times[0]:.2f}-{times[-1]:.2f}; x{median / base:.2f} the zero window)"
            )
        # A dispatcher's claim also tests the picked job against each node's free
        # resources, inside a savepoint (service.store.claim): its cost beside the
        # same window's claim without nodes.
        nodes = (NodeShape(16, 0, 64 * 2**30),) * 8
        hour = timedelta(hours=1)
        plain, noded = (statistics.median(claim_ms(factory, hour, n)) for n in (None, nodes))
        print(
            f"window {hour} with 8 free nodes: claim median {noded:.2f} ms "
            f"(x{noded / plain:.2f} the same claim without nodes, {plain:.2f} ms)"
        )
        # A dispatcher's claim holds room (service.store.claim_candidate): with every
        # queued job waiting an hour, each is a candidate to hold (its last attempt
        # looked up), the most the hold's query reads; against no hold.
        with transaction(factory) as session:
            queued = update(Job).where(Job.status == "queued")
            session.execute(queued.values(created_at=utcnow() - timedelta(hours=1)))
        minutes = timedelta(minutes=10)
        free, held = (statistics.median(claim_ms(factory, hour, hold=h)) for h in (None, minutes))
        print(
            f"window {hour}, every queued job waiting an hour, a hold after 10 min: claim "
            f"median {held:.2f} ms (x{held / free:.2f} the same claim with no hold, {free:.2f} ms)"
        )
        if engine.dialect.name == "postgresql":
            deep_queue(factory, engine, args.analyze)
        engine.dispose()


def deep_queue(factory: sessionmaker[Session], engine: Engine, analyze: bool) -> None:
    """PostgreSQL, 1,800 more queued (2,000 in all, every one waiting an hour): the
    claim as it is (hash joins: `enable_nestloop` off in its transaction) against the
    same claim letting the planner loop, alternating in one process."""
    spec = resolve({"task": {"kind": "adding"}, "schedule": {"rounds": 10}})
    with transaction(factory) as session:
        owners = list(session.scalars(select(User.id).order_by(User.id)))
        for i in range(1_800):
            enqueue(session=session, owner_id=owners[i % len(owners)], spec=spec)
        session.execute(
            update(Job)
            .where(Job.status == "queued")
            .values(created_at=utcnow() - timedelta(hours=1))
        )
    if analyze:
        analyse(engine)
    as_is = claim._CLAIM_LOCK
    looping = as_is.replace("SET LOCAL enable_nestloop = off; ", "")
    assert looping != as_is
    times: dict[str, list[float]] = {"hash joins": [], "loops allowed": []}
    hour, minutes = timedelta(hours=1), timedelta(minutes=10)
    for _ in range(5):
        for name, lock in (("hash joins", as_is), ("loops allowed", looping)):
            claim._CLAIM_LOCK = lock
            times[name] += claim_ms(factory, hour, hold=minutes)
    claim._CLAIM_LOCK = as_is
    medians = {name: statistics.median(ms) for name, ms in times.items()}
    print(
        f"2,000 queued, a hold after 10 min: claim median {medians['hash joins']:.2f} ms "
        f"(x{medians['hash joins'] / medians['loops allowed']:.2f} the same claim with "
        f"nested loops allowed, {medians['loops allowed']:.2f} ms)"
    )


if __name__ == "__main__":
    main()
