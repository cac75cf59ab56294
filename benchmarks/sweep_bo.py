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
depend on the machine's load (printed).

    .venv/bin/python benchmarks/sweep_bo.py                 # the full comparison
    .venv/bin/python benchmarks/sweep_bo.py --quick         # smoke check (minutes)
    .venv/bin/python benchmarks/sweep_bo.py --samplers gp --seeds 0 --no-front
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from local_stack import lagtrain_service, load_average, ray_head, wait_for, workspace

from service.client import TERMINAL_STATUSES, Client

CHECKPOINTS = (8, 16, 24)
GOAL_TRIALS = 12


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
            "aggregation.xi": {"type": "float", "low": 1e-8, "high": 1e-2, "log": True},
            "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        },
        "objectives": objectives,
        "trials": trials,
        "parallel": 2,
        "sampler": sampler,
        "seed": seed,
    }


def run_sweep(client: Client, spec: dict[str, Any], timeout: float) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    sweep_id = int(client.submit_sweep(spec)["id"])
    wait_for(
        lambda: client.sweep(sweep_id)["status"] in TERMINAL_STATUSES,
        timeout=timeout,
        what=f"sweep {spec['name']}",
        every=2.0,
    )
    sweep = client.sweep(sweep_id)
    if sweep["status"] != "succeeded":
        raise RuntimeError(f"sweep {spec['name']} ended {sweep['status']}: {sweep['error']}")
    return sweep, time.monotonic() - started


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
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--no-front", action="store_true", help="skip the two-objective run")
    parser.add_argument("--quick", action="store_true", help="4 trials of 20 rounds, seed 0")
    parser.add_argument("--show-trials", action="store_true", help="list every trial")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.rounds, args.seeds = 4, 20, "0"
    samplers = args.samplers.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    timeout = 600.0 + 120.0 * args.trials
    checkpoints = sorted({n for n in CHECKPOINTS if n <= args.trials} | {args.trials})
    print(
        f"sweep_bo: {args.trials} trials x {args.rounds} rounds, samplers {samplers}, "
        f"seeds {seeds}; {load_average()}"
    )

    curves: dict[tuple[str, int], list[float]] = {}
    with (
        workspace("lagtrain-sweep-bo-") as (workdir, processes),
        ray_head(workdir, processes, num_cpus=6, dashboard=False) as ray,
        lagtrain_service(
            workdir, processes, ray=ray, extra_env={"LAGTRAIN_SWEEP_POLL_SECONDS": "0.5"}
        ) as service,
        service.client() as client,
    ):
        print(
            f"\n{'sampler':8} {'seed':>4} "
            + " ".join(f"best@{n:<3}" for n in checkpoints)
            + f" {'wall s':>7}"
        )
        for sampler in samplers:
            for seed in seeds:
                spec = sweep_spec(
                    sampler, seed, trials=args.trials, rounds=args.rounds, two_objectives=False
                )
                sweep, wall = run_sweep(client, spec, timeout)
                curve = curves[sampler, seed] = running_best(sweep)
                at = [f"{curve[n - 1]:.4f}  " for n in checkpoints]
                print(f"{sampler:8} {seed:>4} " + " ".join(at) + f" {wall:7.0f}", flush=True)
                if args.show_trials:
                    show_trials(sweep)
        report_goal(curves, samplers, seeds)
        if not args.no_front:
            spec = sweep_spec(
                "gp", seeds[0], trials=args.trials, rounds=args.rounds, two_objectives=True
            )
            sweep, wall = run_sweep(client, spec, timeout)
            report_front(sweep, wall)
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
