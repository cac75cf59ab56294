"""Ray vs gloo: per-round time of dense data-parallel training on lagtrain's Ray path
(run_on_ray: a coordinator actor and M replica actors that Ray places and supervises,
parameters out and gradients back over the gang's own gloo group, workers.dataplane)
against the same M Replica objects under torch.distributed gloo all-reduce, measured
in one run.

Same spec, same Replica code (workers/training/replica.py), same optimizer step
(clip_by_norm, then optimizer_step), M processes with one torch thread each. The
gloo ranks each do: replica.step -> all_reduce(sum) / M -> clip -> Adam, i.e. what
plain DDP would do, without a coordinator. Per-round time is the wall time between
completed rounds after --warmup rounds, leaving out the last round (it evaluates
and checkpoints on the Ray path). Repeats alternate Ray and gloo.

    .venv/bin/python benchmarks/ray_vs_gloo.py [--rounds 60] [--hidden 256] [--quick]
    .venv/bin/python benchmarks/ray_vs_gloo.py --gloo-only --repeats 5   # teardown check

The gloo ranks tear their group down in step (barrier, destroy, then a process
barrier) so that no rank exits under another one's teardown.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from service.schemas.gang import COORDINATOR_BUNDLE
from service.schemas.resolve import resolve
from workers.aggregation.common import clip_by_norm
from workers.training.flat import flat_params, from_numpy, to_numpy
from workers.training.optim import OptimizerState, optimizer_step
from workers.training.replica import Replica

GOAL = 1.15
GLOO_TIMEOUT_S = 300
NEVER = 10_000_000  # eval/checkpoint interval that only the last round hits


def add_job_arguments(parser: argparse.ArgumentParser, *, rounds: int) -> None:
    """The options job_spec reads, and the rounds to time: one CLI for the round
    benchmarks (this one, round_profile, driver_cpu)."""
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--warmup", type=int, default=5, help="untimed first rounds")
    parser.add_argument("--hidden", type=int, default=256, help="LSTM hidden size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="M, the replicas")


def job_spec(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": "bench-ray-vs-gloo",
        "task": {"kind": "char_lm", "max_chars": 200_000, "seq_len": args.seq_len},
        "model": {"cell": "lstm", "hidden_size": args.hidden},
        "optimizer": {"name": "adam", "lr": 0.002},
        "aggregation": {"strategy": "dense"},
        "distributed": {"workers": args.workers, "split": "non_iid", "cpus_per_worker": 1},
        "schedule": {
            "rounds": args.rounds,
            "batch_size": args.batch,
            "eval_every": NEVER,
            "checkpoint_every": NEVER,
            "seed": 0,
        },
    }


def per_round(stamps: list[float], warmup: int) -> float:
    """Mean seconds per round over rounds warmup+1 .. rounds-2 (round completion times)."""
    last = len(stamps) - 2
    if last <= warmup:
        raise ValueError(f"need more than {warmup + 2} rounds to time")
    return (stamps[last] - stamps[warmup]) / (last - warmup)


def ray_round_times(spec: dict[str, Any], artifacts: Path) -> list[float]:
    from workers.ray_job import RecordEvent
    from workers.whole_run import run_on_ray

    stamps: list[float] = []
    for event in run_on_ray(resolve(spec), job_key="bench", artifacts_url=str(artifacts)):
        if isinstance(event, RecordEvent):
            stamps.append(time.perf_counter())
    return stamps


def gloo_rank(rank: int, spec: dict[str, Any], world: int, port: int, out: str, done: Any) -> None:
    """One gloo process: the same Replica as a Ray replica actor, one torch thread."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=GLOO_TIMEOUT_S),
    )
    try:
        parsed = resolve(spec)
        replica = Replica(parsed, rank)
        config = parsed.optimizer
        state = OptimizerState()
        params = flat_params(replica.model)
        dist.broadcast(params, src=0)
        clip = parsed.optimizer.clip_grad_norm
        dist.barrier()
        stamps: list[float] = []
        for round_ in range(parsed.schedule.rounds):
            reply = replica.step(round_, to_numpy(params), 0.0)
            assert reply.upload is not None
            grad = from_numpy(reply.upload, dtype=torch.float32, device="cpu")
            dist.all_reduce(grad, op=dist.ReduceOp.SUM)
            direction = clip_by_norm(grad / world, clip)
            params, state = optimizer_step(config, state, params, direction)
            stamps.append(time.perf_counter())
        if rank == 0:
            Path(out).write_text(json.dumps(stamps))
        dist.barrier()  # nobody tears down while another rank still reduces
    finally:
        dist.destroy_process_group()
    # Rank 0 hosts the rendezvous store: it must outlive every rank's teardown, or a
    # rank still destroying its group aborts ("terminate called without an active
    # exception", exit -6). All ranks leave together once every group is destroyed.
    done.wait(timeout=GLOO_TIMEOUT_S)


