"""The submit judges a gang's memory against the live dispatchers' nodes, as the
dispatcher reserves it (the cost model's estimate and a process's base per bundle,
service.schemas.gang): a gang of many small processes that no set of nodes holds
by memory, or a replica no node holds, is a 422 at submit. Before, the reports'
node sets named CPUs and GPUs only and the submit judged no memory: such a gang was
accepted, waited, and was failed by the dispatcher once its capacity window had
seen no node set hold it (the last stop's top open risk)."""

from __future__ import annotations

from typing import Any

from service.schemas.cost import CostEstimate
from service.schemas.gang import PROCESS_BASE_BYTES
from service.store.cluster_capacity import ClusterCapacity
from service.store.db import transaction
from service.store.dispatchers import upsert_dispatcher
from service.store.models import Dispatcher, utcnow
from tests.api.conftest import SMALL_SPEC, Api, assert_json_error

GiB = 2**30


def _report(node: dict[str, float], count: int, *, counted_memory: bool = True) -> dict[str, Any]:
    """A settled dispatcher's report of `count` nodes alike (workers.capacity's
    node_report); `counted_memory=False`: a dispatcher from before memory was counted."""
    shape = {**node, "count": count}
    if not counted_memory:
        del shape["memory"]
    return {
        "capacity": {"CPU": node["CPU"] * count, "GPU": node["GPU"] * count},
        "nodes": [node],
        "node_sets": [[shape]],
    }


def _gang(workers: int, **model: Any) -> dict[str, Any]:
    return {
        **SMALL_SPEC,
        "task": {"kind": "adding", "num_samples": 1024},
        "model": {**SMALL_SPEC["model"], **model},
        "distributed": {"workers": workers, "cpus_per_worker": 0.01},
    }


def test_a_gang_of_small_processes_no_node_set_holds_by_memory_is_refused(api: Api) -> None:
    api.client.app.state.cluster_capacity = ClusterCapacity(refresh_seconds=0)  # type: ignore[attr-defined]
    _uid, alice = api.create_user("alice")
    # Two nodes of 16 CPUs and 16 GiB: each replica reserves a process's base (and a
    # few KiB of estimate), so fewer than 64 fit a node by memory whatever its CPUs.
    node = {"CPU": 16.0, "GPU": 0.0, "memory": 16.0 * GiB}
    with transaction(api.sessions) as session:
        upsert_dispatcher(
            session=session, dispatcher_id="d1", hostname="n", resources=_report(node, 2)
        )
    flood = _gang(128)
    [error] = assert_json_error(api.client.post("/v1/jobs", json=flood, headers=alice), 422)
    assert error["loc"] == ["body", "distributed", "workers"], error
    assert "the gang's 128 replicas of 0.01 CPU, 25" in error["msg"], error
    assert "MiB memory each" in error["msg"] and "can never start" in error["msg"], error
    # At most 16 GiB / (256 MiB + the estimate) per node, less the coordinator's.
    most = 2 * int(16 * GiB // PROCESS_BASE_BYTES)
    assert "of the replicas fit beside the coordinator at most" in error["msg"], error
    assert int(error["msg"].split(": ")[-1].split(" of the")[0]) < most, error
    fewer = _gang(100)
    assert api.client.post("/v1/jobs", json=fewer, headers=alice).status_code == 201
    # A dispatcher of the previous release counts its nodes without memory: unknown
    # there, so accepted (that dispatcher judges memory itself, as before).
    old = _report(node, 2, counted_memory=False)
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="n", resources=old)
    assert api.client.post("/v1/jobs", json=flood, headers=alice).status_code == 201


def test_a_replica_whose_memory_fits_no_node_is_refused_at_the_field_that_drives_it(
    api: Api,
) -> None:
    api.client.app.state.cluster_capacity = ClusterCapacity(refresh_seconds=0)  # type: ignore[attr-defined]
    _uid, alice = api.create_user("alice")
    # Nodes with 320 MiB for bundles: a process's base (256 MiB) and a small
    # replica, or the coordinator, fit; a 1024-wide LSTM's replica (≈ 80 MiB of
    # estimate) does not.
    node = {"CPU": 8.0, "GPU": 0.0, "memory": 320.0 * 2**20}
    with transaction(api.sessions) as session:
        upsert_dispatcher(
            session=session, dispatcher_id="d1", hostname="n", resources=_report(node, 4)
        )
    wide = {**_gang(1, cell="lstm", hidden_size=1024), "distributed": {"workers": 1}}
    [error] = assert_json_error(api.client.post("/v1/jobs", json=wide, headers=alice), 422)
    assert error["loc"] == ["body", "model", "hidden_size"], error
    msg = error["msg"]
    assert "a replica's bundle needs 1 CPU, " in msg and "MiB memory on one node" in msg, msg
    assert "the largest nodes have 8 CPU, 320 MiB memory" in msg, msg
    assert "the cost model's estimate for this spec" in msg and "base, 256.0 MiB" in msg, msg
    assert "can never start" in msg, msg
    small = {**SMALL_SPEC, "distributed": {"workers": 1}}
    assert api.client.post("/v1/jobs", json=small, headers=alice).status_code == 201


def test_bundles_that_fit_only_on_different_clusters_are_refused_at_a_memory_field() -> None:
    """Dispatcher A's nodes hold the replica, B's the coordinator, none both: each
    bundle alone fits some node, so the per-bundle test passed, and the gang was
    refused at `distributed.workers` ("0 of the replicas fit"), which no change of
    it fixes (a review)."""
    now = utcnow()
    a = _report({"CPU": 0.5, "GPU": 0.0, "memory": 8.0 * GiB}, 2)
    b = _report({"CPU": 8.0, "GPU": 0.0, "memory": 2.0 * GiB}, 2)
    rows = [
        Dispatcher(id=name, last_seen_at=now, stopped_at=None, resources=report)
        for name, report in (("a", a), ("b", b))
    ]

    class Session:  # the seam: recent_dispatchers' one read
        def scalars(self, _query: Any) -> list[Dispatcher]:
            return rows

    cost = CostEstimate(1, 6 * GiB, 1 * GiB, "schedule.batch_size", "model.hidden_size")
    [(field, why)] = ClusterCapacity(refresh_seconds=0).problems(
        session=Session(),  # type: ignore[arg-type]
        gang={"CPU": 1.5, "GPU": 0.0},
        replica={"CPU": 0.5},
        workers=1,
        cost=cost,
        now=now,
        lease_seconds=30.0,
    )
    assert field == "model.hidden_size", (field, why)  # the coordinator's estimate's
    assert why.startswith("a coordinator's bundle needs 1 CPU, 1.25 GiB memory on one node"), why
    assert "can never start" in why, why
