"""A year's store on PostgreSQL for query-plan benchmarks, filled set-based in
seconds (INSERT … SELECT generate_series) and VACUUM ANALYZEd: USERS users;
`finished` succeeded jobs spread over a year, one ended attempt each; RUNNING jobs
holding a lease; `queued` jobs waiting an hour (so each may hold room); two sweeps
of `trials` trial jobs among the finished ones, a long one (its trials spread over
the year, every k-th job: user 1's) and an old one (every other job of the year's
first weeks: user 2's); LIVE dispatchers, each reporting a room of NODES nodes.
Checkpoints are left out: none of the statements measured reads them.

The queued and running jobs are copies of one job enqueued through the store (a
real spec: explain reads its workers and bundles); the finished ones carry `{}`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from service.schemas.resolve import resolve
from service.store.dispatchers import upsert_dispatcher
from service.store.jobs import enqueue

USERS, RUNNING, LIVE, NODES = 40, 100, 3, 4
# One replica per node's worth of CPUs, and a coordinator: 1 + 2 x 2 CPUs.
SPEC = {
    "task": {"kind": "adding"},
    "schedule": {"rounds": 10},
    "distributed": {"workers": 2, "cpus_per_worker": 2},
}
_COPIED = (
    "spec, priority, cpus_required, gpus_required, replica_cpus, replica_gpus, "
    "replica_memory_bytes, coordinator_memory_bytes, max_attempts, progress_rounds"
)


def room_report() -> dict[str, Any]:
    """A dispatcher's resources, its room (what it could free) included: NODES nodes
    of 16 CPUs, half of them free."""
    node = {"CPU": 16.0, "GPU": 0.0, "memory": 64.0 * 2**30}
    total = {"CPU": 16.0 * NODES, "GPU": 0.0}
    return {
        "total": total,
        "free": {"CPU": 8.0 * NODES, "GPU": 0.0},
        "capacity": total,
        "nodes": [{**node, "free": {**node, "CPU": 8.0}}] * NODES,
        "room": {**total, "nodes": [node] * NODES, "unplaceable": []},
    }


def fill(engine: Engine, *, finished: int, queued: int, trials: int) -> tuple[int, int]:
    """Fill an empty store at head; the two sweeps' ids (the long one, the old one)."""
    with Session(engine) as session, session.begin():
        session.execute(
            text(
                "INSERT INTO users (name, role, share_weight, created_at) "
                "SELECT 'u' || i, 'user', 1.0, now() FROM generate_series(1, :n) i"
            ),
            {"n": USERS},
        )
        template, _ = enqueue(session=session, owner_id=1, spec=resolve(SPEC))
        sweeps = [
            session.scalar(
                text(
                    "INSERT INTO sweeps (owner_id, status, spec, best, created_at) VALUES "
                    "(:owner, 'running', '{}', '[]', now() - interval '1 year') RETURNING id"
                ),
                {"owner": owner},
            )
            for owner in (1, 2)
        ]
        every = max(2, finished // max(1, trials))
        # The long sweep's trials: every `every`-th job over the year (user 1's); the
        # old sweep's: every other job of the year's first 2 x `trials` (user 2's).
        session.execute(
            text(
                "INSERT INTO jobs (owner_id, status, spec, priority, cpus_required, "
                "gpus_required, attempt, max_attempts, progress_round, progress_rounds, "
                "last_seq, sweep_id, created_at, started_at, finished_at) "
                "SELECT CASE WHEN long THEN 1 WHEN old THEN 2 ELSE 1 + i % :users END, "
                "'succeeded', '{}', 0, 5, 0, 1, 3, 10, 10, 10, "
                "CASE WHEN long THEN :long WHEN old THEN :old END, "
                "t, t, t + interval '1 minute' FROM generate_series(1, :n) i, "
                "LATERAL (SELECT now() - interval '1 year' + i * interval '1 year' / :n "
                "- interval '2 hours' AS t, i % :every = 1 AND i / :every < :trials AS long, "
                "i % 2 = 0 AND i <= 2 * :trials AS old) at"
            ),
            {
                "n": finished,
                "users": USERS,
                "every": every,
                "trials": trials,
                "long": sweeps[0],
                "old": sweeps[1],
            },
        )
        session.execute(
            text(
                "INSERT INTO job_attempts (job_id, number, fencing_token, dispatcher_id, "
                "lease_expires_at, started_at, ended_at, outcome) SELECT id, 1, 'f' || id, "
                "'d0', finished_at, started_at, finished_at, 'succeeded' FROM jobs "
                "WHERE status = 'succeeded'"
            )
        )
        for status, n, ago in (("running", RUNNING, "30 minutes"), ("queued", queued, "1 hour")):
            lease = (
                "1, 'l' || i, now() + interval '1 minute', 'd1'"
                if status == "running"
                else "0, NULL, NULL, NULL"
            )
            copied = ", ".join(f"t.{c.strip()}" for c in _COPIED.split(","))
            session.execute(
                text(
                    f"INSERT INTO jobs (owner_id, status, {_COPIED}, attempt, lease_token, "
                    "lease_expires_at, dispatcher_id, progress_round, last_seq, created_at) "
                    f"SELECT 1 + i % :users, '{status}', {copied}, {lease}, 0, 0, "
                    f"now() - interval '{ago}' + i * interval '1 second' "
                    "FROM generate_series(1, :n) i, jobs t WHERE t.id = :template"
                ),
                {"users": USERS, "n": n, "template": template.id},
            )
        session.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": template.id})
        for d in range(1, LIVE + 1):
            upsert_dispatcher(
                session=session, dispatcher_id=f"d{d}", hostname=f"h{d}", resources=room_report()
            )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return (int(sweeps[0]), int(sweeps[1]))
