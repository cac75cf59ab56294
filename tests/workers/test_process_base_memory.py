"""A gang of many tiny processes (a walkthrough's `workers: 256, cpus_per_worker:
0.01`) passed every CPU check and was started: each replica is a process holding
the interpreter and torch, which no bundle reserved, so hundreds of them could take
a node's memory. Each bundle now reserves that base (gang.PROCESS_BASE_BYTES): the
claim passes such a gang over where the processes do not fit, and the dispatcher
fails it once its capacity window says no set of nodes ever held it, naming memory.
No Ray: the nodes at the dispatcher's seams."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.node_fit import NodeShape
from service.schemas.resolve import resolve
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Job
from service.store.users import create_user
from tests.hand_clock import Clock
from tests.workers.dispatcher_seams import GiB, cluster_at_seam, dispatcher_store
from workers import embedded
from workers.capacity import CapacityWindow
from workers.dispatcher import Dispatcher

TINY_REPLICAS = {
    "task": {"kind": "adding", "num_samples": 1280},
    "distributed": {"workers": 128, "cpus_per_worker": 0.01},
}


def _enqueued(sessions: sessionmaker[Session]) -> Job:
    """The tiny gang, queued; its estimates alone would fit a node of 16 GiB."""
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        job, _ = enqueue(session=session, owner_id=user.id, spec=resolve(TINY_REPLICAS))
        assert job.replica_memory_bytes is not None and job.coordinator_memory_bytes is not None
        assert 128 * job.replica_memory_bytes + job.coordinator_memory_bytes < 16 * GiB
        return job


def _failed_naming_memory(sessions: sessionmaker[Session], job_id: int) -> str:
    """The job's failure, which names the memory each replica reserves and, as where
    the limit comes from, the nodes seen (not a CPU or GPU ceiling)."""
    with sessions() as session:
        failed = session.get(Job, job_id)
        assert failed is not None and failed.error is not None
        assert (failed.status, failed.attempt) == ("failed", 0), failed.error
        assert "128 replicas of 0.01 CPU" in failed.error, failed.error
        assert "MiB memory each" in failed.error, failed.error
        assert failed.error.endswith("(the nodes the Ray cluster showed in the last 600 s)")
        return failed.error


def test_a_gang_of_many_tiny_processes_is_not_started_and_fails_naming_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two idle nodes of 16 CPUs and 16 GiB: the gang's 2.28 CPUs fit either, its
    estimates (a few MiB a replica) fit too; its 129 processes' bases (32 GiB) do
    not fit both together."""
    settings, sessions = dispatcher_store(tmp_path)
    node = NodeShape(16, 0, 16 * GiB)
    cluster_at_seam(monkeypatch, [(node, node)] * 2)
    job_id = _enqueued(sessions).id
    clock = Clock()
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    dispatcher.capacity = CapacityWindow(settings.capacity_window_seconds, clock=clock)
    try:
        dispatcher._maintain()
        assert dispatcher._claim_and_start() is False, "started: the processes were not counted"
        clock.now = settings.capacity_window_seconds
        dispatcher._maintain()
        assert dispatcher._claim_and_start() is False
        dispatcher._maintain()
    finally:
        dispatcher._waker.close()
    error = _failed_naming_memory(sessions, job_id)
    assert "fit no set of the cluster's nodes at once" in error, error


def test_under_embedded_ceilings_a_memory_misfit_names_the_nodes_not_the_cpu_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`server --embedded`: its ceilings are the local Ray's CPUs and GPUs, judged from
    the start; a gang whose processes' memory its one node cannot hold named
    LAGTRAIN_EMBEDDED_RAY_CPUS as its limit's source (a review)."""
    settings, sessions = dispatcher_store(tmp_path)
    machine = NodeShape(8, 0, 4 * GiB)
    cluster_at_seam(monkeypatch, [(machine, machine)])
    settings = embedded.local_ray_ceilings(settings, 8.0, 0.0)
    job_id = _enqueued(sessions).id
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    try:
        dispatcher._maintain()
        assert dispatcher._claim_and_start() is False
        dispatcher._maintain()
    finally:
        dispatcher._waker.close()
    error = _failed_naming_memory(sessions, job_id)
    assert "EMBEDDED_RAY_CPUS" not in error, error
