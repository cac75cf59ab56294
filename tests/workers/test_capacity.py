"""Capacity dips do not fail queued jobs (issue 9, point 2): the window keeps the
largest total the cluster showed; a job fails as unschedulable only above it (or
above the operator's ceiling), and explain says a job under it waits for capacity."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.node_fit import ClusterRoom, NodeShape
from service.schemas.quota import QuotaDefaults
from service.schemas.resolve import resolve
from service.settings import Settings
from service.store.db import transaction
from service.store.explain import explain_job
from service.store.jobs import enqueue
from service.store.models import Job
from service.store.users import create_user
from tests.conftest import on_one_database
from tests.hand_clock import Clock
from tests.polling import wait_until
from tests.ray_cluster import RAY_TEST_CPUS
from tests.workers.dispatcher_seams import GiB, dispatcher_store, idle_node_at_seam
from workers import embedded
from workers.capacity import Capacity, CapacityWindow
from workers.dispatcher import Dispatcher
from workers.own_gangs import ENDED_COUNT_SECONDS, OwnGang, OwnGangs, own_gang
from workers.ray_runtime import cluster_totals


def test_the_window_remembers_the_largest_total_until_it_ages_out() -> None:
    clock = Clock()
    window = CapacityWindow(60, clock=clock)
    window.observe(8, 1)
    clock.now = 10
    window.observe(2, 0)  # a node with 6 CPUs and the GPU rebooting
    assert (window.largest().cpus, window.largest().gpus) == (8, 1)
    clock.now = 75
    window.observe(2, 0)  # still gone after the whole window: it is the cluster now
    assert (window.largest().cpus, window.largest().gpus) == (2, 0)


def test_an_operator_ceiling_replaces_the_observed_figure() -> None:
    window = CapacityWindow(60, ceiling_gpus=4, clock=Clock())
    window.observe(8, 0)
    assert (window.largest().cpus, window.largest().gpus) == (8, 4)
    assert "ceiling" in window.describe()


def test_the_window_is_settled_once_watched_whole_or_both_ceilings_are_set() -> None:
    clock = Clock()
    window = CapacityWindow(60, clock=clock)
    assert not window.settled(), "nothing watched yet"
    window.observe(2, 0)
    clock.now = 59
    assert not window.settled(), "a node may still be rejoining"
    clock.now = 60
    assert window.settled()
    assert not CapacityWindow(60, ceiling_cpus=8, clock=Clock()).settled()
    assert CapacityWindow(60, ceiling_cpus=8, ceiling_gpus=0, clock=Clock()).settled()


def test_a_dispatcher_fails_no_job_as_too_large_before_it_has_watched_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ray head restart restarts every worker; the first to reconnect sees only the
    nodes that rejoined. It judges nothing too large until it has watched the whole
    window, then as before. No Ray: the cluster's totals at the dispatcher's seam."""
    settings, sessions = dispatcher_store(tmp_path)
    idle_node_at_seam(monkeypatch, 4.0)
    gpu_gang = _submit(
        sessions, {"task": {"kind": "adding"}, "distributed": {"workers": 2, "gpus_per_worker": 1}}
    )
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    clock = Clock()
    dispatcher.capacity = CapacityWindow(settings.capacity_window_seconds, clock=clock)
    try:
        dispatcher._maintain()
        clock.now = settings.capacity_window_seconds - 1
        dispatcher._maintain()
        with sessions() as session:
            job = session.get(Job, gpu_gang)
            assert job is not None
            assert job.status == "queued", job.error
        clock.now = settings.capacity_window_seconds
        dispatcher._maintain()
        with sessions() as session:
            job = session.get(Job, gpu_gang)
            assert job is not None
            assert job.status == "failed", job.status
            assert job.error is not None and "2 GPU" in job.error and "0 GPU" in job.error
    finally:
        dispatcher._waker.close()


def _submit(sessions: sessionmaker[Session], spec: dict[str, object]) -> int:
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name=f"cap-{uuid.uuid4().hex[:12]}", role="user")
        job, _ = enqueue(session=session, owner_id=user.id, spec=resolve(spec))
        return job.id


@pytest.fixture
def dipped_dispatcher(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None, ray_address: str
) -> Iterator[Dispatcher]:
    """A dispatcher whose window saw the cluster larger (10 CPUs) than it is now (the
    session's Ray): a node with 4 CPUs left a moment ago."""
    dispatcher = Dispatcher(settings, session_factory)
    # It has watched the whole window (a dispatcher judges nothing too large before).
    clock = Clock()
    dispatcher.capacity = CapacityWindow(settings.capacity_window_seconds, clock=clock)
    _totals, nodes = cluster_totals()
    assert nodes is not None, "Ray's per-node figures"
    dispatcher.capacity.observe(RAY_TEST_CPUS + 4, 0, (*nodes.values(), NodeShape(4, 0, 8 * GiB)))
    clock.now = settings.capacity_window_seconds
    thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
    thread.start()
    yield dispatcher
    dispatcher.stop()
    thread.join(timeout=60)


