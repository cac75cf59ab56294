"""The submit's floor on this machine: how many submits/s the same load reaches with
less of lagtrain's stack, all in one run against one PostgreSQL database.

Rungs (benchmarks/submit_floor_app.py; each a FastAPI app validating the JobSpec
body with lagtrain's model, 2 uvicorn workers, no access log):

    lagtrain  `lagtrain server` itself (2 web workers, LAGTRAIN_ACCESS_LOG=false)
    store     lagtrain's store code for the submit, without its middleware/route layers
    core      the submit's five statements through SQLAlchemy Core, in the thread pool
    async     the same through SQLAlchemy's asyncio Core, on the event loop
    raw       the same through psycopg's AsyncConnection

10 users, 10 concurrent keep-alive clients (benchmarks/raw_http.py), as
benchmarks/submit_load.py; each rung measured twice (order forward, then reversed:
the queue grows through the run). Server CPU ms per submit from /proc.

    .venv/bin/python benchmarks/submit_floor.py [--submits 100] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import BIN, free_port, load_average, wait_for
    from benchmarks.submit_load import (
        GOAL_P99_S,
        GOAL_RATE,
        POSTGRES_ADMIN_URL,
        create_users,
        load,
        session_cpu_seconds,
        submit_server,
    )
else:  # run as `python benchmarks/submit_floor.py`: benchmarks/ is on sys.path
    from local_stack import BIN, free_port, load_average, wait_for
    from submit_load import (
        GOAL_P99_S,
        GOAL_RATE,
        POSTGRES_ADMIN_URL,
        create_users,
        load,
        session_cpu_seconds,
        submit_server,
    )

RUNGS = ["lagtrain", "store", "core", "async", "raw"]
PATHS = {
    "lagtrain": "/v1/jobs",
    "store": "/store",
    "core": "/core",
    "async": "/async",
    "raw": "/raw",
}
CONCURRENCY = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--submits", type=int, default=100, help="per user, rung and pass")
    parser.add_argument("--postgres-admin-url", default=POSTGRES_ADMIN_URL)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 users x 10 submits")
    args = parser.parse_args()
    if args.quick:
        args.users, args.submits = 3, 10
    print(f"start; {load_average()}", flush=True)
    repo = Path(__file__).resolve().parent.parent
    with submit_server(args.postgres_admin_url, 2, LAGTRAIN_ACCESS_LOG="false") as (
        processes,
        url,
        service,
    ):
        tokens = create_users(service.url, service.token, args.users)
        floor_port = free_port()
        floor = processes.spawn(
            "floor",
            [
                str(BIN / "uvicorn"),
                "submit_floor_app:app",
                "--app-dir",
                str(repo / "benchmarks"),
                "--host",
                "127.0.0.1",
                "--port",
                str(floor_port),
                "--workers",
                "2",
                "--no-access-log",
            ],
            {**os.environ, "FLOOR_DATABASE_URL": url, "PYTHONPATH": str(repo)},
        )

        def floor_up() -> bool:
            processes.check_alive()
            try:
                return httpx.get(f"http://127.0.0.1:{floor_port}/docs", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for(floor_up, timeout=60, what="the floor app", every=0.2)
        sessions = {"lagtrain": service.processes.procs[0][1].pid, "floor": floor.pid}
        ports = {"lagtrain": service.port, "floor": floor_port}
        rates: dict[str, list[tuple[float, float, float]]] = {r: [] for r in RUNGS}
        for rung in RUNGS:  # warm: pools, prepared statements, both web workers
            target = "lagtrain" if rung == "lagtrain" else "floor"
            asyncio.run(load(ports[target], tokens, max(2, 20 // len(tokens)), 4, PATHS[rung]))
        for rung in [*RUNGS, *reversed(RUNGS)]:
            target = "lagtrain" if rung == "lagtrain" else "floor"
            cpu = session_cpu_seconds(sessions[target])
            started = time.perf_counter()
            latencies = asyncio.run(
                load(ports[target], tokens, args.submits, CONCURRENCY, PATHS[rung])
            )
            wall = time.perf_counter() - started
            cpu_ms = (session_cpu_seconds(sessions[target]) - cpu) * 1e3 / len(latencies)
            p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
            rates[rung].append((len(latencies) / wall, p99, cpu_ms))
            print(
                f"  {rung:<9} {len(latencies) / wall:6.0f}/s  p99 {p99 * 1e3:6.1f} ms  "
                f"server CPU {cpu_ms:5.2f} ms/submit; {load_average()}",
                flush=True,
            )
    print(
        f"\n{args.users} users x {args.submits} submits per rung and pass, {CONCURRENCY} "
        "clients, PostgreSQL, 2 web workers, everything on this machine"
    )
    print(f"{'rung':<10}{'submits/s (2 passes)':>22}{'p99 ms':>16}{'CPU ms':>14}{'x lagtrain':>12}")
    base = statistics.mean(r for r, _, _ in rates["lagtrain"])
    for rung in RUNGS:
        runs = rates[rung]
        mean = statistics.mean(r for r, _, _ in runs)
        print(
            f"{rung:<10}{' / '.join(f'{r:.0f}' for r, _, _ in runs):>22}"
            f"{' / '.join(f'{p * 1e3:.0f}' for _, p, _ in runs):>16}"
            f"{' / '.join(f'{c:.1f}' for _, _, c in runs):>14}{mean / base:>12.2f}"
        )
    print(f"(goal for lagtrain: >= {GOAL_RATE:.0f}/s with p99 <= {GOAL_P99_S * 1e3:.0f} ms)")
    print(f"end; {load_average()}")


if __name__ == "__main__":
    main()
