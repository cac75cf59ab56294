"""What the queue's explanations cost (`GET /v1/cluster`'s queue head, and `GET
/v1/jobs/{id}/explain`), on claim_cost's store — 20,000 finished jobs of 40 users
and 199 queued — and again with 1,800 more queued (2,000 in all): the admin's view
(the first 50 in claim order), a user's view (their own 50, deep in the queue), and
one job's explain (the newest queued). Medians of 15 reads, each in its own read
transaction as the routes make them. Run it from a clone of an older commit too
(`cd /tmp/old && python -m benchmarks.explain_cost`) for the A/B.

    python -m benchmarks.explain_cost [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.claim_cost import fill
from service.schemas.quota import QuotaDefaults
from service.schemas.resolve import resolve
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.explain import explain_job, explain_queue_head
from service.store.jobs import enqueue
from service.store.migrate import upgrade
from service.store.models import Job, User

READS, MORE_QUEUED, HEAD = 15, 1_800, 50


class _Settings(TypedDict):  # the routes' settings at their defaults
    dispatcher_timeout: timedelta
    quota_defaults: QuotaDefaults
    fair_share_window: timedelta
    hold_room_after: timedelta


SETTINGS = _Settings(
    dispatcher_timeout=timedelta(seconds=30),
    quota_defaults=QuotaDefaults(),
    fair_share_window=timedelta(hours=1),
    hold_room_after=timedelta(minutes=10),
)


def median_ms(factory: sessionmaker[Session], read: Callable[[Session], object]) -> str:
    times = []
    for _ in range(READS):
        with factory() as session:
            started = time.perf_counter()
            read(session)
            times.append((time.perf_counter() - started) * 1e3)
            session.rollback()
    times.sort()
    return f"{statistics.median(times):7.1f} ms (spread {times[0]:.1f}-{times[-1]:.1f})"


def measure(factory: sessionmaker[Session], user: int, queued: int) -> None:
    def admin_view(session: Session) -> object:
        return explain_queue_head(session=session, limit=HEAD, owner_id=None, **SETTINGS)

    def user_view(session: Session) -> object:
        return explain_queue_head(session=session, limit=HEAD, owner_id=user, **SETTINGS)

    def one_job(session: Session) -> object:
        newest = select(Job).where(Job.status == "queued").order_by(Job.id.desc()).limit(1)
        return explain_job(session=session, job=session.scalars(newest).one(), **SETTINGS)

    for name, read in (("admin's queue head", admin_view), ("a user's queue head", user_view)):
        print(f"{queued:5d} queued, {name:20s} {median_ms(factory, read)}", flush=True)
    print(f"{queued:5d} queued, {'one job explained':20s} {median_ms(factory, one_job)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'explain.db'}"
        upgrade(url)
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        fill(factory)
        with factory() as session:
            owners = list(session.scalars(select(User.id).order_by(User.id)))
        print(f"load average {os.getloadavg()[0]:.2f}; {engine.dialect.name}", flush=True)
        measure(factory, owners[3], 199)
        spec = resolve({"task": {"kind": "adding"}, "schedule": {"rounds": 10}})
        with transaction(factory) as session:
            for i in range(MORE_QUEUED):
                enqueue(session=session, owner_id=owners[i % len(owners)], spec=spec)
        measure(factory, owners[3], 199 + MORE_QUEUED)
        engine.dispose()


if __name__ == "__main__":
    main()
