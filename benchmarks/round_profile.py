"""Where a round goes: the parts of one dense round of the 2-replica LSTM job (the
spec of benchmarks/ray_vs_gloo.py), each timed alone in one run, beside the Ray
path's whole round. The baseline for every ratio is that measured Ray round.

- compute: Replica.step of each replica in this process (one torch thread); the Ray
  path runs the replicas in parallel, so its floor is the slowest one;
- coordinator, in two parts: on the round's critical path (apply_round + the next
  begin_round: decode, aggregate, clip, Adam, finite check, plan) and after θ is
  sent (round_values: metrics, and the window's step where the rule reads no
  threshold), which the Ray driver overlaps with the replicas' compute;
- data plane: one round's exchange with one replica actor that computes nothing,
  through the driver's own code (workers.round_exchange over the gang's gloo group):
  control message and θ out, reply and a gradient-sized upload back; beside it, what
  the object-store path it replaced paid per replica and round (a Ray actor call,
  ray.put of θ read in an actor, an actor returning a gradient);
- store: one metric record appended and committed (SQLite file, PostgreSQL), what
  the dispatcher writes per round, off the round's critical path;
- CPU per round by process during the Ray round (this process's descendants: the
  local Ray it starts and the gang's actors), from /proc: less sensitive to other
  load on the machine than the wall times above.

    .venv/bin/python benchmarks/round_profile.py [--rounds 40] [--hidden 256] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import ray
import torch

from service.schemas.resolve import resolve
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.migrate import upgrade
from workers.dataplane import GangGroup, RendezvousHost
from workers.round_exchange import DriverExchange, largest_upload, serve_rounds
from workers.training.coordinator import Coordinator
from workers.training.replica import Replica, ReplicaReply
from workers.training.rounds import RoundPlan
from workers.training.tasks.registry import build_task

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import load_average, postgres_database
    from benchmarks.ray_vs_gloo import add_job_arguments, job_spec, per_round
else:  # run as `python benchmarks/round_profile.py`: benchmarks/ is on sys.path
    from local_stack import load_average, postgres_database
    from ray_vs_gloo import add_job_arguments, job_spec, per_round

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


def in_process(spec: dict[str, Any], rounds: int) -> tuple[list[float], float, float, int]:
    """Per-replica compute seconds/round, the coordinator's seconds/round on the
    critical path and after the send, parameter count."""
    torch.set_num_threads(1)
    resolved = resolve(spec)
    task = build_task(resolved, dtype=torch.float32, device="cpu", resolve_dataset=None)
    coordinator = Coordinator(resolved, dtype=torch.float32, device="cpu", task=task)
    replicas = [Replica(resolved, r, task=task) for r in range(coordinator.workers)]
    compute = [0.0] * len(replicas)
    critical = after = 0.0
    plan = coordinator.begin_round(0)
    for round_ in range(rounds):
        replies = []
        for rank in plan.ranks:
            started = time.perf_counter()
            replies.append(replicas[rank].step(plan.round, plan.params, plan.rhs))
            compute[rank] += time.perf_counter() - started
        started = time.perf_counter()
        coordinator.apply_round(round_, replies)
        following = coordinator.begin_round(round_ + 1)
        sent = time.perf_counter()
        coordinator.round_values(round_)
        critical += sent - started
        after += time.perf_counter() - sent
        plan = following
    size = int(plan.params.size)
    return [c / rounds for c in compute], critical / rounds, after / rounds, size


@ray.remote(num_cpus=0.5)
class Echo:
    def noop(self) -> None:
        return None

    def read(self, params: np.ndarray) -> float:
        return float(params[0])

    def gradient(self, size: int) -> np.ndarray:
        return np.ones(size, dtype=np.float32)


class _NoCompute:
    """A replica stand-in for serve_rounds: replies at once with a dense upload."""

    def __init__(self, size: int) -> None:
        self.gradient = np.ones(size, dtype=np.float32)

    def step(self, round_: int, params: np.ndarray, rhs: float) -> ReplicaReply:
        return ReplicaReply(0, self.gradient, 0.0, None, False, 1, 1)

    def prefetch(self, round_: int) -> None:
        pass  # dense: nothing to compute ahead


@ray.remote(num_cpus=0.5)
class Peer:
    """A gang member that runs serve_rounds with no compute (rank 1)."""

    def __init__(self) -> None:
        torch.set_num_threads(1)

    def join_group(self, rendezvous: Any, size: int) -> None:
        self.size = size
        self.group = GangGroup(rendezvous, 1)

    def serve(self, first_round: int) -> int:
        replica: Any = _NoCompute(self.size)
        return serve_rounds(self.group, replica, self.size, torch.float32, first_round=first_round)


def hops(size: int, repeats: int) -> dict[str, float]:
    echo = Echo.remote()  # type: ignore[attr-defined]  # @ray.remote adds .remote at run time
    ray.get(echo.noop.remote())
    params = np.ones(size, dtype=np.float32)
    old = {
        "object store path: actor call, no payload": timed(
            lambda: ray.get(echo.noop.remote()), repeats
        ),
        "object store path: ray.put(params) + read in an actor": timed(
            lambda: ray.get(echo.read.remote(ray.put(params))), repeats
        ),
        "object store path: actor returns a gradient": timed(
            lambda: ray.get(echo.gradient.remote(size)), repeats
        ),
    }
    peer = Peer.remote()  # type: ignore[attr-defined]  # @ray.remote adds .remote at run time
    host = RendezvousHost(2)
    joined = peer.join_group.remote(host.rendezvous, size)
    group = GangGroup(host.rendezvous, 0, store=host.store)
    ray.get(joined)
    exchange = DriverExchange(group, [peer], largest=largest_upload(size), first_round=0)
    counter = iter(range(10**9))
    row = timed(lambda: exchange.step(RoundPlan(next(counter), (0,), params, 0.0)), repeats)
    exchange.finish()
    return {"gloo data plane: one replica's round exchange (no compute)": row, **old}


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this process and its descendants, summed by name."""
    parents: dict[int, int] = {}
    stats: dict[int, tuple[str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            name = Path(f"/proc/{entry}/cmdline").read_text().split("\0")[0]
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        stats[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    mine, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in mine} - mine
        mine |= found
        grew = bool(found)
    totals: dict[str, float] = {}
    for pid in mine & set(stats):
        name, seconds = stats[pid]
        label = "this process" if pid == os.getpid() else Path(name).name or name
        totals[label] = totals.get(label, 0.0) + seconds
    return totals


def ray_round(spec: dict[str, Any], artifacts: Path, warmup: int) -> tuple[float, dict[str, float]]:
    """The Ray path's wall seconds per round, and CPU seconds per round by process
    over the same rounds (warmup+1 .. rounds-2, as ray_vs_gloo.per_round)."""
    from workers.ray_job import RecordEvent
    from workers.whole_run import run_on_ray

    stamps: list[float] = []
    marks: list[dict[str, float]] = []
    last = int(spec["schedule"]["rounds"]) - 2
    for event in run_on_ray(resolve(spec), job_key="profile", artifacts_url=str(artifacts)):
        if isinstance(event, RecordEvent):
            stamps.append(time.perf_counter())
            if event.round in (warmup, last):
                marks.append(_cpu_seconds())
    before, after = marks
    rounds = last - warmup
    cpu = {k: (v - before.get(k, 0.0)) / rounds for k, v in after.items()}
    return per_round(stamps, warmup), {k: v for k, v in cpu.items() if v > 2e-4}


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
    add_job_arguments(parser, rounds=40)
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 rounds, hidden 64")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.hidden, args.warmup = 12, 64, 3
    spec = job_spec(args)
    print(f"start; {load_average()}", flush=True)
    compute, coord, coord_after, size = in_process(spec, args.rounds)
    from workers.ray_runtime import connect

    connect(None, num_cpus=args.workers + 2)
    try:
        with tempfile.TemporaryDirectory(prefix="lagtrain-profile-") as tmp:
            whole, cpu = ray_round(spec, Path(tmp), args.warmup)
            sqlite = store_append(f"sqlite:///{Path(tmp) / 'store.db'}", args.rounds)
        moves = hops(size, args.rounds)
    finally:
        ray.shutdown()
    with postgres_database(POSTGRES_ADMIN_URL) as url:
        postgres = store_append(url, args.rounds)
    rows = [
        ("Ray path, whole round (baseline)", whole),
        *((f"compute, replica {rank} (in parallel on Ray)", c) for rank, c in enumerate(compute)),
        ("coordinator, critical path: aggregate + Adam + next plan", coord),
        ("coordinator, after the send: metrics (+ window, dense)", coord_after),
        *moves.items(),
        ("store: append one record (SQLite)", sqlite),
        ("store: append one record (PostgreSQL)", postgres),
    ]
    print(
        f"\nLSTM hidden {args.hidden}, {size:,} parameters, M = {args.workers}, dense + adam; "
        f"medians / means over {args.rounds} rounds; {load_average()}"
    )
    print(f"{'part':<64}{'ms':>8}{'of round':>10}")
    print("-" * 82)
    for label, seconds in rows:
        print(f"{label:<64}{seconds * 1e3:>8.2f}{seconds / whole:>10.2f}")
    floor = max(compute) + coord
    print(
        f"\nserial floor (slowest replica + coordinator's critical path) = {floor * 1e3:.1f} ms; "
        f"the Ray path adds {(whole - floor) * 1e3:.1f} ms a round over it"
    )
    print(f"\nCPU ms per Ray round, by process (total {sum(cpu.values()) * 1e3:.1f}):")
    for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"  {name[:60]:<62}{seconds * 1e3:>8.2f}")


if __name__ == "__main__":
    main()