@on_one_database("sqlite")
@pytest.mark.ray
def test_a_capacity_dip_fails_no_queued_job_and_explain_says_it_waits(
    dipped_dispatcher: Dispatcher,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="workers.dispatcher")
    # 4 workers x 2 CPUs: more than the cluster has now, less than it showed.
    waiting = _submit(
        session_factory,
        {"task": {"kind": "adding"}, "distributed": {"workers": 4, "cpus_per_worker": 2}},
    )
    too_large = _submit(
        session_factory,
        {"task": {"kind": "adding"}, "distributed": {"workers": 2, "gpus_per_worker": 1}},
    )
    seen = dipped_dispatcher.maintenance_runs
    wait_until(
        lambda: dipped_dispatcher.maintenance_runs >= seen + 3,
        timeout=60,
        what="three maintenance rounds",
    )
    with session_factory() as session:
        job = session.get(Job, waiting)
        big = session.get(Job, too_large)
        assert job is not None and big is not None
        assert job.status == "queued", job.error
        assert big.status == "failed" and big.error is not None
        assert "2 GPU" in big.error and "0 GPU" in big.error, big.error
        # The operator reading the worker's log sees it too, and only the failed one.
        logged = [r.getMessage() for r in caplog.records if r.name == "workers.dispatcher"]
        assert logged == [f"job {too_large} failed, too large for the cluster: {big.error}"]
        timeout = timedelta(seconds=60)
        explanation = explain_job(
            session=session, job=job, dispatcher_timeout=timeout, quota_defaults=QuotaDefaults()
        )
    messages = [r.message for r in explanation.reasons]
    assert any("waiting for capacity" in m for m in messages), messages


def test_an_embedded_dispatcher_judges_by_its_local_ray_from_its_start(tmp_path: Path) -> None:
    """`server --embedded` started the Ray it runs on, which never grows: its totals are
    the ceilings (an operator's own win), so the window is settled from the start."""
    settings, _sessions = dispatcher_store(tmp_path)
    local = embedded.local_ray_ceilings(settings, 4.0, 0.0)
    window = CapacityWindow(
        local.capacity_window_seconds,
        ceiling_cpus=local.capacity_ceiling_cpus,
        ceiling_gpus=local.capacity_ceiling_gpus,
        clock=Clock(),
    )
    assert window.settled() and window.largest() == Capacity(4.0, 0.0)
    operator = settings.model_copy(update={"capacity_ceiling_gpus": 2.0})
    assert embedded.local_ray_ceilings(operator, 4.0, 0.0).capacity_ceiling_gpus == 2.0


def test_the_room_a_hold_counts_on_is_what_this_dispatcher_could_free() -> None:
    """Its newest totals, but no more than what is free plus what its own gangs hold:
    4 of 8 CPUs held outside it (another Ray workload) would never come free, and a
    hold on them stopped the cluster for good (a review)."""
    window = CapacityWindow(60.0, clock=Clock())
    assert window.room((8.0, 0.0), []) is None  # nothing observed yet
    node = NodeShape(8.0, 1.0, 64 * GiB)
    window.observe(8.0, 1.0, (node,))
    three, gpu = OwnGang(3.0, 0.0), OwnGang(3.0, 1.0)
    assert window.room((4.0, 1.0), [three]) == ClusterRoom(7.0, 1.0, (node,))  # nodes unread
    assert window.room((4.0, 0.0), [three, gpu]) == ClusterRoom(8.0, 1.0, (node,))
    assert window.room((4.0, 1.0), [three], {"#0": NodeShape(4.0, 1.0, 64 * GiB)}) == (
        ClusterRoom(7.0, 1.0, (NodeShape(7.0, 1.0, 64 * GiB),))
    )
    # None of its gangs running: what is free now, per node too (a review: two nodes
    # of 8 with 5 held outside on each held for a 5-CPU replica, for good).
    free_node = NodeShape(3.0, 1.0, 64 * GiB)
    assert window.room((3.0, 1.0), [], {"#0": free_node}) == ClusterRoom(3.0, 1.0, (free_node,))


