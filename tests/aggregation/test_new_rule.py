"""Adding a rule is one module and one registry entry: the test-local round-robin
rule (tests/aggregation/toy_rule.py) is registered here and runs through the
reference runner and the Ray path, which agree round for round."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import torch

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from tests.aggregation import toy_rule
from tests.ray_cluster import ray_address
from workers.aggregation.registry import RULES
from workers.ray_job import CheckpointEvent, RecordEvent
from workers.training.runner import run_reference
from workers.whole_run import run_on_ray

__all__ = ["ray_address"]

WORKERS, ROUNDS = 3, 9


@pytest.fixture
def round_robin_spec(monkeypatch: pytest.MonkeyPatch) -> Iterator[ResolvedSpec]:
    monkeypatch.setitem(RULES, toy_rule.RULE.name, toy_rule.RULE)
    # The actors must unpickle the rule without importing the tests package.
    # Ray's vendored cloudpickle is unannotated.
    ray.cloudpickle.register_pickle_by_value(toy_rule)  # type: ignore[no-untyped-call]
    base = resolve(
        {
            "task": {"kind": "lag_paper_linreg"},
            "distributed": {"workers": WORKERS, "cpus_per_worker": 0.5},
            "schedule": {"rounds": ROUNDS, "checkpoint_every": 4},
        }
    )
    # A rule outside the contract's list of strategies: set after validation.
    aggregation = base.aggregation.model_copy(update={"strategy": toy_rule.RULE.name})
    yield base.model_copy(update={"aggregation": aggregation})
    ray.cloudpickle.unregister_pickle_by_value(toy_rule)  # type: ignore[no-untyped-call]


def _expected_uploads(round_: int) -> int:
    return WORKERS if round_ == 0 else 1


def test_the_rule_runs_in_the_reference_runner(round_robin_spec: ResolvedSpec) -> None:
    records: list[dict[str, float]] = []
    result = run_reference(
        round_robin_spec, on_record=lambda _k, v: records.append(v), dtype=torch.float64
    )
    assert [r["uploads"] for r in records] == [_expected_uploads(k) for k in range(ROUNDS)]
    # Rank m uploads in round 0 and in rounds k ≡ m (mod M), k ≥ 1.
    assert result.uploads_per_worker == [
        1 + sum(1 for k in range(1, ROUNDS) if k % WORKERS == m) for m in range(WORKERS)
    ]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert result.checkpoint["replicas"][0]["strategy"] == "round_robin"


@pytest.mark.ray
def test_the_rule_runs_on_ray_like_the_reference(
    ray_address: str, round_robin_spec: ResolvedSpec, tmp_path: Path
) -> None:
    expected: list[dict[str, float]] = []
    run_reference(round_robin_spec, on_record=lambda _k, v: expected.append(v), dtype=torch.float64)
    events = list(
        run_on_ray(round_robin_spec, job_key="toy", artifacts_url=str(tmp_path), dtype="float64")
    )
    records = [e for e in events if isinstance(e, RecordEvent)]
    assert [r.values["uploads"] for r in records] == [e["uploads"] for e in expected]
    for got, want in zip(records, expected, strict=True):
        assert got.values["train_loss"] == pytest.approx(want["train_loss"], abs=1e-12, rel=0)
    assert [e.round for e in events if isinstance(e, CheckpointEvent)] == [3, 7, 8]
