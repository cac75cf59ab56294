"""What the submit's storage standing costs on PostgreSQL with a large checkpoint
table: the standing statement every submit (and upload) runs, and the users'
listing's storage sums (usage), three ways in one process: "old", the standing's
join (checkpoints JOIN jobs WHERE owner, correlated to the user; kept here only to
compare) on the schema before migration 0015 (checkpoints indexed by job_id alone);
"query", the statement as the store runs it now (stored_bytes: the owner's job ids,
then their checkpoints by job_id) on that same schema, the query fix alone; "new",
that statement at head (0015's index holds the bytes: index-only). usage's join
grouped by owner is unchanged: its "old" and "query" are the same statement, and
"new" is that statement through 0015's index. The schema is switched (downgrade to
0014, upgrade) three times, a third of the reads each time.

A scratch database is created, filled set-based (INSERT … SELECT generate_series),
VACUUM ANALYZEd, and dropped: --jobs jobs of USERS users, one of whom (the heavy
one) owns a fifth of them, CHECKPOINTS_PER_JOB checkpoints each. Medians of --reads
reads, each on its own connection checkout, with the spread.

    python -m benchmarks.storage_standing [--jobs 200000] [--reads 30]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, create_engine, func, select, text
from sqlalchemy.sql import Select

from service.store.db import make_engine
from service.store.migrate import downgrade, upgrade
from service.store.models import Checkpoint, Dataset, Job, JobStatus, User, table_of
from service.store.quotas import _SUBMIT_STANDING_PG
from service.store.stored_bytes import checkpoint_bytes_by_owner, upload_bytes_by_owner

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
USERS, CHECKPOINTS_PER_JOB, HEAVY_SHARE = 40, 5, 5  # the heavy user: every 5th job

_JOBS = table_of(Job)
# The standing as it was before stored_bytes (its checkpoints column a join).
OLD_STANDING = select(
    User.max_queued_jobs,
    User.max_storage_bytes,
    User.max_cpus,
    User.max_gpus,
    select(func.count())
    .select_from(_JOBS)
    .where(_JOBS.c.owner_id == User.id, _JOBS.c.status == JobStatus.QUEUED.value)
    .scalar_subquery()
    .label("queued"),
    select(func.coalesce(func.sum(Dataset.bytes), 0))
    .where(Dataset.owner_id == User.id)
    .scalar_subquery()
    .label("uploads"),
    select(func.coalesce(func.sum(Checkpoint.bytes), 0))
    .join(_JOBS, _JOBS.c.id == Checkpoint.job_id)
    .where(_JOBS.c.owner_id == User.id)
    .scalar_subquery()
    .label("checkpoints"),
    func.clock_timestamp().label("clock"),
).where(User.id == bindparam("user_id"))


def old_usage_storage(connection: Connection, user_ids: list[int]) -> dict[int, int]:
    """usage's checkpoint sum as it was: one GROUP BY over the join."""
    rows = connection.execute(
        select(Job.owner_id, func.sum(Checkpoint.bytes))
        .join(Job, Job.id == Checkpoint.job_id)
        .where(Job.owner_id.in_(user_ids))
        .group_by(Job.owner_id)
    )
    return {owner: int(n) for owner, n in rows}


