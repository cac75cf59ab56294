"""What `GET /v1/jobs?sweep_id=N` (service.store.jobs.list_jobs, 50 a page, newest
first) costs on PostgreSQL at a year's scale, in one process: "old", the schema as
it is (jobs indexed by sweep_id alone); "new", with a candidate index on (sweep_id,
id) in its place (created and dropped here: not in the schema, it did not help). The
index is switched three times, a third of the reads each time. Two sweeps of
--trials trial jobs among --finished (benchmarks.year_store): a long one, its
trials spread over the year, and an old one, its trials among the year's first
weeks; each listed by an admin (first page, and a page half way down) and by its
owner.

A scratch database is created, filled set-based, VACUUM ANALYZEd, and dropped.
Medians of --reads reads with the spread; the plans' index at each schema, printed.

    python -m benchmarks.sweep_listing_cost [--finished 200000] [--trials 5000] [--reads 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from benchmarks.storage_standing import scratch_database
from benchmarks.year_store import fill
from service.store.db import make_engine
from service.store.jobs import JobsQuery, list_jobs
from service.store.migrate import upgrade
from service.store.models import Job
from service.store.users import Principal

ADMIN = Principal(user_id=10_000, name="admin", role="admin", token_id=0)


def with_candidate(engine: Engine, candidate: bool) -> None:
    """(sweep_id, id) in place of (sweep_id), or back; the table analysed."""
    swap = (
        ("ix_jobs_sweep_id_id", "(sweep_id, id)", "ix_jobs_sweep_id")
        if candidate
        else ("ix_jobs_sweep_id", "(sweep_id)", "ix_jobs_sweep_id_id")
    )
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {swap[0]} ON jobs {swap[1]}")
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {swap[2]}")
        conn.exec_driver_sql("ANALYZE jobs")


def cases(engine: Engine, sweeps: dict[str, int]) -> dict[str, JobsQuery]:
    """Each listing's filters, by name."""
    out: dict[str, JobsQuery] = {}
    for name, sweep_id in sweeps.items():
        with Session(engine) as session:
            ids = list(session.scalars(select(Job.id).where(Job.sweep_id == sweep_id)))
            owner = session.scalar(select(Job.owner_id).where(Job.sweep_id == sweep_id).limit(1))
        assert owner is not None
        mine = Principal(user_id=owner, name="owner", role="user", token_id=0)
        for who, viewer, before in (
            ("admin, first page", ADMIN, None),
            ("admin, half way", ADMIN, sorted(ids)[len(ids) // 2]),
            ("owner, first page", mine, None),
        ):
            out[f"{name}, {who}"] = JobsQuery(
                viewer=viewer,
                owner_id=None,
                status=None,
                sweep_id=sweep_id,
                finished_before=None,
                limit=50,
                before_id=before,
            )
    return out


def listed(engine: Engine, query: JobsQuery) -> list[int]:
    with Session(engine) as session:
        return [job.id for job in list_jobs(session=session, **query)]


def index_used(engine: Engine, query: JobsQuery) -> str:
    """The index the listing's plan reads the jobs by."""
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        listed(engine, query)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    with engine.connect() as conn:
        plan = [row[0] for row in conn.exec_driver_sql("EXPLAIN " + seen[0][0], seen[0][1])]
    scans = [
        line.split(" on jobs")[0].split("->")[-1].strip() for line in plan if " on jobs" in line
    ]
    return "; ".join(scans)


def timed(engine: Engine, query: JobsQuery, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        listed(engine, query)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=5_000)
    parser.add_argument("--reads", type=int, default=30)
    args = parser.parse_args()
    with scratch_database() as url:
        upgrade(url)
        engine = make_engine(url)
        started = time.perf_counter()
        long, old = fill(engine, finished=args.finished, queued=0, trials=args.trials)
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f}; {engine.dialect.name}", flush=True)
        queries = cases(engine, {"long sweep": long, "old sweep": old})
        answers: dict[tuple[str, str], list[int]] = {}
        times: dict[tuple[str, str], list[float]] = {}
        for turn in range(3):  # thirds, each schema in turn, so that drift hits both alike
            for variant in ("old", "new"):
                with_candidate(engine, variant == "new")
                for name, query in queries.items():
                    if turn == 0:
                        answers[name, variant] = listed(engine, query)
                        print(f"{variant}: {name}: {index_used(engine, query)}", flush=True)
                    times.setdefault((name, variant), [])
                    times[name, variant] += timed(engine, query, max(1, args.reads // 3))
        for name in queries:
            assert answers[name, "old"] == answers[name, "new"], name
            row = {v: sorted(times[name, v]) for v in ("old", "new")}
            medians = {v: statistics.median(t) for v, t in row.items()}
            print(
                f"{name:30s} "
                + "  ".join(
                    f"{v} {medians[v]:7.2f} ms ({t[0]:.2f}-{t[-1]:.2f})" for v, t in row.items()
                )
                + f"  x{medians['new'] / medians['old']:.3f}",
                flush=True,
            )
        print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
        engine.dispose()


if __name__ == "__main__":
    main()
