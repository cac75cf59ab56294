"""Service overhead: one job's wall time through the whole service (HTTP submit ->
SQLite queue -> `lagtrain worker` -> Ray gang -> metrics in the store ->
`succeeded`) divided by the in-process reference runner's wall time on the same
spec, both measured in this one run.

The service side starts a private Ray head (`ray start --head --block`, its own
ports and token), a real `lagtrain server` and `lagtrain worker` over a temporary
SQLite file, waits until the dispatcher is warm, and then times submit -> succeeded
as the client sees it (polling every --poll seconds). Afterwards, on the same idle
Ray, the same spec runs once more through run_on_ray in this process (Ray path
without HTTP, store or dispatcher), which separates the service's own cost from
the execution path's. The reference runs before and after the service (A-B-A) and
the ratio uses their mean, so a change in the machine's load during the run shows
up in the table instead of silently in the ratio.

The reference calls workers.training.runner.run_reference with --reference-threads
torch threads: 1 by default, the thread count each replica actor gets. (On this
shared 2-core machine 2 threads made the in-process run 5-15x slower than 1 as
soon as anything else ran: that baseline measured oversubscription, not lagtrain.)

    .venv/bin/python benchmarks/service_overhead.py [--rounds 400] [--hidden 256] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from service.client import TERMINAL_STATUSES
from service.schemas.gang import COORDINATOR_BUNDLE
from service.schemas.resolve import resolve
from workers.training.runner import run_reference

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import (
        RayHead,
        lagtrain_service,
        load_average,
        parse_time,
        ray_head,
        wait_for,
        workspace,
    )
else:  # run as `python benchmarks/service_overhead.py`: benchmarks/ is on sys.path
    from local_stack import (
        RayHead,
        lagtrain_service,
        load_average,
        parse_time,
        ray_head,
        wait_for,
        workspace,
    )

GOAL = 0.75


def job_spec(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": "bench-service-overhead",
        "task": {"kind": "char_lm", "max_chars": args.max_chars, "seq_len": 64},
        "model": {"cell": "lstm", "hidden_size": args.hidden},
        "optimizer": {"name": "adam", "lr": 0.002},
        "aggregation": {"strategy": args.strategy},
        "distributed": {"workers": args.workers, "split": "non_iid", "cpus_per_worker": 1},
        "schedule": {
            "rounds": args.rounds,
            "batch_size": 32,
            "eval_every": 50,
            "checkpoint_every": 100,
            "seed": 0,
        },
    }


@dataclass(frozen=True)
class ServiceRun:
    wall_s: float  # client: before POST -> `succeeded` seen
    queued_s: float  # created_at -> started_at (claim)
    gang_start_s: float  # started_at -> first metric record stored
    training_s: float  # first -> last metric record stored
    finish_s: float  # last metric record -> finished_at
    rounds: int
    status: str
    ray_direct_s: float | None  # run_on_ray in this process, same cluster, afterwards


def time_reference(spec: dict[str, Any], threads: int) -> float:
    torch.set_num_threads(threads)
    parsed = resolve(spec)
    started = time.perf_counter()
    run_reference(parsed, on_record=lambda _round, _values: None)
    return time.perf_counter() - started


def time_ray_direct(spec: dict[str, Any], head: RayHead, artifacts: str) -> float:
    """The Ray execution path alone: run_on_ray from this process on `head`."""
    # An explicit address never turns Ray's token mode on by itself (docs/cluster.md).
    os.environ.update({k: head.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})
    import ray

    from workers.ray_runtime import connect
    from workers.whole_run import run_on_ray

    connect(head.address)
    try:
        started = time.perf_counter()
        for _ in run_on_ray(resolve(spec), job_key="bench-direct", artifacts_url=artifacts):
            pass
        return time.perf_counter() - started
    finally:
        ray.shutdown()


def wait_for_warm_pool(service: Any, size: int) -> None:
    """Submit only once the dispatcher reports its pool's actors started (torch
    imported, warmed up): a job that arrives earlier waits for their start-up, which
    is what the pool exists to take off a job's path (a long-running dispatcher's
    pool is warm). The wait is printed, not timed into the job."""
    began = time.time()

    def started() -> bool:
        pools = [d["resources"].get("warm_pool", {}) for d in service.dispatchers()]
        return any(pool.get("started", 0) >= size for pool in pools)

    wait_for(started, timeout=600, what="the warm pool", every=0.2)
    print(f"warm pool of {size} started {time.time() - began:.1f} s after the dispatcher")


def time_service(
    spec: dict[str, Any], *, ray_cpus: int, poll: float, ray_direct: bool, warm_pool: int
) -> ServiceRun:
    with (
        workspace("lagtrain-overhead-") as (workdir, processes),
        ray_head(workdir, processes, num_cpus=ray_cpus, dashboard=False) as head,
    ):
        pool = {"LAGTRAIN_WARM_POOL_SIZE": str(warm_pool)}
        with (
            lagtrain_service(workdir, processes, ray=head, extra_env=pool) as service,
            service.client() as client,
        ):
            if warm_pool:
                wait_for_warm_pool(service, warm_pool)
            started = time.time()
            job_id = int(client.submit(spec)["id"])

            def terminal() -> dict[str, Any] | None:
                job = client.job(job_id)
                return job if job["status"] in TERMINAL_STATUSES else None

            job = wait_for(terminal, timeout=24 * 3600, what="the job", every=poll)
            wall = time.time() - started
            if job["status"] != "succeeded":
                print(service.log_tail("worker"))
            records = client.metrics(job_id)
        print(f"before Ray path alone: {load_average()}", flush=True)
        direct = time_ray_direct(spec, head, str(workdir / "direct")) if ray_direct else None
        created, run_at = parse_time(job["created_at"]), parse_time(job["started_at"])
        first, last = parse_time(records[0]["time"]), parse_time(records[-1]["time"])
        return ServiceRun(
            wall_s=wall,
            queued_s=run_at - created,
            gang_start_s=first - run_at,
            training_s=last - first,
            finish_s=parse_time(job["finished_at"]) - last,
            rounds=len(records),
            status=str(job["status"]),
            ray_direct_s=direct,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--hidden", type=int, default=256, help="LSTM hidden size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-chars", type=int, default=500_000, help="corpus characters")
    parser.add_argument("--strategy", default="dense", help="aggregation.strategy")
    parser.add_argument(
        "--reference-threads", type=int, default=1, help="torch threads of the reference run"
    )
    parser.add_argument("--ray-cpus", type=int, default=None, help="logical CPUs of the Ray head")
    parser.add_argument("--poll", type=float, default=0.2, help="client poll interval, s")
    parser.add_argument(
        "--no-ray-direct", action="store_true", help="skip the run_on_ray-only comparison"
    )
    parser.add_argument(
        "--warm-pool",
        type=int,
        default=0,
        help="the dispatcher's LAGTRAIN_WARM_POOL_SIZE (prewarmed at its start)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 20 rounds, hidden 64, 200k characters"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.hidden, args.max_chars = 20, 64, 200_000
    spec = job_spec(args)
    threads = args.reference_threads
    ray_cpus = args.ray_cpus or math.ceil(COORDINATOR_BUNDLE["CPU"] + args.workers * 1)

    print(
        f"char_lm LSTM hidden {args.hidden}, {args.workers} workers x 1 CPU, {args.strategy}, "
        f"batch 32 x 64, {args.rounds} rounds, eval every 50, checkpoint every 100",
        flush=True,
    )
    print(f"before reference: {load_average()}", flush=True)
    reference_before = time_reference(spec, threads)
    print(f"before service:   {load_average()}", flush=True)
    run = time_service(
        spec,
        ray_cpus=ray_cpus,
        poll=args.poll,
        ray_direct=not args.no_ray_direct,
        warm_pool=args.warm_pool,
    )
    print(f"before reference: {load_average()}", flush=True)
    reference_after = time_reference(spec, threads)
    print(f"after:            {load_average()}")
    reference = (reference_before + reference_after) / 2
    if run.status != "succeeded" or run.rounds != args.rounds:
        raise SystemExit(f"service job ended {run.status} after {run.rounds} rounds")

    ratio = run.wall_s / reference
    print()
    print(f"{'path':<44}{'wall s':>9}{'ratio':>8}")
    print("-" * 61)
    label = f"reference in-process ({threads} torch thread{'s' if threads > 1 else ''})"
    print(f"{label + ', mean':<44}{reference:>9.1f}{1.0:>8.2f}")
    for when, seconds in (("before", reference_before), ("after", reference_after)):
        print(f"{f'  run {when} the service':<44}{seconds:>9.1f}{seconds / reference:>8.2f}")
    if run.ray_direct_s is not None:
        direct, label = run.ray_direct_s, "Ray path alone (run_on_ray, no service)"
        print(f"{label:<44}{direct:>9.1f}{direct / reference:>8.2f}")
    print(f"{'service: submit -> succeeded':<44}{run.wall_s:>9.1f}{ratio:>8.2f}")
    for label, seconds in (
        ("  queued (created -> claimed)", run.queued_s),
        ("  gang start (claimed -> first metric)", run.gang_start_s),
        ("  training (first -> last metric)", run.training_s),
        ("  finish (last metric -> succeeded)", run.finish_s),
    ):
        # Two decimals: with a warm pool these phases are tenths of a second.
        print(f"{label:<44}{seconds:>9.2f}{seconds / reference:>8.3f}")
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(f"\nservice / reference = {ratio:.3f}  (goal <= {GOAL:.2f}: {verdict})")
    if run.ray_direct_s is not None:
        print(f"service / Ray path alone = {run.wall_s / run.ray_direct_s:.3f}")


if __name__ == "__main__":
    main()
