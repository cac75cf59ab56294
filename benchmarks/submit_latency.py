"""Submit latency: lagtrain's submit -> `running` with a warm dispatcher, against the
Ray Jobs API's submit -> entrypoint start, on the same private local Ray cluster in
one run.

lagtrain: POST /v1/jobs of a tiny job, then `started_at` (the claim that makes it
running) minus the client's clock just before the POST. Each job is waited to its
end before the next submission, so the dispatcher is idle and warm each time, and
each submission comes after a random pause (0-2 s): otherwise every submission
would land at the same phase of the dispatcher's poll. Measured once per store:
SQLite (the dispatcher polls every <= 1 s) and PostgreSQL (LISTEN/NOTIFY wakes it).
Submit -> first metric record (gang started, first round done) is shown beside it.

Ray Jobs: JobSubmissionClient.submit_job of `python -c` writing time.time() to a
file; latency = that timestamp minus the client's clock just before submit_job.

Ray 2.60 token auth: the head gets a fresh token; this process sets RAY_AUTH_MODE=
token and RAY_AUTH_TOKEN before importing Ray, which is what the Jobs SDK needs to
send the token (without RAY_AUTH_MODE=token it sends none and gets 401).

    .venv/bin/python benchmarks/submit_latency.py [--submissions 10] [--stores sqlite,postgresql]
        [--warm-pool 2] [--quick]

With a warm pool (the default here) the dispatcher's idle actors, torch imported,
run the tiny job's gang: submit -> first metric then has no process start-up in it.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.client import TERMINAL_STATUSES

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import (
        ProcessGroup,
        RayHead,
        Service,
        lagtrain_service,
        load_average,
        parse_time,
        postgres_database,
        ray_head,
        wait_for,
        workspace,
    )
else:  # run as `python benchmarks/submit_latency.py`: benchmarks/ is on sys.path
    from local_stack import (
        ProcessGroup,
        RayHead,
        Service,
        lagtrain_service,
        load_average,
        parse_time,
        postgres_database,
        ray_head,
        wait_for,
        workspace,
    )

GOAL = 0.2  # running / Ray Jobs start
GOAL_FIRST_METRIC = 1.0  # first metric / Ray Jobs start, on a warm cluster
RAY_CPUS = 4
JOB_DEADLINE_S = 600.0
MAX_PAUSE_S = 2.0
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

TINY_JOB: dict[str, Any] = {
    "name": "bench-submit-latency",
    "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
    "model": {"cell": "gru", "hidden_size": 8},
    "aggregation": {"strategy": "dense"},
    "distributed": {"workers": 1, "cpus_per_worker": 0.5},
    "schedule": {"rounds": 3, "batch_size": 16, "eval_every": 3, "checkpoint_every": 3},
}


def lagtrain_latencies(
    service: Service, count: int, warmup: int, pauses: random.Random
) -> list[tuple[float, float]]:
    """(submit -> running, submit -> first metric) in seconds, per measured submission."""
    out: list[tuple[float, float]] = []
    with service.client() as client:
        for index in range(warmup + count):
            time.sleep(pauses.uniform(0.0, MAX_PAUSE_S))
            before = time.time()
            job_id = int(client.submit(TINY_JOB)["id"])

            def terminal(job_id: int = job_id) -> dict[str, Any] | None:
                job = client.job(job_id)
                return job if job["status"] in TERMINAL_STATUSES else None

            job = wait_for(terminal, timeout=JOB_DEADLINE_S, what=f"job {job_id}", every=0.1)
            if job["status"] != "succeeded":
                print(service.log_tail("worker"))
                raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
            first_metric = parse_time(client.metrics(job_id)[0]["time"])
            if index >= warmup:
                out.append((parse_time(job["started_at"]) - before, first_metric - before))
    return out


def ray_jobs_latencies(
    head: RayHead, workdir: Path, count: int, warmup: int, pauses: random.Random
) -> list[float]:
    """Submit -> entrypoint start, in seconds, per measured submission."""
    # The SDK reads the auth mode and token from this process's environment, once.
    os.environ.update({k: head.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})
    from ray.job_submission import JobStatus, JobSubmissionClient

    assert head.dashboard_url is not None

    def connect() -> JobSubmissionClient | None:
        try:
            return JobSubmissionClient(head.dashboard_url)
        except (ConnectionError, RuntimeError):
            return None  # the dashboard is still starting

    client: JobSubmissionClient = wait_for(connect, timeout=120, what="the dashboard", every=0.5)
    finished = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    out: list[float] = []
    for index in range(warmup + count):
        marker = workdir / f"entrypoint-{index}.txt"
        code = f"import pathlib, time; pathlib.Path({str(marker)!r}).write_text(repr(time.time()))"
        entrypoint = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
        time.sleep(pauses.uniform(0.0, MAX_PAUSE_S))
        before = time.time()
        job_id = client.submit_job(entrypoint=entrypoint)
        wait_for(marker.exists, timeout=JOB_DEADLINE_S, what=f"Ray job {job_id}", every=0.02)

        def done(job_id: str = job_id) -> bool:
            return client.get_job_status(job_id) in finished

        wait_for(done, timeout=JOB_DEADLINE_S, what=f"Ray job {job_id} to end", every=0.1)
        status = client.get_job_status(job_id)
        if status != JobStatus.SUCCEEDED:
            raise RuntimeError(f"Ray job {job_id} {status}: {client.get_job_logs(job_id)}")
        if index >= warmup:
            # Retry briefly: the file may exist before its text is flushed.
            text = wait_for(marker.read_text, timeout=5, what="the timestamp", every=0.01)
            out.append(float(text) - before)
    return out


def row(label: str, values: list[float], baseline: float) -> str:
    median = statistics.median(values)
    return (
        f"{label:<44}{median:>8.2f}{statistics.mean(values):>8.2f}{min(values):>8.2f}"
        f"{max(values):>8.2f}{median / baseline:>8.2f}"
    )


def measure_store(
    store: str,
    args: argparse.Namespace,
    *,
    workdir: Path,
    processes: ProcessGroup,
    head: RayHead,
    pauses: random.Random,
) -> list[tuple[float, float]]:
    pool = {"LAGTRAIN_WARM_POOL_SIZE": str(args.warm_pool)}
    if store == "sqlite":
        with lagtrain_service(workdir, processes, ray=head, extra_env=pool) as service:
            return lagtrain_latencies(service, args.submissions, args.warmup, pauses)
    with (
        postgres_database(args.postgres_admin_url) as url,
        lagtrain_service(workdir, processes, ray=head, database_url=url, extra_env=pool) as service,
    ):
        return lagtrain_latencies(service, args.submissions, args.warmup, pauses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10, help="measured per side")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured first submissions")
    parser.add_argument(
        "--stores", default="sqlite,postgresql", help="lagtrain stores to measure, in order"
    )
    parser.add_argument(
        "--postgres-admin-url",
        default=POSTGRES_ADMIN_URL,
        help="a server where a temporary database may be created and dropped",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random pauses")
    parser.add_argument(
        "--warm-pool",
        type=int,
        default=2,
        help="the dispatcher's LAGTRAIN_WARM_POOL_SIZE (0: every gang starts its processes)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 submissions per side")
    args = parser.parse_args()
    if args.quick:
        args.submissions = 3
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(stores) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown stores {sorted(unknown)}")
    pauses = random.Random(args.seed)

    lagtrain: dict[str, list[tuple[float, float]]] = {}
    with (
        workspace("lagtrain-latency-") as (workdir, processes),
        ray_head(workdir, processes, num_cpus=RAY_CPUS, dashboard=True) as head,
    ):
        print(f"Ray head up; {load_average()}", flush=True)
        for store in stores:
            lagtrain[store] = measure_store(
                store, args, workdir=workdir, processes=processes, head=head, pauses=pauses
            )
            print(f"lagtrain on {store} done; {load_average()}", flush=True)
        ray_jobs = ray_jobs_latencies(head, workdir, args.submissions, args.warmup, pauses)
        print(f"Ray Jobs done; {load_average()}", flush=True)

    baseline = statistics.median(ray_jobs)
    print(
        f"\n{args.submissions} measured submissions per side after {args.warmup} warm-up, "
        f"random 0-{MAX_PAUSE_S:g} s pauses; tiny job (GRU 8, 1 worker x 0.5 CPU, 3 rounds); "
        f"warm pool {args.warm_pool}"
    )
    print(f"{'seconds':<44}{'median':>8}{'mean':>8}{'min':>8}{'max':>8}{'ratio':>8}")
    print("-" * 84)
    print(row("Ray Jobs: submit -> entrypoint start", ray_jobs, baseline))
    for store, pairs in lagtrain.items():
        print(row(f"lagtrain/{store}: submit -> running", [r for r, _ in pairs], baseline))
        print(row(f"lagtrain/{store}: submit -> first metric", [m for _, m in pairs], baseline))
    print()
    for store, pairs in lagtrain.items():
        ratio = statistics.median([r for r, _ in pairs]) / baseline
        verdict = "met" if ratio <= GOAL else "MISSED"
        print(f"lagtrain/{store} running / Ray Jobs start (medians) = {ratio:.3f}", end="")
        print(f"  (goal <= {GOAL}: {verdict})")
        first = statistics.median([m for _, m in pairs]) / baseline
        verdict = "met" if first <= GOAL_FIRST_METRIC else "MISSED"
        print(f"lagtrain/{store} first metric / Ray Jobs start (medians) = {first:.3f}", end="")
        print(f"  (goal <= {GOAL_FIRST_METRIC}: {verdict})")


if __name__ == "__main__":
    main()
