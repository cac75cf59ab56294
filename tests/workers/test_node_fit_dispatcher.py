"""A dispatcher judges gangs by its cluster's nodes, not only their sums: it never
claims a gang whose bundles fit the free resources only when summed over nodes, says
so in explain, and fails one whose bundle fits no node once it has watched its
capacity window. No Ray: the nodes at the dispatcher's seams."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
import ray
from ray._private.state import state as ray_state
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.node_fit import NodeShape
from service.schemas.quota import QuotaDefaults
from service.schemas.resolve import resolve
from service.settings import Settings
from service.store.db import transaction
from service.store.explain import explain_job
from service.store.jobs import enqueue
from service.store.models import Dispatcher as DispatcherRow
from service.store.models import Job
from service.store.users import create_user
from tests.hand_clock import Clock
from tests.ray_cluster import RAY_TEST_CPUS
from tests.workers.dispatcher_seams import GiB, cluster_at_seam, dispatcher_store
from workers import dispatcher as dispatcher_module
from workers import embedded, ray_runtime
from workers.capacity import CapacityWindow
from workers.dispatcher import Dispatcher
from workers.job_run import JobRun
from workers.own_gangs import OwnGang
from workers.ray_runtime import cluster_free, cluster_totals, total_resources

TWO_GPUS_PER_REPLICA = {
    "task": {"kind": "adding"},
    "distributed": {"workers": 2, "gpus_per_worker": 2},
}


def _submit(sessions: sessionmaker[Session], spec: dict[str, object], owner: str = "ann") -> int:
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name=owner, role="user")
        job, _ = enqueue(session=session, owner_id=user.id, spec=resolve(spec))
        return job.id


def _job(sessions: sessionmaker[Session], job_id: int) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


@contextmanager
def _dispatcher(
    settings: Settings, sessions: sessionmaker[Session]
) -> Iterator[tuple[Dispatcher, Clock]]:
    """Dispatcher "d1" whose capacity window reads a hand-moved clock."""
    clock = Clock()
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    dispatcher.capacity = CapacityWindow(
        settings.capacity_window_seconds,
        ceiling_cpus=settings.capacity_ceiling_cpus,
        ceiling_gpus=settings.capacity_ceiling_gpus,
        clock=clock,
    )
    try:
        yield dispatcher, clock
    finally:
        dispatcher._waker.close()


def _watch_the_window(dispatcher: Dispatcher, clock: Clock) -> None:
    dispatcher._maintain()
    clock.now = dispatcher.settings.capacity_window_seconds
    dispatcher._maintain()


def _explained(sessions: sessionmaker[Session], job: Job) -> list[str]:
    with sessions() as session:
        explanation = explain_job(
            session=session,
            job=job,
            dispatcher_timeout=timedelta(seconds=60),
            quota_defaults=QuotaDefaults(),
        )
    return [r.message for r in explanation.reasons]


def test_a_bundle_no_node_holds_is_not_claimed_then_fails_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four idle nodes of one GPU: 4 GPUs free, but no node has the 2 a replica asks."""
    settings, sessions = dispatcher_store(tmp_path)
    node = NodeShape(8, 1, 32 * GiB)
    cluster_at_seam(monkeypatch, [(node, node)] * 4)
    wide = _submit(sessions, TWO_GPUS_PER_REPLICA)
    with _dispatcher(settings, sessions) as (dispatcher, clock):
        dispatcher._maintain()
        assert dispatcher._claim_and_start() is False
        assert _job(sessions, wide).status == "queued"
        with sessions() as session:
            row = session.get(DispatcherRow, "d1")
            assert row is not None
            assert row.resources["free_node"] == node.report()
            assert "nodes" not in row.resources, "not before the window is watched"
        clock.now = settings.capacity_window_seconds
        dispatcher._maintain()
        with sessions() as session:
            row = session.get(DispatcherRow, "d1")
            assert row is not None and row.resources["nodes"] == [node.report()]
        job = _job(sessions, wide)
        assert job.status == "failed" and job.error is not None
        assert "a replica's bundle needs 1 CPU, 2 GPU" in job.error, job.error
        assert "on one node" in job.error and "8 CPU, 1 GPU, 32 GiB memory" in job.error


