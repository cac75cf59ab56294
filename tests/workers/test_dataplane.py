"""The gang's data plane (workers.dataplane): every rule's trajectory through the
Ray path equals the reference runner's, the bytes that cross the gloo group are
exactly the rule's accounting (a skip sends no vector, only its small reply),
consecutive jobs on the same
warm actors each build and tear down their own group, and a lost replica ends the
job with an error instead of a hang."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import torch

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from tests.training.task_helpers import CADA2_MINIBATCH
from tests.workers.reference import reference_records
from workers.aggregation.dense import DenseCoordinator, DenseReplica
from workers.aggregation.rule import AggregationRule, GradientOracle, ReplicaOutcome
from workers.dataplane import CONTROL_BYTES, GangGroup, RendezvousHost
from workers.ray_job import RayJob, RecordEvent
from workers.training.coordinator import Coordinator
from workers.warm_pool import WarmPool
from workers.whole_run import run_on_ray

pytestmark = pytest.mark.ray

WORKERS = 3


def linreg(strategy: str, **sections: Any) -> ResolvedSpec:
    spec: dict[str, Any] = {
        "task": {"kind": "lag_paper_linreg"},
        "aggregation": {"strategy": strategy},
        "distributed": {"workers": WORKERS, "cpus_per_worker": 0.5},
        "schedule": {"rounds": 30, "checkpoint_every": 12},
    }
    for key, value in sections.items():
        spec[key] = {**spec.get(key, {}), **value}
    return resolve(spec)


RULES = {
    "dense": linreg("dense", schedule={"rounds": 12}),
    "local_sgd": linreg("local_sgd", schedule={"batch_size": 10, "rounds": 12}),
    "lag_wk": linreg("lag_wk"),
    "lag_ps": linreg("lag_ps"),
    "laq": linreg("laq", aggregation={"bits": 3}),
    "laq_minibatch": linreg("laq", schedule={"batch_size": 10}, aggregation={"max_staleness": 6}),
    "lasg_wk2": linreg("lasg_wk2", **CADA2_MINIBATCH),
}
LAZY = {"lag_wk", "lag_ps", "laq", "laq_minibatch", "lasg_wk2"}
SAME_MINIBATCH_TEST = {"laq_minibatch", "lasg_wk2"}  # a second gradient, at the anchor


@pytest.fixture(scope="module")
def pool(ray_address: str) -> Iterator[WarmPool]:
    """One pool for the module: each job below runs on the previous job's actors."""
    warm = WarmPool(size=WORKERS + 1, idle_seconds=3600)
    yield warm
    warm.close()


def _timeless(records: list[RecordEvent]) -> list[dict[str, float]]:
    return [{k: v for k, v in r.values.items() if k != "samples_per_s"} for r in records]


def _run(
    spec: ResolvedSpec, tmp_path: Path, pool: WarmPool
) -> tuple[list[RecordEvent], dict[str, int], list[dict[str, int]]]:
    """The job's records, and the driver's and each replica's group counters (with
    the replica's `evaluations_ahead`)."""
    job = RayJob(spec, job_key="dp", artifacts_url=str(tmp_path), dtype="float64", pool=pool)
    try:
        job.start(ready_timeout_s=60)
        records = [e for e in job.events() if isinstance(e, RecordEvent)]
        driver = ray.get(job.driver.dataplane_stats.remote())
        replicas = ray.get([r.dataplane_stats.remote() for r in job.replicas])
        ahead = ray.get([r.evaluations_ahead.remote() for r in job.replicas])
    finally:
        job.stop()
    counters = [{**s, "evaluations_ahead": a} for s, a in zip(replicas, ahead, strict=True)]
    return records, driver, counters


