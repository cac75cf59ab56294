"""Submit load: U users x K submits each, from C concurrent clients, against `lagtrain
server` on PostgreSQL (the API alone: no dispatcher, the jobs stay queued), with one
web worker (the baseline: the server before LAGTRAIN_WEB_WORKERS) and with W, in
one run. Submits/s = measured submits / wall time; latency per request, client side.

The client is benchmarks/raw_http.py (keep-alive HTTP/1.1 on asyncio streams) so it
costs the shared cores far less than the server it measures.

    .venv/bin/python benchmarks/submit_load.py [--users 10] [--submits 100]
        [--concurrency 10,50] [--web-workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx
from local_stack import api_server, load_average, postgres_database, workspace
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


def create_users(url: str, admin_token: str, count: int) -> list[str]:
    tokens = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}) as c:
        for i in range(count):
            r = c.post("/v1/users", json={"name": f"load-{time.monotonic_ns()}-{i}"})
            r.raise_for_status()
            tokens.append(r.json()["token"])
    return tokens


async def load(port: int, tokens: list[str], submits: int, concurrency: int) -> list[float]:
    """Latencies (s) of len(tokens) x submits POST /v1/jobs, users interleaved."""
    work = [tokens[i % len(tokens)] for i in range(len(tokens) * submits)]
    latencies: list[float] = []

    async def client() -> None:
        conn = await Connection("127.0.0.1", port, tokens[0]).open()
        try:
            while work:
                token = work.pop()
                started = time.perf_counter()
                status, body = await conn.request("POST", "/v1/jobs", SPEC, token=token)
                latencies.append(time.perf_counter() - started)
                if status != 201:
                    raise RuntimeError(f"submit: HTTP {status} {body}")
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


def measure(args: argparse.Namespace, web_workers: int) -> list[Result]:
    results = []
    with (
        workspace("lagtrain-load-") as (workdir, processes),
        postgres_database(args.postgres_admin_url) as url,
        api_server(
            workdir,
            processes,
            database_url=url,
            # No dispatcher drains the queue here: lift the per-user queued-jobs quota
            # (issue 8) so every measured submit is a 201, not a 429.
            extra_env={
                "LAGTRAIN_WEB_WORKERS": str(web_workers),
                "LAGTRAIN_DEFAULT_MAX_QUEUED_JOBS": "1000000",
            },
        ) as service,
    ):
        tokens = create_users(service.url, service.token, args.users)
        asyncio.run(load(service.port, tokens, max(1, args.warmup // args.users), 4))
        for concurrency in args.concurrency:
            started = time.perf_counter()
            latencies = asyncio.run(load(service.port, tokens, args.submits, concurrency))
            wall = time.perf_counter() - started
            cuts = statistics.quantiles(latencies, n=100, method="inclusive")
            results.append(
                Result(web_workers, concurrency, len(latencies) / wall, cuts[49], cuts[98])
            )
            print(
                f"  web workers {web_workers}, {concurrency} concurrent: "
                f"{len(latencies) / wall:.0f}/s; {load_average()}",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--submits", type=int, default=100, help="per user and concurrency")
    parser.add_argument("--concurrency", default="10,50", help="comma-separated client counts")
    parser.add_argument("--web-workers", type=int, default=2, help="W, against 1")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured submits first")
    parser.add_argument("--postgres-admin-url", default=POSTGRES_ADMIN_URL)
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
        f"{'rate ratio':>11}{'p99 ratio':>10}"
    )
    print("-" * 68)
    for r in [*baseline.values(), *results]:
        base = baseline[r.concurrency]
        print(
            f"{r.web_workers:>11}{r.concurrency:>9}{r.rate:>11.0f}{r.p50 * 1e3:>8.1f}"
            f"{r.p99 * 1e3:>8.1f}{r.rate / base.rate:>11.2f}{r.p99 / base.p99:>10.2f}"
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
