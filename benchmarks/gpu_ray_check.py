"""GPU check of the Ray path (run on a machine with a CUDA GPU; nothing requires one).

Trains a digits LSTM through the same RayJob gang the dispatcher uses, with
`gpus_per_worker: 1` (and a second run with two replicas sharing the GPU), checks
that the replicas really compute on CUDA, and that the Ray path reproduces the
in-process reference runner on the same device (float64, exact uploads).

    python benchmarks/gpu_ray_check.py
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from typing import Any

import ray
import torch

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from workers.ray_job import RayJob, RecordEvent
from workers.training.runner import run_reference


def spec_for(workers: int, gpus: float, rounds: int, dtype: str = "float32") -> ResolvedSpec:
    return resolve(
        {
            "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
            "model": {"cell": "lstm", "hidden_size": 128, "dtype": dtype},
            "optimizer": {"name": "adam", "lr": 0.005},
            "aggregation": {"strategy": "lasg_wk2"},  # the rule's default xi
            "distributed": {"workers": workers, "cpus_per_worker": 1, "gpus_per_worker": gpus},
            "schedule": {
                "rounds": rounds,
                "batch_size": 64,
                "eval_every": rounds // 2,
                "checkpoint_every": rounds,
            },
        }
    )


def run(
    spec: ResolvedSpec, dtype: str | None
) -> tuple[list[RecordEvent], list[dict[str, Any]], float]:
    job = RayJob(spec, job_key="gpu-check", artifacts_url=tempfile.mkdtemp(), dtype=dtype)
    start = time.perf_counter()
    try:
        job.start(ready_timeout_s=120)
        where = ray.get([actor.describe.remote() for actor in job.actors[:-1]])
        records = [e for e in job.events() if isinstance(e, RecordEvent)]
    finally:
        job.stop()
    return records, where, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "no CUDA device here"
    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False)
    print(f"torch {torch.__version__}, ray {ray.__version__}, {torch.cuda.get_device_name(0)}")
    print(f"cluster: {ray.cluster_resources()}")  # type: ignore[no-untyped-call]  # Ray leaves it unannotated
    for workers, gpus in ((1, 1.0), (2, 0.5)):
        spec = spec_for(workers, gpus, args.rounds)
        records, where, wall = run(spec, "float32")
        devices = {w["device"] for w in where}
        last = records[-1].values
        print(
            f"workers={workers} gpus_per_worker={gpus}: replicas on {sorted(devices)}, "
            f"{len(records)} rounds in {wall:.1f} s, uploads {last['uploads_total']:.0f}"
            f"/{last['dense_equiv_uploads']:.0f}, val_accuracy {last.get('val_accuracy')}"
        )
        assert devices == {"cuda:0"}, where
    # bfloat16 autocast through the gang (dtype None: the spec's own, as the dispatcher
    # runs it): replicas on the GPU, the float32 state finite, the lazy test working.
    records, where, wall = run(spec_for(2, 0.5, args.rounds, "bfloat16"), None)
    last = records[-1].values
    print(
        f"bfloat16 workers=2: replicas on {sorted({w['device'] for w in where})}, "
        f"{len(records)} rounds in {wall:.1f} s, uploads {last['uploads_total']:.0f}"
        f"/{last['dense_equiv_uploads']:.0f}, train_loss {last['train_loss']:.4f}, "
        f"val_accuracy {last.get('val_accuracy')}"
    )
    assert {w["device"] for w in where} == {"cuda:0"}, where
    assert all(math.isfinite(r.values["train_loss"]) for r in records)
    # Exactness on the GPU: the Ray path against the reference runner, both on CUDA.
    spec = spec_for(2, 0.5, 20)
    expected: list[dict[str, float]] = []
    run_reference(
        spec, on_record=lambda _r, v: expected.append(v), dtype=torch.float64, device="cuda"
    )
    got, _, _ = run(spec, "float64")
    uploads_equal = [g.values["uploads_total"] for g in got] == [
        e["uploads_total"] for e in expected
    ]
    worst = max(
        abs(g.values["train_loss"] - e["train_loss"]) for g, e in zip(got, expected, strict=True)
    )
    print(
        f"float64 Ray vs reference on cuda: uploads equal {uploads_equal}, "
        f"max |loss diff| {worst:.2e}"
    )
    assert uploads_equal and worst < 1e-9
    print("GPU CHECK PASSED")


if __name__ == "__main__":
    main()
