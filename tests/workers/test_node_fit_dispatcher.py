"""A dispatcher judges gangs by its cluster's nodes, not only their sums: it never
claims a gang whose bundles fit the free resources only when summed over nodes, says
so in explain, and fails one whose bundle fits no node once it has watched its
capacity window. No Ray: the nodes at the dispatcher's seams."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import ray
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.node_fit import NodeShape
from service.schemas.quota import QuotaDefaults
from service.schemas.resolve import resolve
from service.store.db import transaction
from service.store.explain import explain_job
from service.store.jobs import enqueue
from service.store.models import Dispatcher as DispatcherRow
from service.store.models import Job
from service.store.users import create_user
from tests.hand_clock import Clock
from tests.ray_cluster import RAY_TEST_CPUS
from tests.workers.dispatcher_seams import GiB, cluster_at_seam, dispatcher_store
from workers.capacity import CapacityWindow
from workers.dispatcher import Dispatcher
from workers.ray_runtime import node_resources, total_resources

TWO_GPUS_PER_REPLICA = {
    "task": {"kind": "adding"},
    "distributed": {"workers": 2, "gpus_per_worker": 2},
}


def _submit(sessions: sessionmaker[Session], spec: dict[str, object]) -> int:
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        job, _ = enqueue(session=session, owner_id=user.id, spec=resolve(spec))
        return job.id


def _job(sessions: sessionmaker[Session], job_id: int) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _watching(dispatcher: Dispatcher) -> Clock:
    clock = Clock()
    dispatcher.capacity = CapacityWindow(dispatcher.settings.capacity_window_seconds, clock=clock)
    return clock


def test_a_bundle_no_node_holds_is_not_claimed_then_fails_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four idle nodes of one GPU: 4 GPUs free, but no node has the 2 a replica asks."""
    settings, sessions = dispatcher_store(tmp_path)
    node = NodeShape(8, 1, 32 * GiB)
    cluster_at_seam(monkeypatch, [(node, node)] * 4)
    wide = _submit(sessions, TWO_GPUS_PER_REPLICA)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    clock = _watching(dispatcher)
    try:
        dispatcher._maintain()
        assert dispatcher._claim_and_start() is False
        assert _job(sessions, wide).status == "queued"
        with sessions() as session:
            row = session.get(DispatcherRow, "d1")
            assert row is not None
            assert row.resources["nodes"] == [node.report()]
            assert row.resources["free_node"] == node.report()
        clock.now = settings.capacity_window_seconds
        dispatcher._maintain()
        job = _job(sessions, wide)
        assert job.status == "failed" and job.error is not None
        assert "a replica's bundle needs 1 CPU, 2 GPU" in job.error, job.error
        assert "on one node" in job.error and "8 CPU, 1 GPU, 32 GiB memory" in job.error
    finally:
        dispatcher._waker.close()


def test_a_gang_free_only_across_nodes_waits_and_explain_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nodes of two GPUs, each with one in use: the gang's 4 GPUs are free in sum and
    each replica fits a node's totals, so it waits (never fails) for a node to free."""
    settings, sessions = dispatcher_store(tmp_path)
    total, free = NodeShape(8, 2, 32 * GiB), NodeShape(6, 1, 24 * GiB)
    cluster_at_seam(monkeypatch, [(total, free)] * 4)
    wide = _submit(sessions, TWO_GPUS_PER_REPLICA)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    clock = _watching(dispatcher)
    try:
        dispatcher._maintain()
        clock.now = settings.capacity_window_seconds
        dispatcher._maintain()
        assert dispatcher._claim_and_start() is False
        job = _job(sessions, wide)
        assert job.status == "queued", job.error
        with sessions() as session:
            explanation = explain_job(
                session=session,
                job=job,
                dispatcher_timeout=timedelta(seconds=60),
                quota_defaults=QuotaDefaults(),
            )
        messages = [r.message for r in explanation.reasons]
        assert any(
            "waiting for a node with" in m and "2 GPU" in m and "spread over nodes" in m
            for m in messages
        ), messages
    finally:
        dispatcher._waker.close()


@pytest.mark.ray
def test_node_resources_reads_what_ray_counts(ray_address: str) -> None:
    """The per-node seam (a private Ray module: no public call without the dashboard)
    agrees with Ray's public sums on the session's one-node Ray."""
    [(total, free)] = node_resources()
    assert (total.cpus, total.gpus) == total_resources() == (RAY_TEST_CPUS, 0.0)
    assert total.memory == ray.cluster_resources()["memory"] > 0  # type: ignore[no-untyped-call]
    assert 0 <= free.cpus <= total.cpus and 0 < free.memory <= total.memory