def gloo_round_times(spec: dict[str, Any], workdir: Path) -> list[float]:
    out = workdir / "gloo-stamps.json"
    out.unlink(missing_ok=True)
    port = _free_port()
    world = int(spec["distributed"]["workers"])
    # Same thread budget as a Ray actor, also for the intra-op pool's start-up.
    os.environ["OMP_NUM_THREADS"] = "1"
    context = multiprocessing.get_context("spawn")
    done = context.Barrier(world)
    ranks = [
        context.Process(target=gloo_rank, args=(rank, spec, world, port, str(out), done))
        for rank in range(world)
    ]
    for process in ranks:
        process.start()
    deadline = time.monotonic() + GLOO_TIMEOUT_S + 600
    for process in ranks:
        process.join(timeout=max(1.0, deadline - time.monotonic()))
    stuck = [p for p in ranks if p.is_alive()]
    for process in stuck:
        process.kill()
        process.join()
    failed = [p.exitcode for p in ranks if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"gloo ranks exited with {failed}")
    stamps: list[float] = json.loads(out.read_text())
    return stamps


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_job_arguments(parser, rounds=60)
    parser.add_argument("--repeats", type=int, default=2, help="alternating Ray/gloo pairs")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 15 rounds, hidden 64, one pair"
    )
    parser.add_argument(
        "--gloo-only",
        action="store_true",
        help="only the gloo side, --repeats times in a row (the clean-teardown check)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.hidden, args.warmup = 15, 64, 3
        args.repeats = args.repeats if args.gloo_only else 1
    spec = job_spec(args)
    if args.gloo_only:
        with tempfile.TemporaryDirectory(prefix="lagtrain-gloo-") as tmp:
            for repeat in range(args.repeats):
                ms = per_round(gloo_round_times(spec, Path(tmp)), args.warmup) * 1e3
                print(
                    f"gloo run {repeat + 1}/{args.repeats}: {ms:.1f} ms/round, clean exit "
                    f"{_load()}",
                    flush=True,
                )
        return

    import ray

    from workers.ray_runtime import connect

    connect(None, num_cpus=math.ceil(COORDINATOR_BUNDLE["CPU"] + args.workers))
    ray_times: list[float] = []
    gloo_times: list[float] = []
    params = 0
    try:
        with tempfile.TemporaryDirectory(prefix="lagtrain-ray-vs-gloo-") as tmp:
            workdir = Path(tmp)
            for repeat in range(args.repeats):
                print(f"repeat {repeat + 1}: Ray ...  {_load()}", flush=True)
                ray_times.append(per_round(ray_round_times(spec, workdir), args.warmup))
                print(f"repeat {repeat + 1}: gloo ... {_load()}", flush=True)
                gloo_times.append(per_round(gloo_round_times(spec, workdir), args.warmup))
            params = flat_params(Replica(resolve(spec), 0).model).numel()
    finally:
        ray.shutdown()

    ray_ms, gloo_ms = statistics.median(ray_times) * 1e3, statistics.median(gloo_times) * 1e3
    print(
        f"\nchar_lm LSTM hidden {args.hidden}, {params:,} parameters, batch {args.batch} x "
        f"{args.seq_len}, dense + adam, M = {args.workers}, 1 torch thread per replica; "
        f"{args.rounds} rounds, first {args.warmup} and the last untimed; "
        f"median of {args.repeats}"
    )
    print(f"{'path':<46}{'ms/round':>10}{'ratio':>8}   each repeat (ms)")
    print("-" * 82)
    for label, ms, runs in (
        ("gloo all-reduce (torch.distributed)", gloo_ms, gloo_times),
        ("Ray actors (run_on_ray)", ray_ms, ray_times),
    ):
        each = ", ".join(f"{t * 1e3:.0f}" for t in runs)
        print(f"{label:<46}{ms:>10.1f}{ms / gloo_ms:>8.2f}   {each}")
    ratio = ray_ms / gloo_ms
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(f"\nRay / gloo per round = {ratio:.3f}  (goal <= {GOAL}: {verdict})")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"(load {one:.1f} / {five:.1f})"


if __name__ == "__main__":
    main()
