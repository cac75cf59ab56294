"""The LAG paper's synthetic comparison: GD vs LAG-WK vs LAG-PS vs LAQ (b = 4) on the
heterogeneous linear regression (X_m = 1.3^(m-1) q_m q_mᵀ + I) and on its uniform
control (identical smoothness), M = 9 workers, lr = 1/L, D = 10, full batches, in the
task's default precision (float64), every other setting the spec's default.

Prints, for each task and rule, the optimizer steps, uploads and bits uploaded needed
to reach f(θ) - f* < 1e-8 (f = Σ_m L_m, the paper's objective), as ratios to GD run in
the same process too. Deterministic: the counts do not depend on the machine.
tests/e2e/test_paper_figure_api.py checks that the same jobs submitted through the
HTTP API give exactly these counts.

    .venv/bin/python benchmarks/lag_paper.py [--target 1e-8] [--max-rounds 3000]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import torch

from service.schemas.resolve import resolve
from workers.training.runner import run_reference

RULES = (("GD", "dense"), ("LAG-WK", "lag_wk"), ("LAG-PS", "lag_ps"), ("LAQ", "laq"))
TASKS = (("heterogeneous", False), ("uniform", True))


@dataclass(frozen=True)
class Outcome:
    iterations: int | None  # None: the target was not reached
    uploads: int
    bits: int
    per_worker: list[int]


def paper_spec(strategy: str, *, uniform: bool, max_rounds: int, seed: int) -> dict[str, Any]:
    """The job: the task's and the rule's defaults (float64, lr = 1/L, xi, ...)."""
    return {
        "task": {"kind": "lag_paper_linreg", "uniform": uniform},
        "aggregation": {"strategy": strategy},
        "schedule": {"rounds": max_rounds, "seed": seed},
    }


def reach(strategy: str, *, uniform: bool, target: float, max_rounds: int, seed: int) -> Outcome:
    spec = resolve(paper_spec(strategy, uniform=uniform, max_rounds=max_rounds, seed=seed))
    hit: list[int] = []
    last: dict[str, float] = {}

    def record(round_: int, values: dict[str, float]) -> None:
        last.update(values)
        if not hit and values["optimality_gap"] < target:
            hit.append(round_ + 1)

    result = run_reference(spec, on_record=record, should_stop=lambda: bool(hit))
    return Outcome(
        iterations=hit[0] if hit else None,
        uploads=int(last["uploads_total"]),
        bits=8 * int(last["bytes_up_total"]),
        per_worker=result.uploads_per_worker,
    )


def chatter(dtype: str, *, rounds: int, target: float) -> tuple[int | None, float, int]:
    """Uniform control under LAG-PS for `rounds` rounds in `dtype`: (first round below
    the target, f - f* at the end, uploads)."""
    spec = resolve(
        {**paper_spec("lag_ps", uniform=True, max_rounds=rounds, seed=0), "model": {"dtype": dtype}}
    )
    first: list[int] = []
    last: dict[str, float] = {}

    def record(round_: int, values: dict[str, float]) -> None:
        last.update(values)
        if not first and values["optimality_gap"] < target:
            first.append(round_ + 1)

    run_reference(spec, on_record=record)
    return (first[0] if first else None), last["optimality_gap"], int(last["uploads_total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=1e-8, help="optimality gap to reach")
    parser.add_argument("--max-rounds", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # 50-dim problems: threads only add overhead
    print(f"M = 9, dim = 50, lr = 1/L, D = 10, target f - f* < {args.target:g}, float64\n")
    header = (
        f"{'task':<14} {'rule':<7} {'iterations':>10} {'uploads':>8} "
        f"{'iter/GD':>8} {'uploads/GD':>10} {'bits/GD':>8}  uploads per worker (L_m ascending)"
    )
    print(header)
    print("-" * len(header))
    for task_name, uniform in TASKS:
        outcomes = {
            name: reach(
                strategy,
                uniform=uniform,
                target=args.target,
                max_rounds=args.max_rounds,
                seed=args.seed,
            )
            for name, strategy in RULES
        }
        gd = outcomes["GD"]
        for name, outcome in outcomes.items():
            if outcome.iterations is None or gd.iterations is None:
                steps, iter_ratio = f">{args.max_rounds}", "-"
            else:
                steps, iter_ratio = (
                    str(outcome.iterations),
                    f"{outcome.iterations / gd.iterations:.2f}",
                )
            print(
                f"{task_name:<14} {name:<7} {steps:>10} {outcome.uploads:>8} "
                f"{iter_ratio:>8} {outcome.uploads / gd.uploads:>10.3f} "
                f"{outcome.bits / gd.bits:>8.4f}  {outcome.per_worker}"
            )
        print()
    print("precision: uniform control under LAG-PS, 400 rounds")
    for dtype in ("float32", "float64"):
        reached, gap, uploads = chatter(dtype, rounds=400, target=args.target)
        print(
            f"  {dtype}: first below {args.target:g} at round {reached}, "
            f"f - f* at round 400 = {gap:.3g}, uploads {uploads}"
        )


if __name__ == "__main__":
    main()
