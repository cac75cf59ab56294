"""SSE fan-out: N watchers of one job through `lagtrain server` (the API alone), each
metric record's latency from its commit to its arrival at every watcher, with one
watcher (the baseline) and with N, in one run; every watcher's series is checked
complete (every seq once, in order, then the terminal status).

This process plays the dispatcher: it claims the job in the store and appends one
record every --interval seconds from a thread, stamping each commit; the watchers
(benchmarks/raw_http.py, cheap SSE parsing) run on this process's event loop and
stamp each arrival on the same clock. The watchers' own parsing shares the cores
with the server, so the figure is an upper bound on the server's latency.

    .venv/bin/python benchmarks/sse_fanout.py [--watchers 1000] [--records 100]
        [--interval 0.05] [--store postgresql|sqlite] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from service.store.attempts import claim_next, finish
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.metrics import MetricIn, append_metrics

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import api_server, load_average, postgres_database, workspace
    from benchmarks.raw_http import Connection
else:  # run as `python benchmarks/sse_fanout.py`: benchmarks/ is on sys.path
    from local_stack import api_server, load_average, postgres_database, workspace
    from raw_http import Connection

GOAL_P99_S = 0.250
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SPEC: dict[str, Any] = {
    "task": {"kind": "adding", "num_samples": 64},
    "distributed": {"workers": 1, "cpus_per_worker": 0.5},
    "schedule": {"rounds": 1000},
}


@dataclass
class Watcher:
    arrivals: dict[int, float] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    ended_with: str = ""
    greeted: asyncio.Event = field(default_factory=asyncio.Event)


async def watch(port: int, token: str, job_id: int, watcher: Watcher) -> None:
    conn = await Connection("127.0.0.1", port, token).open()
    try:
        async for event, event_id, data in conn.sse(f"/v1/jobs/{job_id}/events"):
            if event == "metrics":
                seq = int(event_id)
                watcher.arrivals[seq] = time.perf_counter()
                watcher.order.append(seq)
            else:
                watcher.greeted.set()
                watcher.ended_with = data
    finally:
        conn.close()


def write_records(url: str, job_id: int, records: int, interval: float) -> dict[int, float]:
    """Claim the job, append one record per interval, finish; commit stamps by seq."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    committed: dict[int, float] = {}
    try:
        with transaction(sessions) as session:
            claimed = claim_next(
                session=session,
                dispatcher_id="bench",
                lease_seconds=600,
                free_cpus=64,
                free_gpus=0,
            )
        assert claimed is not None and claimed.job_id == job_id
        next_at = time.perf_counter()
        for seq in range(1, records + 1):
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
            with transaction(sessions) as session:
                append_metrics(
                    session=session,
                    job_id=job_id,
                    token=claimed.fencing_token,
                    attempt=claimed.attempt,
                    records=[
                        MetricIn(
                            seq=seq, round=seq - 1, values={"train_loss": 1 / seq}, uploaded=[0]
                        )
                    ],
                )
            committed[seq] = time.perf_counter()
        with transaction(sessions) as session:
            finish(session=session, job_id=job_id, token=claimed.fencing_token, summary={})
    finally:
        engine.dispose()
    return committed


async def one_round(
    port: int, token: str, url: str, watchers: int, records: int, interval: float
) -> tuple[list[float], int]:
    """Latencies over all (watcher, record) pairs, and how many series were incomplete."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        r = await client.post("/v1/jobs", json=SPEC, headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()
        job_id = r.json()["id"]
    crowd = [Watcher() for _ in range(watchers)]
    tasks = []
    for w in crowd:  # connect in small steps: a burst of 1000 SYNs overflows the backlog
        tasks.append(asyncio.create_task(watch(port, token, job_id, w)))
        if len(tasks) % 50 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*(w.greeted.wait() for w in crowd)), timeout=300)
    box: dict[int, float] = {}
    writer = threading.Thread(
        target=lambda: box.update(write_records(url, job_id, records, interval))
    )
    writer.start()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=records * interval + 300)
    writer.join()
    latencies = [w.arrivals[s] - box[s] for w in crowd for s in w.arrivals]
    complete = list(range(1, records + 1))
    incomplete = sum(1 for w in crowd if w.order != complete or '"succeeded"' not in w.ended_with)
    return latencies, incomplete


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between records")
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--postgres-admin-url", default=POSTGRES_ADMIN_URL)
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 watchers, 20 records")
    args = parser.parse_args()
    if args.quick:
        args.watchers, args.records = 50, 20
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.watchers)), hard))
    print(f"start; {load_average()}", flush=True)
    with workspace("lagtrain-sse-") as (workdir, processes):
        if args.store == "sqlite":
            url = f"sqlite:///{Path(workdir) / 'lagtrain.db'}"
            rows = run(args, workdir, processes, url)
        else:
            with postgres_database(args.postgres_admin_url) as url:
                rows = run(args, workdir, processes, url)
    (base, base_bad), (many, many_bad) = rows
    print(
        f"\n{args.records} records, one every {args.interval * 1e3:.0f} ms, {args.store}; "
        "record committed -> received by a watcher"
    )
    print(
        f"{'watchers':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p99 ratio':>11}{'incomplete':>12}"
    )
    print("-" * 59)
    for count, lat, bad in ((1, base, base_bad), (args.watchers, many, many_bad)):
        print(
            f"{count:>9}{statistics.median(lat) * 1e3:>9.1f}{p99(lat) * 1e3:>9.1f}"
            f"{max(lat) * 1e3:>9.1f}{p99(lat) / p99(base):>11.2f}{bad:>12}"
        )
    met = p99(many) <= GOAL_P99_S and many_bad == 0
    print(
        f"\n{args.watchers} watchers: p99 {p99(many) * 1e3:.0f} ms, {many_bad} incomplete series "
        f"(goal p99 <= {GOAL_P99_S * 1e3:.0f} ms, all complete: {'met' if met else 'MISSED'})"
    )
    print(f"end; {load_average()}")


def run(
    args: argparse.Namespace, workdir: Path, processes: Any, url: str
) -> list[tuple[list[float], int]]:
    # One user opens every stream: lift the per-user stream cap for this run.
    extra = {"LAGTRAIN_MAX_STREAMS_PER_USER": str(args.watchers + 10)}
    with api_server(workdir, processes, database_url=url, extra_env=extra) as service:
        rows = []
        for count in (1, args.watchers):
            rows.append(
                asyncio.run(
                    one_round(service.port, service.token, url, count, args.records, args.interval)
                )
            )
            print(f"  {count} watcher(s) done; {load_average()}", flush=True)
        return rows


if __name__ == "__main__":
    main()
