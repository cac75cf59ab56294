"""Bayesian optimisation against random search, through the service: the same sweep
(CADA2 = lasg_wk2 + AMSGrad on non-IID digits, 4 replicas; `aggregation.xi` and
`optimizer.lr` on log scales; objective: validation accuracy after a fixed number of
rounds; 24 trials, 2 in parallel) with the `gp`, `tpe` and `random` samplers and
several seeds, each submitted to a real `lagtrain server` + `lagtrain worker` on a
private Ray head. Prints the best accuracy after 8, 16 and 24 trials per sampler and
seed, how many trials each model-based sampler needed to reach random search's
24-trial best (goal: <= 12), and the Pareto front of accuracy against bytes
uploaded from one two-objective `gp` sweep.

Accuracies and bytes are deterministic for a given trial spec; which points a
sampler asks can depend on which of two parallel trials finished first. Wall times
depend on the machine's load (printed), and so does the per-trial breakdown printed
beside each sweep (queued, gang start, training, finish, the controller's gap). The
worker keeps a warm pool of one gang per trial slot (LAGTRAIN_WARM_POOL_SIZE): without
it each trial's five actors start afresh, which dominated a trial's time here.

    .venv/bin/python benchmarks/sweep_bo.py                 # the full comparison
    .venv/bin/python benchmarks/sweep_bo.py --quick         # smoke check (minutes)
    .venv/bin/python benchmarks/sweep_bo.py --samplers gp --seeds 0 --no-front
    .venv/bin/python benchmarks/sweep_bo.py --concurrent 3   # 3 sweeps at once
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.client import TERMINAL_STATUSES, Client

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import (
        lagtrain_service,
        load_average,
        parse_time,
        ray_head,
        workspace,
    )
else:  # run as `python benchmarks/sweep_bo.py`: benchmarks/ is on sys.path
    from local_stack import lagtrain_service, load_average, parse_time, ray_head, workspace

CHECKPOINTS = (8, 16, 24)
GOAL_TRIALS = 12
# The scale-free skip test (issue 12; default xi = 1): at xi = 0.01 every replica
# uploads every round (dense-like); at xi = 100 replicas fall silent after a few
# rounds unless lr is near its sweet spot, so the space holds both corners.
XI_LOW, XI_HIGH = 0.01, 100.0
ROUNDS = 100
PARALLEL = 2
CONCURRENT = 1
ACTORS_PER_TRIAL = 5  # the gang: a coordinator and 4 replicas
CPUS_PER_TRIAL = 3  # logical: 4 replicas x 0.5 CPU + the coordinator
PHASES = ("queued", "start", "train", "finish", "gap")


def sweep_spec(
    sampler: str, seed: int, *, trials: int, rounds: int, two_objectives: bool
) -> dict[str, Any]:
    objectives = [{"metric": "val_accuracy", "direction": "maximize"}]
    if two_objectives:
        objectives.append({"metric": "bytes_up_total", "direction": "minimize"})
    return {
        "name": f"bo-{sampler}-{seed}{'-front' if two_objectives else ''}",
        "base": {
            "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
            "model": {"cell": "lstm", "hidden_size": 32},
            "aggregation": {"strategy": "lasg_wk2"},
            "distributed": {"workers": 4, "split": "non_iid", "cpus_per_worker": 0.5},
            "schedule": {
                "rounds": rounds,
                "batch_size": 32,
                "eval_every": rounds,
                "checkpoint_every": rounds,
                "seed": 0,
            },
        },
        "parameters": {
            "aggregation.xi": {"type": "float", "low": XI_LOW, "high": XI_HIGH, "log": True},
            "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        },
        "objectives": objectives,
        "trials": trials,
        "parallel": PARALLEL,
        "sampler": sampler,
        "seed": seed,
    }


@dataclass
class Run:
    """One sweep of the comparison: submitted when a slot frees, polled until done."""

    sampler: str
    seed: int
    two_objectives: bool
    sweep_id: int = 0
    started: float = 0.0


def run_sweeps(
    client: Client, runs: list[Run], spec_of: Any, *, concurrent: int, timeout: float
) -> Iterator[tuple[Run, dict[str, Any], float]]:
    """Keep `concurrent` sweeps in flight (each keeps its own `parallel` trials) and
    yield (run, finished sweep, wall seconds) as each ends."""
    waiting = list(runs)
    active: list[Run] = []
    while waiting or active:
        while waiting and len(active) < concurrent:
            run = waiting.pop(0)
            run.sweep_id = int(client.submit_sweep(spec_of(run))["id"])
            run.started = time.monotonic()
            active.append(run)
        time.sleep(2.0)  # a benchmark's poll interval, not test synchronisation
        for run in list(active):
            sweep = client.sweep(run.sweep_id)
            wall = time.monotonic() - run.started
            if sweep["status"] in TERMINAL_STATUSES:
                active.remove(run)
                if sweep["status"] != "succeeded":
                    raise RuntimeError(
                        f"sweep {sweep['name']} ended {sweep['status']}: {sweep['error']}"
                    )
                yield run, sweep, wall
            elif wall > timeout:
                raise TimeoutError(
                    f"sweep {sweep['name']} still {sweep['status']} after {wall:.0f} s"
                )


def phases(client: Client, sweep: dict[str, Any]) -> dict[str, float]:
    """Median seconds per trial in each phase, from the jobs' timestamps and metric
    records: queued (created → started), start (started → first round recorded: gang
    start-up and data), train (first → last round), finish (last round → finished:
    final evaluation, checkpoint, teardown), and the controller's gap (a trial's end →
    the next trial's creation: sweep poll, sampler ask, submit)."""
    rows = []
    for trial in sorted(sweep["trials"], key=lambda t: t["number"]):
        job = client.job(int(trial["job_id"]))
        records = client.metrics(int(trial["job_id"]))
        if not (job["started_at"] and job["finished_at"] and records):
            continue
        created, began, ended = (
            parse_time(job[k]) for k in ("created_at", "started_at", "finished_at")
        )
        first, last = parse_time(records[0]["time"]), parse_time(records[-1]["time"])
        rows.append((created, began, first, last, ended))
    ends = sorted(row[4] for row in rows)
    gaps = [
        created - max(e for e in ends if e <= created)
        for created, *_ in rows[2:]
        if any(e <= created for e in ends)
    ]
    columns = {
        "queued": [b - c for c, b, *_ in rows],
        "start": [f - b for _, b, f, _, _ in rows],
        "train": [la - f for *_, f, la, _ in rows],
        "finish": [e - la for *_, la, e in rows],
        "gap": gaps,
    }
    return {name: statistics.median(values) for name, values in columns.items() if values}


