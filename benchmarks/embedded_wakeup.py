"""Embedded wake-up: submit -> running of `lagtrain server --embedded` (SQLite, its
own local Ray, one dispatcher in the process) with the submit route waking the
dispatcher, against the same server polling (LAGTRAIN_EMBEDDED_WAKEUP=false: the
dispatcher finds the job at its next poll, <= 1 s), in one run.

Per submission: `started_at` (the claim) minus the client's clock just before the
POST; each job runs to its end before the next submission, after a random pause, as
in benchmarks/submit_latency.py (whose measuring loop this reuses).

    .venv/bin/python benchmarks/embedded_wakeup.py [--submissions 20] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import (
        ProcessGroup,
        Service,
        load_average,
        spawn_server,
        workspace,
    )
    from benchmarks.submit_latency import lagtrain_latencies
else:  # run as `python benchmarks/embedded_wakeup.py`: benchmarks/ is on sys.path
    from local_stack import (
        ProcessGroup,
        Service,
        load_average,
        spawn_server,
        workspace,
    )
    from submit_latency import lagtrain_latencies

GOAL_S = 0.050
RAY_CPUS = 4


def embedded_run(
    workdir: Path, processes: ProcessGroup, *, wakeup: bool, args: argparse.Namespace
) -> list[tuple[float, float]]:
    token = "bench-embedded-" + "x" * 32
    state = workdir / ("wake" if wakeup else "poll")
    ray_tmp = tempfile.mkdtemp(prefix="lgw-", dir="/tmp")  # short: Ray's sockets live there
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAGTRAIN_", "RAY_"))}
    env.update(
        {
            "LAGTRAIN_DATABASE_URL": f"sqlite:///{state / 'lagtrain.db'}",
            "LAGTRAIN_ARTIFACTS_URL": str(state / "artifacts"),
            "LAGTRAIN_STATE_DIR": str(state),
            "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": token,
            "LAGTRAIN_EMBEDDED_RAY_CPUS": str(RAY_CPUS),
            "LAGTRAIN_EMBEDDED_WAKEUP": "true" if wakeup else "false",
            "PYTHONUNBUFFERED": "1",
            # A private temp dir: ray.init() without an address joins any local Ray it
            # finds under /tmp/ray (other work on the machine); this one starts its own.
            "RAY_TMPDIR": ray_tmp,
        }
    )
    mark = len(processes.procs)
    try:
        port = spawn_server(processes, env, "--embedded", what="the embedded server")
        service = Service(port=port, token=token, processes=processes)
        return lagtrain_latencies(service, args.submissions, args.warmup, random.Random(args.seed))
    finally:
        processes.stop(since=mark)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=20, help="measured per side")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured first submissions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random pauses")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 submissions per side")
    args = parser.parse_args()
    if args.quick:
        args.submissions, args.warmup = 3, 1
    rows: dict[str, list[tuple[float, float]]] = {}
    with workspace("lagtrain-embedded-") as (workdir, processes):
        for label, wakeup in (("polling (baseline)", False), ("wake-up", True)):
            print(f"{label} ...  {load_average()}", flush=True)
            rows[label] = embedded_run(workdir, processes, wakeup=wakeup, args=args)
    base = statistics.median(r for r, _ in rows["polling (baseline)"])
    print(
        f"\n{args.submissions} submissions per side after {args.warmup} warm-up; SQLite, embedded"
    )
    print(
        f"{'submit -> running, ms':<26}{'median':>8}{'p90':>8}{'max':>8}{'ratio':>8}"
        f"{'first metric':>14}"
    )
    print("-" * 72)
    for label, pairs in rows.items():
        running = sorted(r for r, _ in pairs)
        p90 = running[min(len(running) - 1, int(0.9 * len(running)))]
        first = statistics.median(m for _, m in pairs)
        print(
            f"{label:<26}{statistics.median(running) * 1e3:>8.1f}{p90 * 1e3:>8.1f}"
            f"{running[-1] * 1e3:>8.1f}{statistics.median(running) / base:>8.2f}"
            f"{first * 1e3:>14.0f}"
        )
    woken = statistics.median(r for r, _ in rows["wake-up"])
    print(
        f"\nwake-up median {woken * 1e3:.1f} ms (goal <= {GOAL_S * 1e3:.0f} ms: "
        f"{'met' if woken <= GOAL_S else 'MISSED'}); {load_average()}"
    )


if __name__ == "__main__":
    main()
