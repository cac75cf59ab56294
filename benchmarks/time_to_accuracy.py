"""Time to accuracy on a real network, projected (issue 12, point 4).

Two measurements on this machine, one projection:

1. Per rule, on the non-IID character LM of benchmarks/rnn_comm.py (M = 8, spec
   defaults, `--hidden` units): rounds to reach its same-optimizer dense twin's final
   perplexity within 1 %, uploads and gradient evaluations spent until then.
2. Compute: seconds of one gradient evaluation (forward + backward on one replica's
   minibatch) of a ≈5 M-parameter character LSTM on `--device` (median of `--repeats`).
3. Projection to that 5 M model at M = 8, assuming the rule's rounds, uploads and
   evaluations to target carry over from (1). Link model, synchronous rounds:

     round k = compute                      the gradient at θᵏ, workers in parallel
             + compute · max(0, 1 - T_b / compute) · (anchor evaluations per worker)
             + T_b = 32·p / B               broadcast of θ (float32), pipelined tree: one
                                            model time whatever M (every rule downloads)
             + Σ_uploads (bits_up / B + latency)   uploads serialised at the coordinator's
                                                   link of B bit/s (parameter server)

   The anchor evaluations are the same-minibatch test's second gradient (LASG-WK2,
   CADA2, minibatch LAQ: evaluations beyond one per worker-round). A replica computes
   it before θᵏ arrives (workers.round_exchange: Replica.prefetch), during at least the
   broadcast, so only what exceeds T_b stays on the round's path; the "no lookahead"
   column charges it in full, as before the service prefetched. bits_up = 32·p for a
   float32 gradient, b·p + 64 for LAQ (indices + the radius); latency = 50 µs per
   upload message. Wall time to target = Σ over its rounds.

Goal (issue 12): the best lazy rule ≥ 3x faster than dense at 1 Gbit/s.

    nice -n 15 .venv/bin/python -m benchmarks.time_to_accuracy [--hidden 64] [--rounds 200]
        [--device cpu|cuda] [--dtype float32|bfloat16] [--repeats 5] [--compute-ms MS]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from benchmarks.rnn_comm import PAIRS, SCENARIOS, TARGET_SLACK, make_spec
from service.schemas.resolve import resolve
from workers.aggregation.laq import wire_bytes
from workers.training.flat import flat_params
from workers.training.replica import Replica
from workers.training.runner import run_reference

WORKERS = 8
TARGET_PARAMS = 5_000_000
LATENCY_S = 50e-6
LINKS = {"1 Gbit/s": 1e9, "10 Gbit/s": 10e9}


@dataclass(frozen=True)
class ToTarget:
    label: str
    rounds: int | None  # None: never reached the twin's target
    uploads: int
    evals: int
    bits: int | None  # LAQ's b, None for float32 uploads
    final: float


def trajectory(
    spec_setup: dict[str, Any], scenario: Any, hidden: int, rounds: int, seed: int
) -> list[tuple[int, float | None, int, int]]:
    """(rounds done, metric or None, uploads_total, grad_evals_total) every round."""
    spec = make_spec(
        replace(scenario, rounds=rounds), spec_setup, workers=WORKERS, hidden=hidden, seed=seed
    )
    out: list[tuple[int, float | None, int, int]] = []
    run_reference(
        spec,
        on_record=lambda k, v: out.append(
            (k + 1, v.get(scenario.metric), int(v["uploads_total"]), int(v["grad_evals_total"]))
        ),
    )
    return out


def to_target(
    label: str, history: list[tuple[int, float | None, int, int]], target: float, bits: int | None
) -> ToTarget:
    final = next(m for _, m, _, _ in reversed(history) if m is not None)
    for round_, metric, uploads, evals in history:
        if metric is not None and metric <= target:
            return ToTarget(label, round_, uploads, evals, bits, final)
    _, _, uploads, evals = history[-1]
    return ToTarget(label, None, uploads, evals, bits, final)


def five_million_spec(hidden: int | None = None, dtype: str = "float32") -> Any:
    """The char LSTM of the projection: one layer, 16-dim embedding, hidden chosen so
    that p ≈ 5 M; M = 8 replicas of 8 sequences x 32 characters. bfloat16 (autocast)
    is a GPU's precision, so it asks for one per replica as the API would."""
    gpus = 1 if dtype == "bfloat16" else 0
    return resolve(
        {
            "task": {
                "kind": "char_lm",
                "dataset": "builtin:shakespeare",
                "max_chars": 150_000,
                "seq_len": 32,
            },
            "model": {
                "cell": "lstm",
                "hidden_size": hidden or 1100,
                "embedding_dim": 16,
                "dtype": dtype,
            },
            "distributed": {"workers": WORKERS, "split": "non_iid", "gpus_per_worker": gpus},
            "schedule": {"rounds": 1, "batch_size": 8},
        }
    )