def test_per_node_the_room_adds_only_what_its_own_gangs_hold() -> None:
    """Two nodes of 16 CPUs and 2 GPUs, one GPU of each held outside the dispatcher
    (a notebook, a leaked placement group): while its own gangs use CPUs only, no node
    could free 2 GPUs, so a 2-GPU replica holds nothing. The nodes' totals were the
    room before, and such a gang held every GPU job back for ever while CPU jobs kept
    its own gangs running (a review). Memory the same way."""
    window = CapacityWindow(60.0, clock=Clock())
    full = NodeShape(16.0, 2.0, 64 * GiB)
    window.observe(32.0, 4.0, {"a": full, "b": full})
    free = {"a": NodeShape(12.0, 1.0, 48 * GiB), "b": NodeShape(14.0, 1.0, 48 * GiB)}
    # Gangs of 4 and 2 CPUs (and 3 + 1 GiB), both on node a by Ray's table.
    placed = [
        OwnGang(4.0, 0.0, 3 * GiB, {"a": NodeShape(4.0, 0.0, 3 * GiB)}),
        OwnGang(2.0, 0.0, 1 * GiB, {"a": NodeShape(2.0, 0.0, 1 * GiB)}),
    ]
    room = window.room((26.0, 2.0), placed, free)
    assert room is not None and room.nodes == (
        NodeShape(16.0, 1.0, 52 * GiB),  # 12 + 6 CPUs, at most the node's 16; 48 + 4 GiB
        NodeShape(14.0, 1.0, 48 * GiB),  # nothing of its own there
    )
    # A gang whose nodes are not known yet counts on every node.
    room = window.room((26.0, 2.0), [OwnGang(4.0, 0.0, 2 * GiB)], free)
    assert room is not None and [(n.cpus, n.memory) for n in room.nodes or ()] == [
        (16.0, 50 * GiB),
        (16.0, 50 * GiB),
    ]
    # Its GPU gang on node b: a second GPU there only.
    on_b = [OwnGang(4.0, 1.0, 0.0, {"b": NodeShape(4.0, 1.0, 0.0)})]
    room = window.room((26.0, 1.0), on_b, {"a": free["a"], "b": NodeShape(10.0, 0.0, 48 * GiB)})
    assert room is not None and [node.gpus for node in room.nodes or ()] == [1.0, 1.0]
    # Paired by node id, not by position: node a replaced by c between the two reads
    # (c's totals are not known yet: what it has free).
    c = NodeShape(8.0, 0.0, 32 * GiB)
    room = window.room((22.0, 1.0), on_b, {"b": NodeShape(10.0, 0.0, 48 * GiB), "c": c})
    assert room is not None and room.nodes == (NodeShape(14.0, 1.0, 48 * GiB), c)


def test_with_nothing_of_its_own_running_the_room_is_what_is_free_memory_too() -> None:
    """A node whose memory is partly reserved outside the dispatcher: with none of its
    gangs running the room is each node's free figures, memory included (its total
    memory counted a gang that fits only the total as able to hold an idle cluster:
    a review). And when the totals' per-node read failed, per node nothing is said
    while its gangs run (judged by the sums), not the free figures alone."""
    window = CapacityWindow(60.0, clock=Clock())
    window.observe(8.0, 0.0, {"a": NodeShape(8.0, 0.0, 16 * GiB)})
    free = {"a": NodeShape(8.0, 0.0, 6 * GiB)}
    assert window.room((8.0, 0.0), [], free) == ClusterRoom(8.0, 0.0, (free["a"],))
    window.observe(8.0, 0.0, {})  # the totals' per-node read failed
    placed = [OwnGang(4.0, 0.0, 0.0, {"a": NodeShape(4.0, 0.0, 0.0)})]
    assert window.room((4.0, 0.0), placed, {"a": NodeShape(4.0, 0.0, 6 * GiB)}) == (
        ClusterRoom(8.0, 0.0, None)
    )


def test_an_ended_gang_still_counts_while_ray_catches_up() -> None:
    """Ray's free figures show a removed placement group a moment later: counted as
    free at once, the room shrank and a hold lapsed (tests/workers/test_room_hold_ray.py)."""
    clock = Clock()
    gangs = OwnGangs(clock=clock)
    spec = resolve(
        {"task": {"kind": "adding"}, "distributed": {"workers": 2, "cpus_per_worker": 1}}
    )
    gang = own_gang(spec, None, {"n1": NodeShape(3.0, 0.0, 0.0)})
    assert gangs.held([gang]) == [OwnGang(3.0, 0.0, 0.0, {"n1": NodeShape(3.0, 0.0, 0.0)})]
    gangs.ended(gang)
    assert gangs.held([]) == [gang]
    clock.now = ENDED_COUNT_SECONDS + 0.1
    assert gangs.held([]) == []
