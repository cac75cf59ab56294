"""Communication to reach a target on non-IID recurrent tasks: dense Adam vs CADA2
(lasg_wk2 + AMSGrad without bias correction) vs dense SGD vs LASG-WK2 (lasg_wk2 +
sgd) vs local SGD, on builtin:digits (LSTM classifier) and builtin:shakespeare
(character LSTM), each with M = 4 and M = 8 replicas holding label-sorted /
contiguous-text shards. A sixth row, dense AMSGrad without bias correction (the
CADA2 optimizer with every worker uploading every round), separates the effect of
the lazy uploads from that of the optimizer variant.

For each run it prints the final validation metric and the rounds, uploads and
megabytes uploaded needed to reach the matching dense run's final metric within 1 %
(Adam-family rows against dense Adam, SGD-family rows against dense SGD), the uploads
as a ratio to that dense run's (bytes are in the same ratio: every upload is one
float32 vector of all parameters) and, for the Adam family, to the dense AMSGrad-nbc
run's, all measured in this one process. The global minibatch is the same for every
M (split evenly over the replicas), so a round costs the same compute at M = 4 and 8.
Upload counts are deterministic; times depend on the machine.

    .venv/bin/python benchmarks/rnn_comm.py [--tasks digits,char_lm] [--workers 4,8]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from workers.training.runner import run_reference

TARGET_SLACK = 0.01


@dataclass(frozen=True)
class Scenario:
    name: str
    task: dict[str, Any]
    model: dict[str, Any]
    metric: str
    higher_is_better: bool
    rounds: int
    eval_every: int
    global_batch: int
    adam_lr: float
    sgd_lr: float
    cada_xi: float  # tuned: see docs/benchmarks.md for why Adam needs a tiny xi
    lasg_xi: float


SCENARIOS = {
    "digits": Scenario(
        name="digits",
        task={"kind": "sequence_classification", "dataset": "builtin:digits"},
        model={"cell": "lstm", "hidden_size": 64},
        metric="val_accuracy",
        higher_is_better=True,
        rounds=300,
        eval_every=10,
        global_batch=128,
        adam_lr=0.003,
        sgd_lr=1.0,
        cada_xi=1e-5,
        lasg_xi=2.0,
    ),
    "char_lm": Scenario(
        name="char_lm",
        task={"kind": "char_lm", "dataset": "builtin:shakespeare", "max_chars": 150_000,
              "seq_len": 32},
        model={"cell": "lstm", "hidden_size": 64, "embedding_dim": 16},
        metric="val_perplexity",
        higher_is_better=False,
        rounds=300,
        eval_every=20,
        global_batch=64,
        adam_lr=0.003,
        sgd_lr=1.0,
        cada_xi=1e-6,
        lasg_xi=2.0,
    ),
}


@dataclass(frozen=True)
class Method:
    label: str
    family: str  # "adam" or "sgd": whose dense run sets the target
    strategy: str
    optimizer: str
    extra_optimizer: dict[str, Any] = field(default_factory=dict)
    rounds_factor: float = 1.0


METHODS = (
    Method("dense Adam", "adam", "dense", "adam"),
    Method("CADA2", "adam", "lasg_wk2", "adam"),
    Method("dense AMSGrad-nbc", "adam", "dense", "adam",
           {"amsgrad": True, "bias_correction": False}),
    Method("dense SGD", "sgd", "dense", "sgd"),
    Method("LASG-WK2", "sgd", "lasg_wk2", "sgd"),
    # H = 4 local steps per round: half the rounds is twice dense SGD's gradient
    # evaluations, as many as LASG-WK2's two evaluations per worker-round.
    Method("local SGD H=4", "sgd", "local_sgd", "sgd", rounds_factor=0.5),
)


@dataclass
class Run:
    method: Method
    history: list[tuple[int, float, int, int]]  # (round, metric, uploads, bytes) at evals
    seconds: float
    cpu_seconds: float

    @property
    def final(self) -> float:
        return self.history[-1][1]


def make_spec(scenario: Scenario, method: Method, workers: int, seed: int) -> ResolvedSpec:
    lr = scenario.adam_lr if method.optimizer == "adam" else scenario.sgd_lr
    aggregation: dict[str, Any] = {"strategy": method.strategy}
    if method.strategy == "lasg_wk2":
        aggregation["xi"] = scenario.cada_xi if method.optimizer == "adam" else scenario.lasg_xi
    if method.strategy == "local_sgd":
        aggregation["local_steps"] = 4
    return resolve(
        {
            "task": scenario.task,
            "model": scenario.model,
            "optimizer": {"name": method.optimizer, "lr": lr, **method.extra_optimizer},
            "aggregation": aggregation,
            "distributed": {"workers": workers, "split": "non_iid"},
            "schedule": {
                "rounds": int(scenario.rounds * method.rounds_factor),
                "batch_size": scenario.global_batch // workers,
                "eval_every": scenario.eval_every,
                "seed": seed,
            },
        }
    )


def train(scenario: Scenario, method: Method, workers: int, seed: int) -> Run:
    history: list[tuple[int, float, int, int]] = []

    def record(round_: int, values: dict[str, float]) -> None:
        if scenario.metric in values:
            history.append(
                (round_ + 1, values[scenario.metric], int(values["uploads_total"]),
                 int(values["bytes_up_total"]))
            )

    started, cpu_started = time.perf_counter(), time.process_time()
    run_reference(make_spec(scenario, method, workers, seed), on_record=record)
    return Run(
        method, history, time.perf_counter() - started, time.process_time() - cpu_started
    )


def first_reaching(run: Run, target: float, higher_is_better: bool) -> tuple[int, int, int] | None:
    """(rounds, uploads, bytes) at the first evaluation that meets the target."""
    for round_, value, uploads, nbytes in run.history:
        if (value >= target) if higher_is_better else (value <= target):
            return round_, uploads, nbytes
    return None


def report(scenario: Scenario, workers: int, runs: list[Run]) -> None:
    dense = {run.method.family: run for run in runs if run.method.strategy == "dense"
             and not run.method.extra_optimizer}
    # CADA2's optimizer is AMSGrad without bias correction; its dense twin shows how
    # much of CADA2's gain is the optimizer rather than the skipped uploads.
    twin = next(run for run in runs if run.method.extra_optimizer)
    print(f"\n{scenario.name}, M = {workers}, non_iid, metric {scenario.metric} "
          f"({'higher' if scenario.higher_is_better else 'lower'} is better)")
    header = (f"{'method':<18} {'final':>8} {'target':>8} {'rounds':>6} {'uploads':>7} "
              f"{'MB up':>7} {'uploads/dense':>13} {'/AMSGrad-nbc':>12} {'upl. share':>10} "
              f"{'wall s':>6} {'cpu s':>6}")
    print(header)
    print("-" * len(header))
    for run in runs:
        ref = dense[run.method.family]
        slack = 1 - TARGET_SLACK if scenario.higher_is_better else 1 + TARGET_SLACK
        target = ref.final * slack
        hit = first_reaching(run, target, scenario.higher_is_better)
        ref_hit = first_reaching(ref, target, scenario.higher_is_better)
        twin_hit = first_reaching(twin, target, scenario.higher_is_better)
        assert ref_hit is not None  # the dense run meets its own final metric
        last_round, _, total_uploads, _ = run.history[-1]
        share = total_uploads / (workers * last_round)
        if hit is None:
            reached = f"{'-':>6} {'-':>7} {'-':>7} {'not reached':>13} {'-':>12}"
        else:
            rounds, uploads, nbytes = hit
            versus_twin = "-"
            if run.method.family == "adam" and twin_hit is not None:
                versus_twin = f"{uploads / twin_hit[1]:.3f}"
            reached = (f"{rounds:>6} {uploads:>7} {nbytes / 1e6:>7.2f} "
                       f"{uploads / ref_hit[1]:>13.3f} {versus_twin:>12}")
        print(f"{run.method.label:<18} {run.final:>8.4f} {target:>8.4f} {reached} "
              f"{share:>10.3f} {run.seconds:>6.1f} {run.cpu_seconds:>6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="digits,char_lm")
    parser.add_argument("--workers", default="4,8")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small models: threads only add overhead
    started = time.perf_counter()
    for name in args.tasks.split(","):
        scenario = SCENARIOS[name]
        for workers in (int(m) for m in args.workers.split(",")):
            runs = [train(scenario, method, workers, args.seed) for method in METHODS]
            report(scenario, workers, runs)
    print(f"\ntotal {time.perf_counter() - started:.0f} s wall, {time.process_time():.0f} s cpu")


if __name__ == "__main__":
    main()
