"""What explain's room hold costs on PostgreSQL at a year's scale (benchmarks.year_store:
200,000 finished jobs, 100 running, 2,000 queued and waiting an hour, 3 live
dispatchers each reporting a room), in one process, alternating: "old", the held-job
statement planned as the planner likes (nested loops: it estimates the queue at a
few rows); "new", as the store runs it (claim_candidate.no_nested_loops). Three
reads, each in a read transaction as the routes make them: the held jobs of the 3
live rooms alone (held_jobs, which the dispatcher's maintenance also asks), the
admin's queue head (`/v1/cluster`: the first 50 in claim order) and one job's
explain (the newest queued). The answers of old and new are compared first.

A scratch database is created, filled set-based, VACUUM ANALYZEd, and dropped.
Medians of --reads reads with the spread; the load average at the start and end.

    python -m benchmarks.explain_at_scale [--finished 200000] [--queued 2000] [--reads 30]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.explain_cost import SETTINGS
from benchmarks.storage_standing import scratch_database
from benchmarks.year_store import fill
from service.store import claim_candidate
from service.store.claim_candidate import held_jobs
from service.store.db import make_engine, make_sessionmaker, read_transaction
from service.store.dispatchers import list_dispatchers
from service.store.explain import explain_job, explain_queue_head
from service.store.migrate import upgrade
from service.store.models import Job
from service.store.room_reasons import room_of

Read = Callable[[Session], object]
AS_IS = claim_candidate.no_nested_loops


@contextlib.contextmanager
def _planner_as_it_likes(session: Session) -> Iterator[None]:
    yield


def use(variant: str) -> None:
    claim_candidate.no_nested_loops = AS_IS if variant == "new" else _planner_as_it_likes


def reads() -> dict[str, Read]:
    def rooms(session: Session) -> object:
        live = list_dispatchers(session=session, limit=10)
        return held_jobs(
            session=session,
            rooms=[room_of(d.resources) for d in live],
            hold_room_after=SETTINGS["hold_room_after"],
            quota_defaults=SETTINGS["quota_defaults"],
            fair_share_window=SETTINGS["fair_share_window"],
        )

    def head(session: Session) -> object:
        explained = explain_queue_head(session=session, limit=50, owner_id=None, **SETTINGS)
        return [(job.id, why.model_dump()) for job, _owner, why in explained]

    def one(session: Session) -> object:
        newest = select(Job).where(Job.status == "queued").order_by(Job.id.desc()).limit(1)
        job = session.scalars(newest).one()
        return explain_job(session=session, job=job, viewer_is_admin=True, **SETTINGS).model_dump()

    return {"held jobs of 3 rooms": rooms, "admin's queue head": head, "one job explained": one}


def timed(factory: sessionmaker[Session], read: Read, n: int) -> list[float]:
    times = []
    for _ in range(n):
        with read_transaction(factory) as session:
            started = time.perf_counter()
            read(session)
            times.append((time.perf_counter() - started) * 1e3)
    return times


def nested_loops(engine: Engine, factory: sessionmaker[Session]) -> int:
    """How many Nested Loop nodes the held-job statements' plans have, each planned
    under the settings in force when it ran."""
    found = 0

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        nonlocal found
        if "held_job AS MATERIALIZED" in statement and not statement.startswith("EXPLAIN"):
            plan = cursor.connection.execute("EXPLAIN " + statement, parameters).fetchall()
            found += sum("Nested Loop" in row[0] for row in plan)

    event.listen(engine, "before_cursor_execute", explain)
    try:
        with read_transaction(factory) as session:
            reads()["held jobs of 3 rooms"](session)
    finally:
        event.remove(engine, "before_cursor_execute", explain)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=200_000)
    parser.add_argument("--queued", type=int, default=2_000)
    parser.add_argument("--reads", type=int, default=30)
    args = parser.parse_args()
    with scratch_database() as url:
        upgrade(url)
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        started = time.perf_counter()
        fill(engine, finished=args.finished, queued=args.queued, trials=0)
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f}; {engine.dialect.name}", flush=True)
        answers = {}
        for variant in ("old", "new"):
            use(variant)
            with read_transaction(factory) as session:
                answers[variant] = [read(session) for read in reads().values()]
            loops = nested_loops(engine, factory)
            print(f"{variant}: {loops} Nested Loop nodes in the held-job plans", flush=True)
        assert answers["old"] == answers["new"], "old and new answer differently"
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(3):  # thirds, alternating, so that drift hits both alike
            for variant in ("old", "new"):
                use(variant)
                for name, read in reads().items():
                    times.setdefault((name, variant), [])
                    times[name, variant] += timed(factory, read, max(1, args.reads // 3))
        use("new")
        for name in reads():
            row = {v: sorted(times[name, v]) for v in ("old", "new")}
            medians = {v: statistics.median(t) for v, t in row.items()}
            print(
                f"{name:22s} "
                + "  ".join(
                    f"{v} {medians[v]:7.2f} ms ({t[0]:.2f}-{t[-1]:.2f})" for v, t in row.items()
                )
                + f"  x{medians['new'] / medians['old']:.2f}",
                flush=True,
            )
        print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
        engine.dispose()


if __name__ == "__main__":
    main()
