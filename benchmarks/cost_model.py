"""The cost model (service/schemas/cost.py) against measured peak memory.

Each spec runs a few rounds of the reference runner (coordinator and every replica in
one process, a checkpoint at the last round) in a fresh subprocess; the measured
figure is the process's peak RSS while training (sampled every 2 ms) minus its RSS
after importing torch and the training core. The estimate for that process is the
coordinator's plus workers x a replica's. Memory counts, not timings: the figures do
not depend on machine load.

    .venv/bin/python benchmarks/cost_model.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import threading
from typing import Any

SPECS: dict[str, dict[str, Any]] = {
    "digits-lstm128-x4": {"task": {"kind": "sequence_classification"}},
    "shakespeare-lstm256x2-x2-lasg": {
        "task": {"kind": "char_lm", "max_chars": 200_000},
        "model": {"hidden_size": 256, "num_layers": 2},
        "aggregation": {"strategy": "lasg_wk2"},
        "distributed": {"workers": 2},
    },
    "shakespeare-gru512-x4-lagwk": {
        "task": {"kind": "char_lm", "max_chars": 200_000},
        "model": {"cell": "gru", "hidden_size": 512, "embedding_dim": 64},
        "aggregation": {"strategy": "lag_wk"},
        "distributed": {"workers": 4},
        "schedule": {"batch_size": 64},
    },
    "adding-lstm1024-x8-lagwk": {
        "task": {"kind": "adding", "num_samples": 1024},
        "model": {"hidden_size": 1024},
        "aggregation": {"strategy": "lag_wk"},
        "distributed": {"workers": 8},
    },
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


class PeakSampler(threading.Thread):
    """The highest RSS seen, sampled every few milliseconds (the process's own peak
    counter would include the import of torch, which can exceed a small job)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_bytes()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.002):
            self.peak = max(self.peak, rss_bytes())


def measure_one(raw: dict[str, Any], rounds: int) -> dict[str, Any]:
    import torch  # noqa: F401  (the baseline includes torch)

    from service.schemas.cost import estimate
    from service.schemas.resolve import resolve
    from workers.training.runner import run_reference

    spec = resolve({**raw, "schedule": {**raw.get("schedule", {}), "rounds": rounds}})
    gc.collect()
    baseline = rss_bytes()
    sampler = PeakSampler()
    sampler.start()
    run_reference(spec, on_record=lambda _r, _v: None, on_checkpoint=lambda _r, _c: None)
    sampler.done.set()
    sampler.join()
    measured = max(sampler.peak, rss_bytes()) - baseline
    cost = estimate(spec, None)
    predicted = cost.coordinator_bytes + spec.distributed.workers * cost.replica_bytes
    return {
        "parameters": cost.parameters,
        "estimate_bytes": predicted,
        "measured_bytes": measured,
        "ratio": predicted / max(measured, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--only", default=",".join(SPECS))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(json.loads(args.one), args.rounds)))
        return
    print(f"{'spec':34} {'params':>11} {'estimate MiB':>13} {'measured MiB':>13} {'est/meas':>9}")
    for name in args.only.split(","):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--rounds",
                str(args.rounds),
                "--one",
                json.dumps(SPECS[name]),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{name:34} {row['parameters']:>11,} {row['estimate_bytes'] / 2**20:>13.1f} "
            f"{row['measured_bytes'] / 2**20:>13.1f} {row['ratio']:>9.2f}"
        )


if __name__ == "__main__":
    main()