def test_a_gang_free_only_across_nodes_waits_and_explain_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nodes of two GPUs, each with one in use: the gang's 4 GPUs are free in sum and
    each replica fits a node's totals, so it waits (never fails) for a node to free."""
    settings, sessions = dispatcher_store(tmp_path)
    total, free = NodeShape(8, 2, 32 * GiB), NodeShape(6, 1, 24 * GiB)
    cluster_at_seam(monkeypatch, [(total, free)] * 4)
    wide = _submit(sessions, TWO_GPUS_PER_REPLICA)
    with _dispatcher(settings, sessions) as (dispatcher, clock):
        _watch_the_window(dispatcher, clock)
        assert dispatcher._claim_and_start() is False
        job = _job(sessions, wide)
        assert job.status == "queued", job.error
        messages = _explained(sessions, job)
        assert any(
            "waiting for a node with" in m and "2 GPU" in m and "most free on one now" in m
            for m in messages
        ), messages


THREE_REPLICAS_OF_3_CPUS = {
    "task": {"kind": "adding"},
    "distributed": {"workers": 3, "cpus_per_worker": 3},
}


def test_a_gang_whose_replicas_fit_no_nodes_together_fails_once_the_window_says_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two idle nodes of 5 CPUs: 10 CPUs, the gang's 10 with its coordinator, and each
    replica of 3 fits either node; but one fits on each. The claim passes it over (no
    attempt spent waiting at placement); the next maintenance fails it, naming why."""
    settings, sessions = dispatcher_store(tmp_path)
    node = NodeShape(5, 0, 32 * GiB)
    cluster_at_seam(monkeypatch, [(node, node)] * 2)
    wide = _submit(sessions, THREE_REPLICAS_OF_3_CPUS)
    with _dispatcher(settings, sessions) as (dispatcher, clock):
        dispatcher._maintain()
        assert dispatcher._claim_and_start() is False
        dispatcher._maintain()
        assert _job(sessions, wide).status == "queued", "not before the window is watched"
        clock.now = settings.capacity_window_seconds
        dispatcher._maintain()
        assert dispatcher._claim_and_start() is False
        dispatcher._maintain()
        job = _job(sessions, wide)
        assert (job.status, job.attempt) == ("failed", 0), job.error
        assert job.error is not None and "3 replicas of 3 CPU" in job.error, job.error
        assert "fit no set of the cluster's nodes at once" in job.error, job.error
        assert "2 of the replicas fit beside the coordinator at most" in job.error, job.error
        # Settled, the report lists the window's node sets (the submit's check), and
        # explain reads them: another such job, not yet claimed, is not waiting.
        with sessions() as session:
            row = session.get(DispatcherRow, "d1")
            assert row is not None
            assert row.resources["node_sets"] == [
                [{"CPU": 5.0, "GPU": 0.0, "memory": 32.0 * GiB, "count": 2}]
            ]
        again = _job(sessions, _submit(sessions, THREE_REPLICAS_OF_3_CPUS, owner="bob"))
        [reason] = _explained(sessions, again)
        assert "fit no set of the cluster's nodes at once" in reason, reason


def test_a_gang_whose_replicas_fit_the_free_nodes_only_apart_waits_and_explain_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nodes of 8 CPUs with 5 free each: the gang fits the cluster when idle (two
    replicas of 3 a node), so it waits, passed over by each claim, never failed."""
    settings, sessions = dispatcher_store(tmp_path)
    total, free = NodeShape(8, 0, 32 * GiB), NodeShape(5, 0, 24 * GiB)
    cluster_at_seam(monkeypatch, [(total, free)] * 2)
    wide = _submit(sessions, THREE_REPLICAS_OF_3_CPUS)
    with _dispatcher(settings, sessions) as (dispatcher, clock):
        _watch_the_window(dispatcher, clock)
        assert dispatcher._claim_and_start() is False
        assert dispatcher.passed_over.known_for((free, free)) == (wide,)
        assert dispatcher._claim_and_start() is False, "left out untested on the same nodes"
        assert [job.job_id for job in dispatcher.passed_over.to_judge()] == [wide]
        dispatcher._maintain()
        job = _job(sessions, wide)
        assert (job.status, job.attempt) == ("queued", 0), job.error
        messages = _explained(sessions, job)
        assert any(
            "room for the whole gang at once" in m and "hold 2 of its 3 replicas of 3 CPU" in m
            for m in messages
        ), messages
        cluster_at_seam(monkeypatch, [(total, total)] * 2)  # the other gangs ended
        dispatcher._maintain()
        assert not any("room" in m for m in _explained(sessions, _job(sessions, wide)))


