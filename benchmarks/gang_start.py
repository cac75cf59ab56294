"""Gang start, phase by phase: how long a job's gang takes from "start" to its first
metric event, on a local Ray, for the service_overhead spec (char_lm, LSTM 256,
500 k characters, 2 replicas x 1 CPU) cut to a few rounds.

Four starts, each printed with RayJob's phases (placement, taking pooled actors,
the actors becoming replica/driver, resume, first event) and the driver's own
(replicas ready, gloo group, first round) and each pooled actor's (task build,
role build, whether the task came from its cache):

  fresh      no pool: three new actors (each imports torch)
  cold pool  a pool prewarmed just before the job (what service_overhead measured:
             its job arrived while the pooled actors were still starting)
  warm pool  the same, after every pooled actor has started
  cached     a second job on the warm pool: the actors keep the task they built

    .venv/bin/python benchmarks/gang_start.py [--rounds 3] [--max-chars 500000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import ray

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from workers.ray_job import RayJob
from workers.ray_runtime import connect
from workers.warm_pool import WarmPool


def spec_for(args: argparse.Namespace) -> ResolvedSpec:
    return resolve(
        {
            "task": {"kind": "char_lm", "max_chars": args.max_chars, "seq_len": 64},
            "model": {"cell": "lstm", "hidden_size": args.hidden},
            "optimizer": {"name": "adam", "lr": 0.002},
            "aggregation": {"strategy": "dense"},
            "distributed": {"workers": 2, "split": "non_iid", "cpus_per_worker": 1},
            "schedule": {"rounds": args.rounds, "batch_size": 32, "seed": 0},
        }
    )


def one_start(spec: ResolvedSpec, pool: WarmPool | None, artifacts: str, key: str) -> None:
    job = RayJob(spec, job_key=key, artifacts_url=artifacts, pool=pool)
    started = time.perf_counter()
    try:
        job.start(ready_timeout_s=300)
        events = job.events()
        next(events)
        first = time.perf_counter() - started
        driver = ray.get(job.driver.run_start_phases.remote())
        for _ in events:
            pass
    finally:
        job.stop()
    phases = " ".join(f"{k} {v:.3f}" for k, v in job.phases.items())
    print(f"  start -> first event {first:.3f} s: {phases}")
    print("  driver: " + " ".join(f"{k} {v:.3f}" for k, v in driver.items()))
    for index, actor in enumerate(job.actor_phases):
        role = "driver " if index == len(job.actor_phases) - 1 else f"replica{index}"
        print(f"  {role}: " + " ".join(f"{k} {v:.3f}" for k, v in actor.items()))


def wait_started(pool: WarmPool, count: int) -> None:
    deadline = time.monotonic() + 300
    while pool.started_count() < count:
        if time.monotonic() > deadline:
            raise SystemExit("the pool did not start")
        time.sleep(0.1)  # a benchmark's poll, not a test's synchronisation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--max-chars", type=int, default=500_000)
    args = parser.parse_args()
    spec = spec_for(args)
    connect(None, num_cpus=3)
    node = ray.get_runtime_context().get_node_id()
    print(f"load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as artifacts:
        print("fresh (no pool)")
        one_start(spec, None, artifacts, "fresh")
        pool = WarmPool(size=3, idle_seconds=3600)
        try:
            pool.prewarm(node)
            print("cold pool (prewarmed just now)")
            one_start(spec, pool, artifacts, "cold")
            pool.close()
            pool.prewarm(node)
            wait_started(pool, 3)
            print("warm pool (every actor started)")
            one_start(spec, pool, artifacts, "warm")
            wait_started(pool, 3)
            print("cached (second job on the same warm actors)")
            one_start(spec, pool, artifacts, "cached")
        finally:
            pool.close()
    print(f"load average {os.getloadavg()}")
    ray.shutdown()


if __name__ == "__main__":
    main()
