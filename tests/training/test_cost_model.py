"""The cost model's estimate against measured peak memory (benchmarks/cost_model.py
runs each spec in a fresh process): within a factor of 3 either way for real specs,
and the figures that drive the 422s are the model's real parameter counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from service.schemas.cost import COPY_VOCAB, STALE_GRADIENT_RULES, estimate, parameter_count
from service.schemas.resolve import resolve
from workers.aggregation.common import StaleGradientCoordinator
from workers.aggregation.registry import RULES
from workers.training.tasks.registry import build_task
from workers.training.tasks.synthetic import COPY_VOCAB as WORKER_COPY_VOCAB

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "cost_model.py"
FACTOR = 3.0


@pytest.mark.parametrize(
    "raw",
    [
        {"task": {"kind": "sequence_classification"}},
        {
            "task": {"kind": "char_lm", "max_chars": 100_000},
            "model": {"cell": "gru", "hidden_size": 256, "num_layers": 2},
            "aggregation": {"strategy": "lasg_wk2"},
            "distributed": {"workers": 2},
        },
    ],
    ids=["digits-lstm128-x4", "shakespeare-gru256x2-x2"],
)
@pytest.mark.timeout(300)
def test_estimate_is_within_a_factor_of_measured_peak_memory(raw: dict[str, object]) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--rounds", "2", "--one", json.dumps(raw)],
        capture_output=True,
        text=True,
        check=True,
        timeout=280,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert 1 / FACTOR <= row["ratio"] <= FACTOR, row


@pytest.mark.parametrize(
    "raw",
    [
        {"task": {"kind": "sequence_classification"}, "model": {"cell": "gru", "num_layers": 3}},
        {"task": {"kind": "char_lm", "max_chars": 20_000}, "model": {"cell": "rnn"}},
        {"task": {"kind": "adding", "num_samples": 64}},
        {"task": {"kind": "copy_memory", "num_samples": 64}, "model": {"embedding_dim": 7}},
        {"task": {"kind": "lag_paper_linreg"}},
    ],
)
def test_parameter_count_matches_the_built_model(raw: dict[str, object]) -> None:
    spec = resolve(raw)
    model = build_task(spec, dtype=torch.float32, device="cpu").build_model()
    built = sum(p.numel() for p in model.parameters())
    estimated = estimate(spec, None).parameters
    if spec.task.kind == "char_lm":
        # The estimate takes the whole corpus' alphabet; a prefix may use fewer.
        assert built <= estimated <= built * 1.2
    else:
        assert estimated == built
    assert COPY_VOCAB == WORKER_COPY_VOCAB
    assert parameter_count is not None


def test_the_stale_gradient_rules_are_the_registrys() -> None:
    """The estimate counts the workers x P matrix for exactly the rules whose
    coordinator keeps it (laq was left out: its jobs reserved half their memory)."""
    keeping = {
        name
        for name, rule in RULES.items()
        if isinstance(rule.coordinator, type)
        and issubclass(rule.coordinator, StaleGradientCoordinator)
    }
    assert keeping == STALE_GRADIENT_RULES

    def coordinator_bytes(strategy: str) -> int:
        spec = resolve(
            {
                "task": {"kind": "sequence_classification"},
                "aggregation": {"strategy": strategy},
                "distributed": {"workers": 8},
            }
        )
        return estimate(spec, None).coordinator_bytes

    assert coordinator_bytes("laq") == coordinator_bytes("lag_wk") > coordinator_bytes("dense")
