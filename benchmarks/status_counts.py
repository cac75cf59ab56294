"""What `/v1/cluster`'s and `/metrics`' job counts cost on PostgreSQL with a long
history, in one process, alternating: "old", one GROUP BY over every job (the
statement before service.store.job_counts; kept here only to compare); "new", as the
routes count now: the live statuses by the status index, the terminal ones from the
process's TerminalCounts (warm: read at most once per 15 s); and "refresh", a call
that finds the terminal counts stale and counts them too (once per 15 s per API
process).

A scratch database is created, filled set-based (INSERT … SELECT generate_series),
VACUUM ANALYZEd, and dropped: --jobs jobs, --queued of them queued, 100 running and
10 cancelling, the rest succeeded, failed and cancelled (80:15:5). Medians of --reads
calls, each in its own transaction, with the spread.

    python -m benchmarks.status_counts [--jobs 200000] [--queued 2000] [--reads 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from benchmarks.storage_standing import scratch_database
from service.store.db import make_engine
from service.store.job_counts import TerminalCounts, status_counts
from service.store.migrate import upgrade
from service.store.models import Job, JobStatus


def old_status_counts(*, session: Session) -> dict[str, int]:
    """status_counts as it was (service/store/jobs.py before job_counts)."""
    rows = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    return {s.value: rows.get(s.value, 0) for s in JobStatus}


def fill(engine: Engine, jobs: int, queued: int) -> None:
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
                "last_seq, created_at) SELECT 1 + i % 40, CASE "
                "WHEN i > :n - :queued THEN 'queued' "
                "WHEN i > :n - :queued - 100 THEN 'running' "
                "WHEN i > :n - :queued - 110 THEN 'cancelling' "
                "WHEN i % 20 < 16 THEN 'succeeded' WHEN i % 20 < 19 THEN 'failed' "
                "ELSE 'cancelled' END, "
                "'{}', 0, 2, 0, 1, 3, 10, 10, 10, now() - make_interval(secs => :n - i) "
                "FROM generate_series(1, :n) i"
            ),
            {"n": jobs, "queued": queued},
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def timed(engine: Engine, count: Callable[[Session], dict[str, int]], reads: int) -> list[float]:
    times = []
    for _ in range(reads):
        with Session(engine) as session:
            started = time.perf_counter()
            count(session)
            times.append((time.perf_counter() - started) * 1e3)
            session.rollback()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--queued", type=int, default=2_000)
    parser.add_argument("--reads", type=int, default=60)
    args = parser.parse_args()
    with scratch_database() as url:
        upgrade(url)
        engine = make_engine(url)
        started = time.perf_counter()
        fill(engine, args.jobs, args.queued)
        print(f"filled {args.jobs:,} jobs in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f}; {engine.dialect.name}", flush=True)
        warm = TerminalCounts(refresh_seconds=3600)  # as between two refreshes
        variants: dict[str, Callable[[Session], dict[str, int]]] = {
            "old": lambda s: old_status_counts(session=s),
            "new": lambda s: status_counts(session=s, terminal=warm),
            "refresh": lambda s: status_counts(session=s, terminal=TerminalCounts()),
        }
        with Session(engine) as session:
            answers = {name: count(session) for name, count in variants.items()}
        assert answers["old"] == answers["new"] == answers["refresh"], answers
        print(answers["old"])
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(3):  # thirds, alternating, so that drift hits all alike
            for name, count in variants.items():
                times[name] += timed(engine, count, max(1, args.reads // 3))
        base = statistics.median(times["old"])
        for name, measured in times.items():
            measured.sort()
            median = statistics.median(measured)
            print(
                f"{name:8s} {median:7.2f} ms (spread {measured[0]:.2f}-{measured[-1]:.2f}) "
                f"x{median / base:.3f}",
                flush=True,
            )
        print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
        engine.dispose()


if __name__ == "__main__":
    main()
