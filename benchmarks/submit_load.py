"""Submit load: U users x K submits each, from C concurrent clients, against `lagtrain
server` on PostgreSQL (the API alone: no dispatcher, the jobs stay queued), with one
web worker (the baseline: the server before LAGTRAIN_WEB_WORKERS) and with W, in
one run. Submits/s = measured submits / wall time; latency per request, client side.
Server CPU ms per submit = CPU seconds (user + system, from /proc) of every process
in the server's session over the measured window / submits: a load-insensitive
measure of what a submit costs the server, taken on a busy machine too.

The client is benchmarks/raw_http.py (keep-alive HTTP/1.1 on asyncio streams) so it
costs the shared cores far less than the server it measures.

    .venv/bin/python benchmarks/submit_load.py [--users 10] [--submits 100]
        [--concurrency 10,50] [--web-workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import (
        BIN,
        ProcessGroup,
        Service,
        api_server,
        load_average,
        postgres_database,
        workspace,
    )
    from benchmarks.raw_http import Connection
else:  # run as `python benchmarks/submit_load.py`: benchmarks/ is on sys.path
    from local_stack import (
        BIN,
        ProcessGroup,
        Service,
        api_server,
        load_average,
        postgres_database,
        workspace,
    )
    from raw_http import Connection

GOAL_RATE = 500.0  # submits/s at 10 concurrent clients
GOAL_P99_S = 0.050
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SPEC: dict[str, Any] = {
    "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
    "model": {"cell": "gru", "hidden_size": 8},
    "distributed": {"workers": 1, "cpus_per_worker": 0.5},
    "schedule": {"rounds": 3},
}


@dataclass(frozen=True)
class Result:
    web_workers: int
    concurrency: int
    rate: float
    p50: float
    p99: float
    cpu_ms: float  # server CPU per submit


def session_cpu_seconds(session_id: int) -> float:
    """User + system CPU seconds of the live processes in session `session_id` (the
    server and, with web workers, uvicorn's worker processes)."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:  # exited meanwhile
            continue
        # fields[0] is stat's 3rd field (state): session is the 6th, utime/stime 14/15.
        if int(fields[3]) == session_id:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def create_users(url: str, admin_token: str, count: int) -> list[str]:
    tokens = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}) as c:
        for i in range(count):
            r = c.post("/v1/users", json={"name": f"load-{time.monotonic_ns()}-{i}"})
            r.raise_for_status()
            tokens.append(r.json()["token"])
    return tokens


async def load(
    port: int, tokens: list[str], submits: int, concurrency: int, path: str = "/v1/jobs"
) -> list[float]:
    """Latencies (s) of len(tokens) x submits POST `path`, users interleaved."""
    work = [tokens[i % len(tokens)] for i in range(len(tokens) * submits)]
    latencies: list[float] = []

    async def client() -> None:
        conn = await Connection("127.0.0.1", port, tokens[0]).open()
        try:
            while work:
                token = work.pop()
                started = time.perf_counter()
                status, body = await conn.request("POST", path, SPEC, token=token)
                latencies.append(time.perf_counter() - started)
                if status != 201:
                    raise RuntimeError(f"submit: HTTP {status} {body}")
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


@contextmanager
def py_spy(pid: int, output: str | None) -> Iterator[None]:
    """A py-spy profile of process `pid` (raw collapsed stacks) while the block runs."""
    if output is None:
        yield
        return
    spy = subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--output",
            output,
            "--nonblocking",
            "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # py-spy attaches before the load starts
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


@contextmanager
def submit_server(
    admin_url: str, web_workers: int, **env: str
) -> Iterator[tuple[ProcessGroup, str, Service]]:
    """`lagtrain server` alone (no dispatcher) with `web_workers` on a new PostgreSQL
    database: (its process group, the database URL, the service). `env`: more
    LAGTRAIN_ settings."""
    with (
        workspace("lagtrain-load-") as (workdir, processes),
        postgres_database(admin_url) as url,
        api_server(
            workdir,
            processes,
            database_url=url,
            # No dispatcher drains the queue here: lift the per-user queued-jobs quota
            # (issue 8) so every measured submit is a 201, not a 429.
            extra_env={
                "LAGTRAIN_WEB_WORKERS": str(web_workers),
                "LAGTRAIN_DEFAULT_MAX_QUEUED_JOBS": "1000000",
                **env,
            },
        ) as service,
    ):
        yield processes, url, service