def test_a_waited_gang_that_packs_on_no_set_of_the_free_nodes_holds_no_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same nodes with nothing of the dispatcher's running (3 CPUs of each held
    outside it): the gang has waited an hour, but its room is the free nodes, which it
    cannot pack, so it holds nothing and explain says so (it said room was held for
    it while the claim held the cluster idle: a review)."""
    settings, sessions = dispatcher_store(tmp_path)
    total, free = NodeShape(8, 0, 32 * GiB), NodeShape(5, 0, 24 * GiB)
    cluster_at_seam(monkeypatch, [(total, free)] * 2)
    wide = _submit(sessions, THREE_REPLICAS_OF_3_CPUS)
    with transaction(sessions) as session:
        session.get_one(Job, wide).created_at -= timedelta(hours=1)
    with _dispatcher(settings, sessions) as (dispatcher, clock):
        _watch_the_window(dispatcher, clock)
        assert dispatcher._claim_and_start() is False
        dispatcher._maintain()
        with sessions() as session:
            report = session.get_one(DispatcherRow, "d1").resources
            explanation = explain_job(
                session=session,
                job=session.get_one(Job, wide),
                dispatcher_timeout=timedelta(seconds=60),
                quota_defaults=QuotaDefaults(),
                hold_room_after=settings.hold_room_after(),
            )
    assert report["room"]["unplaceable"] == [wide]
    messages = [r.message for r in explanation.reasons]
    assert not any("room is held for it" in m for m in messages), messages
    assert any("smaller jobs queued behind it start meanwhile" in m for m in messages), messages


class _RunningGang:
    """A running job's stand-in, as the dispatcher's room reads it (JobRun.gang)."""

    def __init__(self, gang: OwnGang) -> None:
        self._gang = gang

    def gang(self) -> OwnGang:
        return self._gang


def test_a_waited_gang_that_packs_on_no_set_of_the_rooms_nodes_holds_no_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five nodes of 8 CPUs with 5 free, 3 held on each: 1.5 by the dispatcher's own
    gang on n0 (Ray's placement table says), 1.5 outside. A waited gang of 3 x 6 + 1
    CPUs could pack only if n0's 6.5 were three nodes: it holds nothing, and explain
    says so. Counted on every node, the own gang's 1.5 let it hold the cluster for as
    long as the dispatcher's gangs kept running (a review)."""
    settings, sessions = dispatcher_store(tmp_path)
    total, free = NodeShape(8, 0, 32 * GiB), NodeShape(5, 0, 24 * GiB)
    cluster_at_seam(monkeypatch, [(total, free)] * 5)
    wide = _submit(
        sessions, {"task": {"kind": "adding"}, "distributed": {"workers": 3, "cpus_per_worker": 6}}
    )
    with transaction(sessions) as session:
        session.get_one(Job, wide).created_at -= timedelta(hours=1)
    with _dispatcher(settings, sessions) as (dispatcher, clock):
        own = _RunningGang(OwnGang(1.5, 0.0, 0.0, {"n0": NodeShape(1.5, 0.0, 0.0)}))
        dispatcher.runs[(99, 1)] = (cast(JobRun, own), threading.Thread())
        _watch_the_window(dispatcher, clock)
        with sessions() as session:
            report = session.get_one(DispatcherRow, "d1").resources
    assert report["room"]["nodes"][0]["CPU"] == 6.5 and report["room"]["nodes"][1]["CPU"] == 5
    assert report["room"]["unplaceable"] == [wide]


