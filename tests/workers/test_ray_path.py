"""The Ray path reproduces the in-process reference runner's trajectory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from service.schemas.gang import gang_bundles, gang_totals
from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from workers.ray_job import CheckpointEvent, RayJob, RecordEvent
from workers.training.runner import run_reference
from workers.warm_pool import WarmPool
from workers.whole_run import run_on_ray

pytestmark = pytest.mark.ray


def _reference(spec: ResolvedSpec) -> list[dict[str, float]]:
    records: list[dict[str, float]] = []
    run_reference(spec, on_record=lambda _r, v: records.append(v), dtype=torch.float64)
    return records


@pytest.mark.parametrize(
    "spec_dict",
    [
        {
            "task": {"kind": "lag_paper_linreg"},
            "aggregation": {"strategy": "lag_wk"},
            "distributed": {"workers": 3, "cpus_per_worker": 0.5},
            "schedule": {"rounds": 40, "checkpoint_every": 15},
        },
        {
            "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
            "model": {"cell": "gru", "hidden_size": 16},
            "aggregation": {"strategy": "lasg_wk2", "per_replica_metrics": True},
            "distributed": {"workers": 2, "cpus_per_worker": 0.5},
            "schedule": {"rounds": 12, "batch_size": 16, "eval_every": 6, "checkpoint_every": 5},
        },
        {  # the stochastic variant at its minibatch defaults (8 bits, xi 0.1)
            "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
            "model": {"cell": "gru", "hidden_size": 16},
            "optimizer": {"name": "sgd", "lr": 1.0},
            "aggregation": {"strategy": "laq"},
            "distributed": {"workers": 2, "cpus_per_worker": 0.5},
            "schedule": {"rounds": 12, "batch_size": 16, "eval_every": 6, "checkpoint_every": 5},
        },
    ],
    ids=["lag_wk-linreg", "cada2-digits-gru", "laq-digits-gru"],
)
def test_ray_path_reproduces_reference(
    ray_address: str, tmp_path: Path, spec_dict: dict[str, object]
) -> None:
    spec = resolve(spec_dict)
    expected = _reference(spec)
    events = list(run_on_ray(spec, job_key="t", artifacts_url=str(tmp_path), dtype="float64"))
    records = [e for e in events if isinstance(e, RecordEvent)]
    assert [r.round for r in records] == list(range(spec.schedule.rounds))
    for got, want in zip(records, expected, strict=True):
        assert got.values["uploads"] == want["uploads"]
        assert got.values["uploads_total"] == want["uploads_total"]
        assert got.values["bytes_up_total"] == want["bytes_up_total"]
        assert got.values["train_loss"] == pytest.approx(want["train_loss"], abs=1e-9, rel=0)
        # The skip test's figures, when the job asks for them (DESIGN §5).
        per_replica = {k for k in want if k == "rhs" or k.startswith(("lhs_w", "staleness_w"))}
        assert bool(per_replica) == spec.aggregation.per_replica_metrics
        for key in per_replica:
            assert got.values[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key
    rounds = [e.round for e in events if isinstance(e, CheckpointEvent)]
    every = spec.schedule.checkpoint_every
    assert rounds == [r for r in range(spec.schedule.rounds) if (r + 1) % every == 0] + (
        [spec.schedule.rounds - 1] if spec.schedule.rounds % every else []
    )


@pytest.fixture(scope="module")
def warm(ray_address: str) -> Iterator[WarmPool]:
    """The resume tests' gangs (3 replicas and a driver) on warm actors: the first job
    starts cold, each later one reuses them (≈ 2 s of CPU for each actor not started;
    the cold path's trajectory is the test above's, the warm one's also
    test_warm_pool.py's)."""
    pool = WarmPool(size=4, idle_seconds=3600)
    yield pool
    pool.close()


# CADA2 on minibatches: its replicas resume holding an anchor, whose gradient for the
# first resumed round they compute before that round's θ arrives.
RESUMED = {
    "lag_wk": {"aggregation": {"strategy": "lag_wk"}},
    "cada2-minibatch": {
        "aggregation": {"strategy": "lasg_wk2", "max_staleness": 7},
        "optimizer": {"name": "adam", "lr": 0.05},
        "schedule": {"rounds": 30, "checkpoint_every": 10, "batch_size": 10},
    },
}


@pytest.mark.parametrize("sections", RESUMED.values(), ids=RESUMED.keys())
def test_ray_resume_from_checkpoint_continues_identically(
    warm: WarmPool, tmp_path: Path, sections: dict[str, Any]
) -> None:
    spec = resolve(
        {
            "task": {"kind": "lag_paper_linreg"},
            "distributed": {"workers": 3, "cpus_per_worker": 0.5},
            "schedule": {"rounds": 30, "checkpoint_every": 10},
            **sections,
        }
    )
    expected = _reference(spec)
    first = list(
        run_on_ray(spec, job_key="a", artifacts_url=str(tmp_path), dtype="float64", pool=warm)
    )
    middle = next(e for e in first if isinstance(e, CheckpointEvent) and e.round == 19)
    resumed = [
        e
        for e in run_on_ray(
            spec,
            job_key="b",
            artifacts_url=str(tmp_path),
            dtype="float64",
            resume=(middle.uri, middle.sha256),
            pool=warm,
        )
        if isinstance(e, RecordEvent)
    ]
    assert [r.round for r in resumed] == list(range(20, 30))
    for got, want in zip(resumed, expected[20:], strict=True):
        assert got.values["uploads_total"] == want["uploads_total"]
        assert got.values["bytes_up_total"] == want["bytes_up_total"]
        assert got.values["train_loss"] == pytest.approx(want["train_loss"], abs=1e-9, rel=0)


def test_ray_resume_rejects_a_corrupt_checkpoint(warm: WarmPool, tmp_path: Path) -> None:
    spec = resolve(
        {
            "task": {"kind": "lag_paper_linreg"},
            "distributed": {"workers": 2, "cpus_per_worker": 0.5},
            "schedule": {"rounds": 4, "checkpoint_every": 2},
        }
    )
    ckpt = next(
        e
        for e in run_on_ray(spec, job_key="c", artifacts_url=str(tmp_path), pool=warm)
        if isinstance(e, CheckpointEvent)
    )
    with pytest.raises(Exception, match="corrupt"):
        list(
            run_on_ray(
                spec,
                job_key="d",
                artifacts_url=str(tmp_path),
                resume=(ckpt.uri, "0" * 64),
                pool=warm,
            )
        )


def test_the_placement_group_reserves_the_gang_the_claim_counts(
    ray_address: str, tmp_path: Path
) -> None:
    """One gang shape (service.schemas.gang): the placement group's bundles are
    gang_bundles, and the totals the claim's fit test stores on the job are their sum."""
    spec = resolve(
        {
            "task": {"kind": "lag_paper_linreg"},
            "distributed": {"workers": 3, "cpus_per_worker": 0.5},
            "schedule": {"rounds": 2},
        }
    )
    job = RayJob(spec, job_key="shape", artifacts_url=str(tmp_path), dtype="float64")
    try:
        job.start(ready_timeout_s=60)
        assert job.pg.bundle_specs == gang_bundles(spec)
        assert [{"CPU": 1.0}, *[{"CPU": 0.5}] * 3] == gang_bundles(spec)
        assert gang_totals(spec) == (2.5, 0.0)
    finally:
        job.stop()