def new_usage_storage(connection: Connection, user_ids: list[int]) -> dict[int, int]:
    """usage's storage sums as they are (service.store.quotas.usage's statements): the
    same join for the checkpoints, read through 0015's index at head."""
    storage = dict.fromkeys(user_ids, 0)
    for by_owner in (upload_bytes_by_owner(user_ids), checkpoint_bytes_by_owner(user_ids)):
        for owner_id, n in connection.execute(by_owner):
            storage[owner_id] += int(n)
    return storage


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"lagtrain_bench_storage_{secrets.token_hex(3)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fill(engine: Engine, jobs: int) -> None:
    """USERS users; `jobs` succeeded jobs (every HEAVY_SHARE-th the first user's, the
    rest round-robin over the others) with CHECKPOINTS_PER_JOB checkpoints each; a
    few queued jobs and an upload per user."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (name, role, share_weight, created_at) "
                "SELECT 'u' || i, 'user', 1.0, now() FROM generate_series(1, :n) i"
            ),
            {"n": USERS},
        )
        conn.execute(
            text(
                "INSERT INTO jobs (owner_id, status, spec, priority, cpus_required, "
                "gpus_required, attempt, max_attempts, progress_round, progress_rounds, "
                "last_seq, created_at, finished_at) "
                "SELECT CASE WHEN i % :heavy = 0 THEN 1 ELSE 2 + i % (:users - 1) END, "
                "CASE WHEN i > :n - 5 * :users THEN 'queued' ELSE 'succeeded' END, "
                "'{}', 0, 2, 0, 1, 3, 10, 10, 10, "
                "now() - make_interval(secs => :n - i), now() - make_interval(secs => :n - i) "
                "FROM generate_series(1, :n) i"
            ),
            {"n": jobs, "users": USERS, "heavy": HEAVY_SHARE},
        )
        conn.execute(
            text(
                "INSERT INTO checkpoints (job_id, attempt, round, seq, uri, sha256, bytes, "
                "created_at) SELECT j.id, 1, r, r, 'file:///c/' || j.id || '-' || r, "
                "repeat('0', 64), 1000 + j.id % 997, j.created_at "
                "FROM jobs j CROSS JOIN generate_series(1, :k) r WHERE j.status = 'succeeded'"
            ),
            {"k": CHECKPOINTS_PER_JOB},
        )
        conn.execute(
            text(
                "INSERT INTO datasets (owner_id, filename, format, uri, sha256, bytes, created_at) "
                "SELECT id, 'd', 'text', 'file:///d/' || id, repeat('0', 64), 5000, now() "
                "FROM users"
            )
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def timed(engine: Engine, read: Callable[[Connection], Any], reads: int) -> list[float]:
    times = []
    for _ in range(reads):
        with engine.connect() as conn:
            started = time.perf_counter()
            read(conn)
            times.append((time.perf_counter() - started) * 1e3)
            conn.rollback()
    return sorted(times)


def plan(engine: Engine, query: Select[Any], params: dict[str, Any]) -> str:
    compiled = query.compile(engine)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), {**compiled.params, **params})
        lines = [r[0] for r in rows]
    scans = "seq scan on checkpoints" if any("Seq Scan on checkpoints" in x for x in lines) else ""
    return scans or "checkpoints by index"


def fmt(times: list[float]) -> str:
    return f"{statistics.median(times):7.2f} ms ({times[0]:.2f}-{times[-1]:.2f})"


Read = Callable[[Connection], Any]


def cases(typical: int, heavy: int) -> dict[str, dict[str, Read]]:
    """Per case, its variants: "old" (the join, on the schema before 0015), "query"
    (the new statement on that schema: the query fix alone) and "new" (at head)."""

    def standing(query: Select[Any], uid: int) -> Read:
        return lambda conn: conn.execute(query, {"user_id": uid}).one()

    everyone = list(range(1, USERS + 1))

    def usage_of(read: Callable[[Connection, list[int]], Any], uids: list[int]) -> Read:
        return lambda conn: read(conn, uids)

    out: dict[str, dict[str, Read]] = {}
    for name, uid in (("a typical user", typical), ("the heavy user", heavy)):
        new = standing(_SUBMIT_STANDING_PG, uid)
        out[f"standing, {name}"] = {"old": standing(OLD_STANDING, uid), "query": new, "new": new}
    for name, uids in (("one user", [typical]), (f"all {USERS} users", everyone)):
        new = usage_of(new_usage_storage, uids)
        out[f"usage, {name}"] = {"old": usage_of(old_usage_storage, uids), "query": new, "new": new}
    return out


def on_schema(url: str, engine: Engine, revision: str) -> None:
    """Migrate to `revision` (0014: ix_checkpoints_job_id; head: 0015's index)."""
    if revision == "head":
        upgrade(url)
    else:
        downgrade(url, revision)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE checkpoints")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--reads", type=int, default=30)
    args = parser.parse_args()
    with scratch_database() as url:
        upgrade(url)
        engine = make_engine(url)
        started = time.perf_counter()
        fill(engine, args.jobs)
        with engine.connect() as conn:
            n_checkpoints = conn.scalar(text("SELECT count(*) FROM checkpoints"))
        print(
            f"filled {args.jobs:,} jobs, {n_checkpoints:,} checkpoints, {USERS} users "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        print(f"load average {os.getloadavg()[0]:.2f}; {engine.dialect.name}", flush=True)
        typical, heavy = 2, 1
        with engine.connect() as conn:
            for uid in (typical, heavy):
                old = conn.execute(OLD_STANDING, {"user_id": uid}).one()
                new = conn.execute(_SUBMIT_STANDING_PG, {"user_id": uid}).one()
                assert (old.uploads, old.checkpoints) == (new.uploads, new.checkpoints), uid
            everyone = list(range(1, USERS + 1))
            assert old_usage_storage(conn, everyone) == {
                uid: n - 5000 for uid, n in new_usage_storage(conn, everyone).items()
            }
        reads = cases(typical, heavy)
        times: dict[tuple[str, str], list[float]] = {}
        per_turn = max(1, args.reads // 3)
        for turn in range(3):  # thirds, each schema in turn, so that drift hits all alike
            for revision, variants in (("0014", ("old", "query")), ("head", ("new",))):
                on_schema(url, engine, revision)
                if turn == 0:
                    for uid in (typical, heavy):
                        print(
                            f"schema {revision}, user {uid}: old join "
                            f"{plan(engine, OLD_STANDING, {'user_id': uid})}, new statement "
                            f"{plan(engine, _SUBMIT_STANDING_PG, {'user_id': uid})}",
                            flush=True,
                        )
                for case, by_variant in reads.items():
                    for variant in variants:
                        times.setdefault((case, variant), [])
                        times[case, variant] += timed(engine, by_variant[variant], per_turn)
        print("medians (spread) of", 3 * per_turn, "reads; ratios to old")
        for case in reads:
            row = {v: sorted(times[case, v]) for v in ("old", "query", "new")}
            base = statistics.median(row["old"])
            ratios = "  ".join(
                f"{v} x{statistics.median(row[v]) / base:.3f}" for v in ("query", "new")
            )
            print(
                f"{case:24s} old {fmt(row['old'])}  query {fmt(row['query'])}  "
                f"new {fmt(row['new'])}  {ratios}",
                flush=True,
            )
        print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
        engine.dispose()


if __name__ == "__main__":
    main()
