"""A gang over every live cluster's totals is refused at submit at the field that
makes it so (service.store.cluster_capacity): one replica's size when a gang of one
replica would not fit either, else `workers`; the message names the CPUs and GPUs
asked and the cluster's, GPUs whenever any are asked. A walkthrough's `workers: 2,
cpus_per_worker: 64` on 16 CPUs (24 here, under the quota) was located at
`distributed.workers`, which no change could fix, and a GPU gang on a cluster of none
did not say it had 0 GPU."""

from __future__ import annotations

from typing import Any

from service.schemas.cost import CostEstimate
from service.schemas.gang import Bundle
from service.store.cluster_capacity import ClusterCapacity
from service.store.db import transaction
from service.store.dispatchers import upsert_dispatcher
from service.store.models import Dispatcher, utcnow
from tests.api.conftest import SMALL_SPEC, Api, assert_json_error

SIXTEEN_CPUS = {"total": {"CPU": 16.0, "GPU": 0.0}, "capacity": {"CPU": 16.0, "GPU": 0.0}}


def test_a_replica_larger_than_the_cluster_is_refused_at_its_size(api: Api) -> None:
    api.client.app.state.cluster_capacity = ClusterCapacity(refresh_seconds=0)  # type: ignore[attr-defined]
    _uid, alice = api.create_user("alice")
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="n", resources=SIXTEEN_CPUS)
    # (Under the default quota of 64 CPUs, which is judged first.)
    wide = {**SMALL_SPEC, "distributed": {"workers": 2, "cpus_per_worker": 24}}
    [error] = assert_json_error(api.client.post("/v1/jobs", json=wide, headers=alice), 422)
    assert error["loc"] == ["body", "distributed", "cpus_per_worker"], error
    assert error["msg"] == (
        "distributed.cpus_per_worker: one replica of 24 CPU and the coordinator's 1 CPU "
        "need 25 CPU; the largest live "
        "dispatcher's cluster has 16 CPU, so the gang can never start, with any number "
        "of distributed.workers (2 ask 49 CPU)"
    )
    many = {**SMALL_SPEC, "distributed": {"workers": 20, "cpus_per_worker": 1}}
    [error] = assert_json_error(api.client.post("/v1/jobs", json=many, headers=alice), 422)
    assert error["loc"] == ["body", "distributed", "workers"], error
    assert error["msg"] == (
        "distributed.workers: 20 replicas of 1 CPU each and the coordinator's 1 CPU need "
        "21 CPU; the largest "
        "live dispatcher's cluster has 16 CPU, so the gang can never start: fewer "
        "distributed.workers would fit"
    )


def _refused(reports: list[dict[str, Any]], replica: Bundle, workers: int) -> list[tuple[str, str]]:
    """ClusterCapacity.problems over live dispatchers reporting `reports`."""
    now = utcnow()
    rows = [
        Dispatcher(id=f"d{i}", last_seen_at=now, stopped_at=None, resources=r)
        for i, r in enumerate(reports)
    ]

    class Session:  # the seam: recent_dispatchers' one read
        def scalars(self, _query: Any) -> list[Dispatcher]:
            return rows

    gang = {
        "CPU": 1.0 + workers * replica.get("CPU", 0.0),
        "GPU": workers * replica.get("GPU", 0.0),
    }
    capacity = ClusterCapacity(refresh_seconds=0)
    return capacity.problems(
        session=Session(),  # type: ignore[arg-type]
        gang=gang,
        replica=replica,
        workers=workers,
        cost=CostEstimate(1, 0, 0, "model.hidden_size", "model.hidden_size"),
        now=now,
        lease_seconds=30.0,
    )


def test_gpus_asked_are_named_and_the_field_is_the_one_to_change() -> None:
    # GPUs asked of a cluster of none: its 0 GPU is named, at gpus_per_worker.
    [(field, why)] = _refused([{"CPU": 8.0}], {"CPU": 1.0, "GPU": 1.0}, workers=2)
    assert field == "distributed.gpus_per_worker"
    assert "need 2 CPU, 1 GPU; the largest live dispatcher's cluster has 8 CPU, 0 GPU" in why
    assert "(2 ask 3 CPU, 2 GPU)" in why, why
    assert why.endswith("; no live cluster has a GPU: train on CPUs with gpus_per_worker 0"), why
    # Each replica's GPU is there, 8 of them are not: workers, not gpus_per_worker.
    four_gpus = {"capacity": {"CPU": 16.0, "GPU": 4.0}}
    [(field, why)] = _refused([four_gpus], {"CPU": 1.0, "GPU": 1.0}, workers=8)
    assert field == "distributed.workers"
    assert why.startswith(
        "8 replicas of 1 CPU, 1 GPU each and the coordinator's 1 CPU need 9 CPU, 8 GPU; the "
        "largest live dispatcher's cluster has 16 CPU, 4 GPU"
    ), why
    # A CPU-only gang on a GPU cluster names no GPUs.
    [(field, why)] = _refused([four_gpus], {"CPU": 16.0}, workers=1)
    assert field == "distributed.cpus_per_worker" and "GPU" not in why, why
    # Several clusters: one real cluster is named, not each resource's most over them
    # (64 CPU of one and 4 GPU of another read as one that would hold it: a review).
    many_cpus = {"capacity": {"CPU": 64.0, "GPU": 0.0}}
    few_cpus = {"capacity": {"CPU": 4.0, "GPU": 4.0}}
    [(field, why)] = _refused([many_cpus, few_cpus], {"CPU": 3.0, "GPU": 1.0}, workers=2)
    assert field == "distributed.workers"
    assert "the largest live dispatcher's cluster has 4 CPU, 4 GPU" in why, why


def test_the_replicas_field_is_judged_against_every_live_cluster() -> None:
    """One replica of 12 CPUs fits the 16-CPU cluster of two: fewer workers would
    start there, whatever the 4-CPU one lacks."""
    small, large = {"capacity": {"CPU": 4.0}}, {"capacity": {"CPU": 16.0}}
    [(field, _why)] = _refused([small, large], {"CPU": 12.0}, workers=2)
    assert field == "distributed.workers"
    assert _refused([small, large], {"CPU": 12.0}, workers=1) == []
