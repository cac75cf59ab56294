"""What the live jobs feed (/v1/feeds/jobs) sends to an open Lab page: the newest 500
jobs (the Lab's page), old against new in one process. A store of --jobs jobs with
the examples' resolved specs, 5 users: --running running (a round each per change),
20 queued, the rest finished (succeeded, failed, cancelled 8:1:1), each finished one
with a summary shaped as workers.job_outcome writes it; then one more job submitted
(a change that moves the page).

"old": what the feed sent before, the page as GET /v1/jobs answers it, whole, at
connect and at every change. "new": service.api.feed_page — the page without the
specs at connect, then only the changed rows (and the ids when they move). Bytes are the
events' data (SSE framing adds ~20 bytes an event); deterministic. The time is the
server's, per change: the page read and its event built (read_page + encoding),
medians of --reads, old and new alternating.

    python -m benchmarks.feed_bytes [--jobs 600] [--running 10] [--reads 20] [--url …]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service import spec_yaml
from service.api.feed_page import FeedPage
from service.api.job_filters import JobFilters, page_query
from service.api.jobs import read_page
from service.schemas.common import Page
from service.schemas.jobs import JobOut
from service.schemas.jobspec import TaskKind
from service.schemas.metric_names import EVAL_METRICS, ROUND_METRICS
from service.schemas.resolve import resolve
from service.store.db import make_engine, make_sessionmaker, read_transaction, transaction
from service.store.jobs import enqueue
from service.store.migrate import upgrade
from service.store.models import Job
from service.store.users import Principal, create_user

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LIMIT, USERS, QUEUED = 500, 5, 20
ADMIN = Principal(user_id=1, name="u0", role="admin", token_id=0)


def _specs() -> list[Any]:
    loaded = [spec_yaml.load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))]
    return [resolve(v) for v in loaded if spec_yaml.spec_kind(v) == "job"]


def _summary(rng: random.Random, task: str, rounds: int) -> dict[str, Any]:
    """workers.job_outcome.summary's keys, with figures as a run leaves them."""
    # Counts are whole numbers (sent as 123.0); losses and rates are not.
    final = {name: float(rng.randrange(10**7)) for name in ROUND_METRICS}
    final |= {"train_loss": rng.random(), "samples_per_s": rng.uniform(1e3, 1e5)}
    final |= {name: rng.random() for name in EVAL_METRICS[cast(TaskKind, task)]}
    uploads, dense = rng.uniform(100, 5000), rng.uniform(5000, 10000)
    sent, dense_bytes = rng.uniform(1e5, 1e7), rng.uniform(1e7, 1e8)
    return {
        "rounds": rounds,
        "rounds_completed": rounds,
        "final_metrics": final,
        "uploads_total": uploads,
        "dense_equiv_uploads": dense,
        "uploads_saved_fraction": 1 - uploads / dense,
        "bytes_up_total": sent,
        "dense_equiv_bytes": dense_bytes,
        "bytes_saved_fraction": 1 - sent / dense_bytes,
        "attempt": 1,
        "attempt_wall_time_s": round(rng.uniform(10, 5000), 3),
    }


def fill(sessions: sessionmaker[Session], jobs: int, running: int) -> list[int]:
    """The store; the running jobs' ids."""
    rng = random.Random(7)
    specs = _specs()
    start = datetime(2026, 12, 1, tzinfo=UTC)
    with transaction(sessions) as session:
        owners = [
            create_user(session=session, name=f"u{i}", role="admin" if i == 0 else "user")[0].id
            for i in range(USERS)
        ]
        ids = []
        for i in range(jobs):
            spec = specs[i % len(specs)]
            job, _ = enqueue(
                session=session,
                owner_id=owners[i % USERS],
                spec=spec,
                name=f"{spec.task.kind}-{i}",
                now=start + timedelta(minutes=i),
            )
            ids.append(job.id)
        session.flush()
        finished = ids[: jobs - running - QUEUED]
        for n, job_id in enumerate(finished):
            job = session.get_one(Job, job_id)
            rounds = job.progress_rounds
            job.status = "succeeded" if n % 10 < 8 else ("failed", "cancelled")[n % 2]
            job.attempt, job.progress_round = 1, rounds
            job.started_at = job.created_at + timedelta(seconds=30)
            job.finished_at = job.started_at + timedelta(minutes=20)
            job.summary = _summary(rng, job.spec["task"]["kind"], rounds)
            if job.status == "failed":
                job.error = "worker 1 lost: the node died"
        live = ids[len(finished) : len(finished) + running]
        for job_id in live:
            job = session.get_one(Job, job_id)
            job.status, job.attempt, job.progress_round = "running", 1, 3
            job.started_at = job.created_at + timedelta(seconds=30)
    return live


def advance(sessions: sessionmaker[Session], ids: list[int]) -> None:
    """Each of these jobs one round further (what makes the feed send while jobs run)."""
    with transaction(sessions) as session:
        session.execute(
            update(Job).where(Job.id.in_(ids)).values(progress_round=Job.progress_round + 1)
        )


def submit(sessions: sessionmaker[Session]) -> None:
    """One more job: it heads the page and the oldest leaves it (the ids are sent)."""
    with transaction(sessions) as session:
        enqueue(session=session, owner_id=2, spec=_specs()[0], name="one-more")


def page(sessions: sessionmaker[Session]) -> Page[JobOut]:
    with read_transaction(sessions) as session:
        query = page_query(ADMIN, JobFilters(), limit=LIMIT, cursor=None)
        return read_page(session, query, LIMIT)


def new_event(feed: FeedPage, built: Page[JobOut]) -> str:
    event = feed.event(built)
    assert event is not None
    return event["data"]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--running", type=int, default=10)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--url", help="an empty database (default: a scratch SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = args.url or f"sqlite:///{scratch}/feed.db"
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        live = fill(sessions, args.jobs, args.running)
        print(f"{engine.dialect.name}; {args.jobs} jobs, {len(live)} running; page of {LIMIT}")
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)

        feed = FeedPage()
        steps: list[tuple[str, Callable[[], object]]] = [
            ("at connect", lambda: None),
            (f"a change: {len(live)} jobs a round further", lambda: advance(sessions, live)),
            ("a change: one job a round further", lambda: advance(sessions, live[:1])),
            ("a change: a new job (the page's ids too)", lambda: submit(sessions)),
        ]
        rows = []  # (what, old bytes, new bytes), each pair at the same state
        for what, change in steps:
            change()
            built = page(sessions)
            rows.append((what, len(built.model_dump_json()), len(new_event(feed, built))))
        for what, old, new in rows:
            print(f"{what:48s} old {old:9,d} B  new {new:9,d} B  x{new / old:.4f}")

        times: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.reads):  # each: a change, then the event it makes
            advance(sessions, live)
            times["old"] += timed(lambda: page(sessions).model_dump_json(), 1)
            advance(sessions, live)
            times["new"] += timed(lambda: new_event(feed, page(sessions)), 1)
        for variant, t in times.items():
            t.sort()
            print(f"per change, {variant}: {statistics.median(t):7.2f} ms ({t[0]:.2f}-{t[-1]:.2f})")
        print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
        engine.dispose()


if __name__ == "__main__":
    main()
