"""The Ray driver's CPU per round, in figures the machine's load moves little (CPU
time, not wall time), for the ray_vs_gloo job (dense + Adam, LSTM, M = 2):

- in process, one torch thread: the coordinator's CPU per round on the round's
  critical path (replies in -> the next round's θ encoded) and after the send
  (round_values), over `--rounds` rounds;
- on Ray: CPU and minor page faults per round of each thread of the driver actor and
  of the replicas, from /proc, over rounds warmup+1 .. rounds-2.

Runs against whichever tree is on PYTHONPATH (a tree from before the split round
has no `apply_round`: all of its coordinator time is on the critical path):

    .venv/bin/python benchmarks/driver_cpu.py [--hidden 256] [--rounds 40]
    PYTHONPATH=/path/to/other/tree .venv/bin/python benchmarks/driver_cpu.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from service.schemas.resolve import resolve
from workers.dataplane import WireArray, encode
from workers.training.coordinator import Coordinator
from workers.training.replica import Replica
from workers.training.tasks.registry import build_task

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import load_average
    from benchmarks.ray_vs_gloo import add_job_arguments, job_spec
else:  # run as `python benchmarks/driver_cpu.py`: benchmarks/ is on sys.path
    from local_stack import load_average
    from ray_vs_gloo import add_job_arguments, job_spec

TICK = os.sysconf("SC_CLK_TCK")
ACTORS = ("ray::JobDriver", "ray::ReplicaHost")


def coordinator_cpu(spec: dict[str, Any], rounds: int) -> tuple[float, float]:
    """CPU seconds per round on the critical path and after the send."""
    torch.set_num_threads(1)
    resolved = resolve({**spec, "schedule": {**spec["schedule"], "rounds": 10**6}})
    task = build_task(resolved, dtype=torch.float32, device="cpu", resolve_dataset=None)
    coordinator: Any = Coordinator(resolved, dtype=torch.float32, task=task)
    replicas = [Replica(resolved, r, task=task) for r in range(coordinator.workers)]
    plan = coordinator.begin_round(0)
    replies = [replicas[r].step(0, plan.params, plan.rhs) for r in plan.ranks]
    split = hasattr(coordinator, "apply_round")
    critical = after = 0.0
    for round_ in range(rounds + 10):  # the same replies every round: compute is not timed
        started = time.process_time()
        if split:
            coordinator.apply_round(round_, replies)
        else:
            coordinator.end_round(round_, replies)
        plan = coordinator.begin_round(round_ + 1)
        encode((plan.round, plan.rhs, WireArray.of(plan.params)), plan.params)
        sent = time.process_time()
        if split:
            coordinator.round_values(round_)
        if round_ >= 10:
            critical += sent - started
            after += time.process_time() - sent
    return critical / rounds, after / rounds


def _threads() -> dict[tuple[str, str, str], tuple[float, int]]:
    """(actor, tid, thread name) -> (CPU seconds, minor faults) of the gang's actors."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_text().split("\0")[0]
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        actor = next((a for a in ACTORS if command.startswith(a)), None)
        if actor is None:
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / TICK
            out[(actor, tid, name)] = (cpu, int(fields[7]))
    return out


def ray_threads(spec: dict[str, Any], warmup: int) -> dict[tuple[str, str], tuple[float, float]]:
    from workers.ray_job import RecordEvent
    from workers.ray_runtime import connect
    from workers.whole_run import run_on_ray

    connect(None, num_cpus=int(spec["distributed"]["workers"]) + 2)
    last = int(spec["schedule"]["rounds"]) - 2
    marks = []
    with tempfile.TemporaryDirectory(prefix="lagtrain-driver-cpu-") as tmp:
        for event in run_on_ray(resolve(spec), job_key="driver-cpu", artifacts_url=tmp):
            if isinstance(event, RecordEvent) and event.round in (warmup, last):
                marks.append(_threads())
    before, after = marks
    rounds = last - warmup
    rows: dict[tuple[str, str], tuple[float, float]] = {}
    for (actor, tid, name), (cpu, faults) in after.items():
        cpu0, faults0 = before.get((actor, tid, name), (0.0, 0))
        total, flt = rows.get((actor, name), (0.0, 0.0))
        rows[(actor, name)] = (total + (cpu - cpu0) / rounds, flt + (faults - faults0) / rounds)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_job_arguments(parser, rounds=40)
    args = parser.parse_args()
    spec = job_spec(args)
    print(f"start; {load_average()}", flush=True)
    critical, after = coordinator_cpu(spec, 10 * args.rounds)
    print(
        f"coordinator CPU per round, one thread: critical path {critical * 1e3:.2f} ms, "
        f"after the send {after * 1e3:.2f} ms"
    )
    rows = ray_threads(spec, args.warmup)
    print(f"\nRay path, CPU ms and minor faults per round by thread; {load_average()}")
    totals: dict[str, float] = {}
    for (actor, name), (cpu, faults) in sorted(rows.items(), key=lambda item: -item[1][0]):
        totals[actor] = totals.get(actor, 0.0) + cpu
        if cpu > 5e-5 or faults >= 1:
            print(f"  {actor:<18}{name:<24}{cpu * 1e3:>8.2f} ms{faults:>10.1f} faults")
    for actor, cpu in totals.items():
        print(f"{actor} total {cpu * 1e3:.2f} ms per round")


if __name__ == "__main__":
    main()