def running_best(sweep: dict[str, Any]) -> list[float]:
    """Best accuracy among trials 0..n-1, for each n (failed trials count as 0)."""
    best, out = 0.0, []
    for trial in sorted(sweep["trials"], key=lambda t: t["number"]):
        if trial["values"]:
            best = max(best, float(trial["values"][0]))
        out.append(best)
    return out


def trials_to_reach(curve: list[float], target: float) -> int | None:
    return next((n + 1 for n, value in enumerate(curve) if value >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samplers", default="gp,tpe,random")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--no-front", action="store_true", help="skip the two-objective run")
    parser.add_argument("--quick", action="store_true", help="4 trials of 20 rounds, seed 0")
    parser.add_argument("--show-trials", action="store_true", help="list every trial")
    parser.add_argument(
        "--concurrent",
        type=int,
        default=CONCURRENT,
        help="sweeps in flight at once on the one service (each keeps `parallel` = 2 trials)",
    )
    parser.add_argument(
        "--warm-pool",
        type=int,
        default=None,
        help="the worker's LAGTRAIN_WARM_POOL_SIZE (default: one warm gang per trial slot)",
    )
    args = parser.parse_args()
    if args.quick:
        args.trials, args.rounds, args.seeds = 4, 20, "0"
    samplers = args.samplers.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    slots = PARALLEL * args.concurrent
    warm_pool = args.warm_pool if args.warm_pool is not None else slots * ACTORS_PER_TRIAL
    timeout = 600.0 + 120.0 * args.trials
    checkpoints = sorted({n for n in CHECKPOINTS if n <= args.trials} | {args.trials})
    print(
        f"sweep_bo: {args.trials} trials x {args.rounds} rounds, samplers {samplers}, "
        f"seeds {seeds}, {args.concurrent} sweeps at once, warm pool {warm_pool}; "
        f"{load_average()}",
        flush=True,
    )
    runs = [Run(sampler, seed, False) for sampler in samplers for seed in seeds]
    if not args.no_front:
        runs.append(Run("gp", seeds[0], True))

    def spec_of(run: Run) -> dict[str, Any]:
        return sweep_spec(
            run.sampler,
            run.seed,
            trials=args.trials,
            rounds=args.rounds,
            two_objectives=run.two_objectives,
        )

    curves: dict[tuple[str, int], list[float]] = {}
    env = {
        "LAGTRAIN_SWEEP_POLL_SECONDS": "0.5",
        "LAGTRAIN_WARM_POOL_SIZE": str(warm_pool),
        # The admin runs every trial: room for every slot of the concurrent sweeps.
        "LAGTRAIN_DEFAULT_MAX_RUNNING_JOBS": str(max(4, slots)),
    }
    with (
        workspace("lagtrain-sweep-bo-") as (workdir, processes),
        ray_head(workdir, processes, num_cpus=CPUS_PER_TRIAL * slots, dashboard=False) as ray,
        lagtrain_service(workdir, processes, ray=ray, extra_env=env) as service,
        service.client() as client,
    ):
        header = f"{'sampler':8} {'seed':>4} " + " ".join(f"best@{n:<3}" for n in checkpoints)
        print(f"\n{header} {'wall s':>7}   median s per trial: queued start train finish gap")
        front: tuple[dict[str, Any], float] | None = None
        for run, sweep, wall in run_sweeps(
            client, runs, spec_of, concurrent=args.concurrent, timeout=timeout
        ):
            p = phases(client, sweep)
            timing = " ".join(f"{p.get(k, float('nan')):.1f}" for k in PHASES)
            if run.two_objectives:
                front = sweep, wall
                print(
                    f"{'gp front':8} {run.seed:>4} {'':{len(header) - 14}} {wall:7.0f}   {timing}"
                )
                continue
            curve = curves[run.sampler, run.seed] = running_best(sweep)
            at = [f"{curve[n - 1]:.4f}  " for n in checkpoints]
            print(
                f"{run.sampler:8} {run.seed:>4} " + " ".join(at) + f" {wall:7.0f}   {timing}",
                flush=True,
            )
            if args.show_trials:
                show_trials(sweep)
        report_goal(curves, samplers, seeds)
        if front is not None:
            report_front(*front)
    print(f"\n{load_average()}")


def show_trials(sweep: dict[str, Any]) -> None:
    for trial in sorted(sweep["trials"], key=lambda t: t["number"]):
        p, values = trial["params"], trial["values"]
        shown = f"{values[0]:.4f}" if values else trial["status"]
        print(
            f"    #{trial['number']:<3} xi {p['aggregation.xi']:9.3g} lr {p['optimizer.lr']:9.3g}"
            f"  val_accuracy {shown}"
        )


def report_goal(
    curves: dict[tuple[str, int], list[float]], samplers: list[str], seeds: list[int]
) -> None:
    if "random" not in samplers:
        return
    print(f"\ntrials to reach random search's final best (goal: <= {GOAL_TRIALS})")
    for sampler in (s for s in samplers if s != "random"):
        reached = []
        for seed in seeds:
            target = curves["random", seed][-1]
            n = trials_to_reach(curves[sampler, seed], target)
            reached.append(n)
            print(
                f"  {sampler} seed {seed}: random's best {target:.4f} reached after "
                f"{n if n is not None else 'never (within the budget)'}"
            )
        met = sum(1 for n in reached if n is not None and n <= GOAL_TRIALS)
        print(f"  {sampler}: goal met for {met} of {len(seeds)} seeds")


def report_front(sweep: dict[str, Any], wall: float) -> None:
    front = set(sweep["best"])
    print(
        f"\ntwo objectives (gp, seed {sweep['spec']['seed']}): val_accuracy (max) against "
        f"bytes_up_total (min); {len(front)} trials on the Pareto front; {wall:.0f} s"
    )
    print(f"  {'#':>3} {'xi':>10} {'lr':>10} {'accuracy':>9} {'MB up':>8}  front")
    for trial in sorted(sweep["trials"], key=lambda t: (t["values"] or [0, 0])[1]):
        if not trial["values"]:
            print(f"  {trial['number']:>3} {trial['status']}")
            continue
        accuracy, sent = trial["values"]
        p = trial["params"]
        print(
            f"  {trial['number']:>3} {p['aggregation.xi']:10.3g} {p['optimizer.lr']:10.3g} "
            f"{accuracy:9.4f} {sent / 1e6:8.3f}  {'*' if trial['number'] in front else ''}"
        )


if __name__ == "__main__":
    main()
