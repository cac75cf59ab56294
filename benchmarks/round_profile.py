"""Where a round goes: the parts of one dense round of the 2-replica LSTM job (the
spec of benchmarks/ray_vs_gloo.py), each timed alone in one run, beside the Ray
path's whole round. The baseline for every ratio is that measured Ray round.

- compute: Replica.step of each replica in this process (one torch thread); the Ray
  path runs the replicas in parallel, so its floor is the slowest one;
- coordinator: Coordinator.begin_round + end_round (aggregate, clip, Adam, metrics);
- hops: a Ray actor call that does nothing; ray.put of the parameters and their
  read in an actor; an actor returning a gradient-sized array (what a round moves);
- store: one metric record appended and committed (SQLite file, PostgreSQL), what
  the dispatcher writes per round, off the round's critical path.

    .venv/bin/python benchmarks/round_profile.py [--rounds 40] [--hidden 256] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from local_stack import load_average, postgres_database
from ray_vs_gloo import job_spec, per_round, ray_round_times

from service.schemas.resolve import resolve
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.migrate import upgrade
from workers.training.coordinator import Coordinator
from workers.training.replica import Replica
from workers.training.tasks.registry import build_task

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of fn() over `repeats` calls (after one untimed call)."""
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def in_process(spec: dict[str, Any], rounds: int) -> tuple[list[float], float, int]:
    """Per-replica compute seconds/round, coordinator seconds/round, parameter count."""
    torch.set_num_threads(1)
    resolved = resolve(spec)
    task = build_task(resolved, dtype=torch.float32, device="cpu", resolve_dataset=None)
    coordinator = Coordinator(resolved, dtype=torch.float32, device="cpu", task=task)
    replicas = [Replica(resolved, r, task=task) for r in range(coordinator.workers)]
    compute = [0.0] * len(replicas)
    coord = 0.0
    for round_ in range(rounds):
        started = time.perf_counter()
        plan = coordinator.begin_round(round_)
        coord += time.perf_counter() - started
        replies = []
        for rank in plan.ranks:
            started = time.perf_counter()
            replies.append(replicas[rank].step(plan.round, plan.params, plan.rhs))
            compute[rank] += time.perf_counter() - started
        started = time.perf_counter()
        coordinator.end_round(round_, replies)
        coord += time.perf_counter() - started
    return [c / rounds for c in compute], coord / rounds, int(plan.params.size)


@ray.remote(num_cpus=0.5)
class Echo:
    def noop(self) -> None:
        return None

    def read(self, params: np.ndarray) -> float:
        return float(params[0])

    def gradient(self, size: int) -> np.ndarray:
        return np.ones(size, dtype=np.float32)


def hops(size: int, repeats: int) -> dict[str, float]:
    echo = Echo.remote()  # type: ignore[attr-defined]
    ray.get(echo.noop.remote())
    params = np.ones(size, dtype=np.float32)
    return {
        "actor call, no payload": timed(lambda: ray.get(echo.noop.remote()), repeats),
        "ray.put(params) + read in an actor": timed(
            lambda: ray.get(echo.read.remote(ray.put(params))), repeats
        ),
        "actor returns a gradient": timed(lambda: ray.get(echo.gradient.remote(size)), repeats),
    }


def store_append(url: str, repeats: int) -> float:
    from service.schemas.resolve import resolve as resolve_spec
    from service.store.attempts import claim_next
    from service.store.jobs import enqueue
    from service.store.metrics import MetricIn, append_metrics
    from service.store.users import create_user

    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        with transaction(sessions) as session:
            user, _, _ = create_user(session=session, name="bench", role="user")
            enqueue(
                session=session, owner_id=user.id, spec=resolve_spec({"task": {"kind": "adding"}})
            )
        with transaction(sessions) as session:
            claimed = claim_next(
                session=session, dispatcher_id="b", lease_seconds=600, free_cpus=64, free_gpus=0
            )
        assert claimed is not None
        seq = iter(range(1, 10**9))

        def append() -> None:
            n = next(seq)
            with transaction(sessions) as session:
                append_metrics(
                    session=session,
                    job_id=claimed.job_id,
                    token=claimed.fencing_token,
                    attempt=claimed.attempt,
                    records=[
                        MetricIn(seq=n, round=n - 1, values={"train_loss": 1.0}, uploaded=[0])
                    ],
                )

        return timed(append, repeats)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 rounds, hidden 64")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.hidden, args.warmup = 12, 64, 3
    spec = job_spec(args)
    print(f"start; {load_average()}", flush=True)
    compute, coord, size = in_process(spec, args.rounds)
    from workers.ray_runtime import connect

    connect(None, num_cpus=args.workers + 2)
    try:
        with tempfile.TemporaryDirectory(prefix="lagtrain-profile-") as tmp:
            ray_round = per_round(ray_round_times(spec, Path(tmp)), args.warmup)
            sqlite = store_append(f"sqlite:///{Path(tmp) / 'store.db'}", args.rounds)
        moves = hops(size, args.rounds)
    finally:
        ray.shutdown()
    with postgres_database(POSTGRES_ADMIN_URL) as url:
        postgres = store_append(url, args.rounds)
    rows = [
        ("Ray path, whole round (baseline)", ray_round),
        *((f"compute, replica {rank} (in parallel on Ray)", c) for rank, c in enumerate(compute)),
        ("coordinator: plan + aggregate + Adam + metrics", coord),
        *moves.items(),
        ("store: append one record (SQLite)", sqlite),
        ("store: append one record (PostgreSQL)", postgres),
    ]
    print(
        f"\nLSTM hidden {args.hidden}, {size:,} parameters, M = {args.workers}, dense + adam; "
        f"medians / means over {args.rounds} rounds; {load_average()}"
    )
    print(f"{'part':<52}{'ms':>8}{'of round':>10}")
    print("-" * 70)
    for label, seconds in rows:
        print(f"{label:<52}{seconds * 1e3:>8.2f}{seconds / ray_round:>10.2f}")
    floor = max(compute) + coord
    print(
        f"\nserial floor (slowest replica + coordinator) = {floor * 1e3:.1f} ms; the Ray path "
        f"adds {(ray_round - floor) * 1e3:.1f} ms a round over it"
    )


if __name__ == "__main__":
    main()