@pytest.mark.parametrize("name", list(RULES))
def test_every_rule_moves_exactly_its_accounted_bytes(
    pool: WarmPool, tmp_path: Path, name: str
) -> None:
    spec = RULES[name]
    records, driver, replicas = _run(spec, tmp_path, pool)
    expected = reference_records(spec)
    assert len(records) == len(expected) == spec.schedule.rounds
    for got, want in zip(records, expected, strict=True):
        assert got.values["uploads"] == want["uploads"]
        assert got.values["bytes_up_total"] == want["bytes_up_total"]
        assert got.values["train_loss"] == pytest.approx(want["train_loss"], abs=1e-9, rel=0)

    # A replica sends a vector in each round whose upload was used, and none when it
    # skipped (or, under lag_ps, was not called).
    for rank, stats in enumerate(replicas):
        assert stats["sends"] == sum(rank in r.uploaded for r in records)
    if name in LAZY:
        assert sum(len(r.uploaded) for r in records) < WORKERS * len(records)
    # What crossed the group is what the rule accounts for (LAQ's packed bits included).
    bytes_up = int(records[-1].values["bytes_up_total"])
    assert sum(s["bytes_sent"] for s in replicas) == driver["bytes_received"] == bytes_up
    # Parameters: one float64 vector to each replica called.
    size = Coordinator(spec, dtype=torch.float64).params.numel()
    downloads = sum(int(r.values["downloads"]) for r in records)
    assert driver["bytes_sent"] == downloads * size * 8
    assert sum(s["bytes_received"] for s in replicas) == driver["bytes_sent"]
    # A same-minibatch test's anchor gradients were all computed between rounds, while
    # the replica waited for θ (workers.round_exchange); other rules have none.
    ahead = sum(s["evaluations_ahead"] for s in replicas)
    if name in SAME_MINIBATCH_TEST:
        anchors = sum(int(r.values["grad_evals"] - r.values["downloads"]) for r in records)
        assert ahead == anchors > 0
    else:
        assert ahead == 0
    # Besides vectors: one control part each way per call, and the driver's stop.
    assert sum(s["control_bytes_sent"] for s in replicas) == downloads * CONTROL_BYTES
    assert driver["control_bytes_sent"] == (downloads + WORKERS) * CONTROL_BYTES


def test_consecutive_jobs_on_warm_actors_each_build_their_own_group(
    pool: WarmPool, tmp_path: Path
) -> None:
    spec = RULES["lag_wk"]
    first, _, _ = _run(spec, tmp_path, pool)
    taken = {idle.actor for idle in pool._idle}
    second, driver, _ = _run(spec, tmp_path, pool)
    assert {idle.actor for idle in pool._idle} == taken  # the same actors served both
    assert _timeless(second) == _timeless(first)
    # The counters are the second job's alone: a new group, not the first one's.
    assert driver["bytes_received"] == second[-1].values["bytes_up_total"]


def test_a_killed_replica_ends_the_job_with_an_error(ray_address: str, tmp_path: Path) -> None:
    spec = linreg("lag_wk", schedule={"rounds": 100_000, "checkpoint_every": 100_000})
    job = RayJob(spec, job_key="dp-kill", artifacts_url=str(tmp_path), dataplane_timeout_s=20)
    seen: list[int] = []
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            for event in job.events():
                seen.append(event.round)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    try:
        job.start(ready_timeout_s=60)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while len(seen) < 3 and reader.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(seen) >= 3, "the job did not get going"
        ray.kill(job.replicas[1], no_restart=True)
        reader.join(timeout=90)  # the group's timeout (20 s) bounds any wait on it
        assert not reader.is_alive(), "the driver hangs after losing a replica"
    finally:
        job.stop()
    assert outcome and isinstance(outcome[0], ray.exceptions.RayError)
    assert seen[-1] < spec.schedule.rounds - 1


class _FailingReplica(DenseReplica):
    def round(
        self, round_: int, params: torch.Tensor, rhs: float, gradient: GradientOracle
    ) -> ReplicaOutcome:
        if round_ == 3 and self.rank == 1:
            raise ValueError("replica 1 fails on purpose")
        return super().round(round_, params, rhs, gradient)


FAILING = AggregationRule(name="dense", replica=_FailingReplica, coordinator=DenseCoordinator)


def test_a_replica_error_ends_the_job_with_that_error(ray_address: str, tmp_path: Path) -> None:
    """The replica's serve() call ends with its error while the driver waits for its
    answer: the driver's watch of the serve calls raises it (no hang)."""
    spec = linreg("dense", schedule={"rounds": 10})
    records = []
    with pytest.raises(ray.exceptions.RayTaskError, match="fails on purpose"):
        for event in run_on_ray(spec, job_key="dp-err", artifacts_url=str(tmp_path), rule=FAILING):
            records.append(event)
    assert [e.round for e in records if isinstance(e, RecordEvent)] == [0, 1, 2]


def _member_that_leaves(rendezvous: Any) -> None:
    """Rank 1: joins, then exits without sending what rank 0 waits for."""
    GangGroup(rendezvous, 1, timeout_s=120)


def test_a_receive_from_a_lost_member_fails_within_the_timeout() -> None:
    host = RendezvousHost(2, timeout_s=120)
    child = multiprocessing.get_context("spawn").Process(
        target=_member_that_leaves, args=(host.rendezvous,)
    )
    child.start()
    try:
        # A long timeout (the child imports torch under load): the loss must show
        # as the peer's closed connection, well before it.
        group = GangGroup(host.rendezvous, 0, timeout_s=120, store=host.store)
        started = time.monotonic()
        work = group.recv(torch.empty(16, dtype=torch.uint8), 1)
        with pytest.raises(RuntimeError, match=r"Connection|closed|reset"):
            work.wait()
        assert time.monotonic() - started < 30
        group.close()
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