@pytest.mark.ray
def test_the_per_node_reads_agree_with_rays_public_sums(ray_address: str) -> None:
    """The per-node seam (a private Ray module: no public call without the dashboard)
    agrees with Ray's public sums on the session's one-node Ray."""
    (cpus, gpus), totals = cluster_totals()
    (free_cpus, _), frees = cluster_free()
    assert totals is not None and frees is not None
    [total], [free] = totals.values(), frees.values()
    assert list(totals) == list(frees)  # the same node, by its id
    assert (cpus, gpus) == (total.cpus, total.gpus) == total_resources() == (RAY_TEST_CPUS, 0)
    assert total.memory == ray.cluster_resources()["memory"] > 0  # type: ignore[no-untyped-call]
    assert 0 <= free_cpus == free.cpus <= total.cpus and 0 < free.memory <= total.memory


def test_with_a_ceiling_above_the_cluster_nothing_is_judged_by_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An autoscaler's ceiling: the cluster may grow by nodes of any shape. The gang is
    neither failed nor skipped by the claim (it asks Ray for its placement, so the
    autoscaler sees the demand), and explain does not say it waits for a node."""
    settings, sessions = dispatcher_store(tmp_path)
    settings = settings.model_copy(update={"capacity_ceiling_gpus": 16.0})
    node = NodeShape(8, 1, 32 * GiB)
    cluster_at_seam(monkeypatch, [(node, node)] * 4)
    seen: dict[str, object] = {}
    monkeypatch.setattr(dispatcher_module, "claim_next", lambda **kwargs: seen.update(kwargs))
    wide = _submit(sessions, TWO_GPUS_PER_REPLICA)
    with _dispatcher(settings, sessions) as (dispatcher, clock):
        _watch_the_window(dispatcher, clock)
        job = _job(sessions, wide)
        assert job.status == "queued"
        assert dispatcher._claim_and_start() is False and seen["free_nodes"] is None
        assert not any("node" in m for m in _explained(sessions, job))
        with sessions() as session:
            row = session.get(DispatcherRow, "d1")
            assert row is not None and "nodes" not in row.resources
            assert "free_node" not in row.resources and "free_nodes" not in row.resources


def test_embedded_ceilings_leave_nodes_judged_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`server --embedded`: its local Ray is the whole cluster, its totals the ceilings:
    a bundle larger than the machine (here its memory) fails at the first look."""
    settings, sessions = dispatcher_store(tmp_path)
    machine = NodeShape(4, 0, 2**20)  # 1 MiB for bundles: less than any estimate
    cluster_at_seam(monkeypatch, [(machine, machine)])
    settings = embedded.local_ray_ceilings(settings, 4.0, 0.0)
    job_id = _submit(sessions, {"task": {"kind": "adding"}, "distributed": {"workers": 2}})
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    try:
        dispatcher._maintain()
        job = _job(sessions, job_id)
        assert job.status == "failed" and job.error is not None
        assert "memory on one node" in job.error and "1 MiB memory" in job.error, job.error
    finally:
        dispatcher._waker.close()


def test_unreadable_per_node_figures_are_logged_once_and_judge_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> dict[str, dict[str, float]]:
        raise RuntimeError("a Ray release moved it")

    monkeypatch.setattr(ray_state, "available_resources_per_node", broken)
    monkeypatch.setattr(ray_runtime, "free_resources", lambda: (4.0, 1.0))  # Ray's public sum
    caplog.set_level(logging.WARNING, logger="workers.ray_runtime")
    assert cluster_free() == ((4.0, 1.0), None) and cluster_free() == ((4.0, 1.0), None)
    logged = [r.getMessage() for r in caplog.records if r.name == "workers.ray_runtime"]
    assert len(logged) == 1 and "judging by sums" in logged[0], logged
    window = CapacityWindow(60, clock=Clock())
    window.observe(8, 1, ())
    assert window.node_report(None) == {} and window.nodes() == ()