def measure(args: argparse.Namespace, web_workers: int) -> list[Result]:
    results = []
    with submit_server(args.postgres_admin_url, web_workers) as (_processes, _url, service):
        server_session = service.processes.procs[-1][1].pid  # spawned as a session leader
        tokens = create_users(service.url, service.token, args.users)
        for concurrency in args.concurrency:
            # Warm at the measured concurrency: the pool's connections for it are opened
            # (and psycopg has prepared the submit's statements on each) before the
            # clock starts, so the figure is the server's steady state, not its pool
            # growing into the first requests' latencies.
            asyncio.run(load(service.port, tokens, max(1, args.warmup // args.users), concurrency))
            profile = args.profile if web_workers == 1 else None
            with py_spy(server_session, profile):
                cpu_before = session_cpu_seconds(server_session)
                started = time.perf_counter()
                latencies = asyncio.run(load(service.port, tokens, args.submits, concurrency))
                wall = time.perf_counter() - started
            cpu_ms = (session_cpu_seconds(server_session) - cpu_before) * 1e3 / len(latencies)
            cuts = statistics.quantiles(latencies, n=100, method="inclusive")
            results.append(
                Result(web_workers, concurrency, len(latencies) / wall, cuts[49], cuts[98], cpu_ms)
            )
            print(
                f"  web workers {web_workers}, {concurrency} concurrent: "
                f"{len(latencies) / wall:.0f}/s, server CPU {cpu_ms:.2f} ms/submit; "
                f"{load_average()}",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--submits", type=int, default=100, help="per user and concurrency")
    parser.add_argument("--concurrency", default="10,50", help="comma-separated client counts")
    parser.add_argument("--web-workers", type=int, default=2, help="W, against 1")
    parser.add_argument(
        "--warmup", type=int, default=300, help="unmeasured submits before each row"
    )
    parser.add_argument("--postgres-admin-url", default=POSTGRES_ADMIN_URL)
    parser.add_argument(
        "--profile", help="py-spy raw profile of the 1-worker server's measured load to this file"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 users x 10 submits")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if args.quick:
        args.users, args.submits, args.warmup = 3, 10, 9
    print(f"start; {load_average()}", flush=True)
    baseline = {r.concurrency: r for r in measure(args, 1)}
    results = measure(args, args.web_workers) if args.web_workers != 1 else []
    print(
        f"\n{args.users} users x {args.submits} submits per row, PostgreSQL, "
        "client on the same machine (raw keep-alive HTTP)"
    )
    print(
        f"{'web workers':>11}{'clients':>9}{'submits/s':>11}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'rate ratio':>11}{'p99 ratio':>10}{'CPU ms':>8}"
    )
    print("-" * 76)
    for r in [*baseline.values(), *results]:
        base = baseline[r.concurrency]
        print(
            f"{r.web_workers:>11}{r.concurrency:>9}{r.rate:>11.0f}{r.p50 * 1e3:>8.1f}"
            f"{r.p99 * 1e3:>8.1f}{r.rate / base.rate:>11.2f}{r.p99 / base.p99:>10.2f}"
            f"{r.cpu_ms:>8.2f}"
        )
    best = max(
        (r for r in [*baseline.values(), *results] if r.concurrency == 10),
        key=lambda r: r.rate,
        default=None,
    )
    if best is not None:
        met = best.rate >= GOAL_RATE and best.p99 <= GOAL_P99_S
        print(
            f"\nat 10 clients, best: {best.rate:.0f}/s, p99 {best.p99 * 1e3:.1f} ms with "
            f"{best.web_workers} web worker(s) (goal >= {GOAL_RATE:.0f}/s and p99 <= "
            f"{GOAL_P99_S * 1e3:.0f} ms: {'met' if met else 'MISSED'})"
        )
    print(f"end; {load_average()}")


if __name__ == "__main__":
    main()