def compute_seconds(device: str, repeats: int, dtype: str = "float32") -> tuple[int, float]:
    replica = Replica(five_million_spec(dtype=dtype), 0, device=device)
    params = flat_params(replica.model)
    times = []
    for index in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        replica.gradient(params, index)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return params.numel(), statistics.median(times[1:])  # the first call warms up


def wall_time(
    run: ToTarget, *, params: int, compute: float, bandwidth: float, lookahead: bool = True
) -> float | None:
    if run.rounds is None:
        return None
    up_bits = 32 * params if run.bits is None else 8 * wire_bytes(run.bits, params)
    broadcast = 32 * params / bandwidth
    # Every worker evaluates at θᵏ each round; the rest are anchor evaluations, spread
    # over the M parallel workers, and hidden behind the broadcast up to its length.
    anchors = run.evals - WORKERS * run.rounds
    exposed = max(0.0, compute - broadcast) if lookahead else compute
    return (
        run.rounds * (compute + broadcast)
        + anchors / WORKERS * exposed
        + run.uploads * (up_bits / bandwidth + LATENCY_S)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64, help="units of the measured runs")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="precision of the timed 5 M evaluation (bfloat16: autocast, a GPU's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", default="cada2,lasg,laq")
    parser.add_argument(
        "--compute-ms",
        type=float,
        default=None,
        help="use this per-evaluation time instead of measuring (e.g. a GPU's)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    params, compute = compute_seconds(args.device, args.repeats, args.dtype)
    if args.compute_ms is not None:
        compute = args.compute_ms / 1e3
    print(
        f"5 M model: {params:,} parameters; one gradient evaluation {compute * 1e3:.1f} ms "
        f"on {args.device}, {args.dtype} (median of {args.repeats})",
        flush=True,
    )
    scenario = SCENARIOS["char_lm"]
    rows: list[tuple[ToTarget, ToTarget]] = []
    for key in args.rules.split(","):
        pair = PAIRS[key]
        twin_history = trajectory(pair.twin, scenario, args.hidden, args.rounds, args.seed)
        twin_final = next(m for _, m, _, _ in reversed(twin_history) if m is not None)
        target = twin_final * (1 + TARGET_SLACK)
        lazy_history = trajectory(pair.lazy, scenario, args.hidden, args.rounds, args.seed)
        lazy_spec = make_spec(
            scenario, pair.lazy, workers=WORKERS, hidden=args.hidden, seed=args.seed
        )
        bits = lazy_spec.aggregation.bits if lazy_spec.aggregation.strategy == "laq" else None
        twin = to_target(f"dense ({key} twin)", twin_history, target, None)
        lazy = to_target(pair.lazy_label, lazy_history, target, bits)
        rows.append((twin, lazy))
        print(f"measured {pair.lazy_label}: {lazy} vs {twin}", flush=True)
    header = f"{'rule':<18} {'final ppl':>9} {'rounds':>6} {'uploads':>7} {'evals':>6} " + " ".join(
        f"{name + ' s':>13} {'x dense':>7} {'(no look)':>9}" for name in LINKS
    )
    print(
        f"\nprojection: p = {params:,}, M = {WORKERS}, compute {compute * 1e3:.1f} ms/eval, "
        f"broadcast one model time, uploads serialised at the coordinator, "
        f"{LATENCY_S * 1e6:.0f} us/upload, anchor gradients computed during the broadcast "
        f"('no look': without); rounds/uploads/evals to the twin's final perplexity "
        f"within {TARGET_SLACK:.0%} measured at hidden {args.hidden}\n"
    )
    print(header)
    print("-" * len(header))
    for twin, lazy in rows:
        for run in (twin, lazy):
            cells = [
                projected(run, twin, params=params, compute=compute, bandwidth=bandwidth)
                for bandwidth in LINKS.values()
            ]
            rounds = "-" if run.rounds is None else str(run.rounds)
            print(
                f"{run.label:<18} {run.final:>9.3f} {rounds:>6} {run.uploads:>7} "
                f"{run.evals:>6} " + " ".join(cells)
            )


def projected(run: ToTarget, twin: ToTarget, **link: Any) -> str:
    """One link's cells: seconds to target, x dense, and x dense without the lookahead."""
    seconds, dense = wall_time(run, **link), wall_time(twin, **link)
    if seconds is None or dense is None:
        return f"{'not reached':>13} {'-':>7} {'-':>9}"
    blind = wall_time(run, lookahead=False, **link)
    assert blind is not None
    return f"{seconds:>13.1f} {dense / seconds:>7.2f} {dense / blind:>9.2f}"


if __name__ == "__main__":
    main()
