"""The warm pool (workers.warm_pool): a second job reuses the first job's actor
processes and still reproduces the reference runner's trajectory; the pool stays
within its bound, releases idle actors, and never takes back the actors of a job
that did not end cleanly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Job
from service.store.models.tables import Dispatcher as DispatcherRow
from service.store.users import create_user
from tests.conftest import on_one_database
from tests.polling import wait_until
from tests.workers.conftest import PooledDispatcher
from tests.workers.reference import reference_records
from workers.ray_job import RayJob, RecordEvent
from workers.warm_pool import WarmPool
from workers.whole_run import run_on_ray

pytestmark = pytest.mark.ray

LINREG = {
    "task": {"kind": "lag_paper_linreg"},
    "aggregation": {"strategy": "lag_wk"},
    "distributed": {"workers": 2, "cpus_per_worker": 0.5},
    "schedule": {"rounds": 15, "checkpoint_every": 10},
}
DIGITS = {
    "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
    "model": {"cell": "gru", "hidden_size": 16},
    "aggregation": {"strategy": "lasg_wk2"},
    "distributed": {"workers": 2, "cpus_per_worker": 0.5},
    "schedule": {"rounds": 8, "batch_size": 16, "eval_every": 4},
}


@pytest.fixture
def pool(ray_address: str) -> Iterator[WarmPool]:
    warm = WarmPool(size=3, idle_seconds=3600)
    yield warm
    warm.close()


def _stats(pool: WarmPool) -> dict[int, int]:
    """pid -> tasks built, of the pool's idle actors."""
    stats = [ray.get(idle.actor.reset.remote()) for idle in pool._idle]
    return {s["pid"]: s["tasks_built"] for s in stats}


def _run(spec: ResolvedSpec, pool: WarmPool, tmp_path: Path) -> list[dict[str, Any]]:
    events = run_on_ray(spec, job_key="w", artifacts_url=str(tmp_path), dtype="float64", pool=pool)
    return [e.values for e in events if isinstance(e, RecordEvent)]


def test_jobs_reuse_warm_actors_and_keep_the_reference_trajectory(
    pool: WarmPool, tmp_path: Path
) -> None:
    linreg, digits = resolve(LINREG), resolve(DIGITS)
    runs = [(linreg, _run(linreg, pool, tmp_path))]
    assert pool.idle_count() == 3  # coordinator + 2 replicas handed back
    warm = _stats(pool)
    assert set(warm.values()) == {1}
    runs.append((digits, _run(digits, pool, tmp_path)))  # another task, same gang shape
    runs.append((linreg, _run(linreg, pool, tmp_path)))  # its task is still cached
    after = _stats(pool)
    assert set(after) == set(warm)  # the same processes served every job
    assert set(after.values()) == {2}  # linreg's data was built once per actor
    for spec, got_run in runs:
        want_run = reference_records(spec)
        assert len(got_run) == len(want_run) == spec.schedule.rounds
        for got, want in zip(got_run, want_run, strict=True):
            assert got["uploads_total"] == want["uploads_total"]
            assert got["train_loss"] == pytest.approx(want["train_loss"], abs=1e-9, rel=0)


def test_a_warm_actor_that_died_while_idle_costs_the_job_nothing(
    pool: WarmPool, tmp_path: Path
) -> None:
    """An idle actor killed (a memory kill: pooled actors reserve no memory) is still
    taken first, its start long done; the gang then starts its own actors instead
    of failing the attempt (a review: each dead idle actor cost a job an attempt)."""
    linreg = resolve(LINREG)
    _run(linreg, pool, tmp_path)
    assert pool.idle_count() == 3
    dead = pool._idle[0].actor
    ray.kill(dead, no_restart=True)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(dead.reset.remote(), timeout=30)
    got_run = _run(linreg, pool, tmp_path)
    want_run = reference_records(linreg)
    assert len(got_run) == len(want_run) == linreg.schedule.rounds
    assert got_run[-1]["train_loss"] == pytest.approx(want_run[-1]["train_loss"], abs=1e-9, rel=0)


def test_the_pool_is_bounded_and_releases_idle_actors(ray_address: str, tmp_path: Path) -> None:
    small = WarmPool(size=2, idle_seconds=3600)
    try:
        _run(resolve(LINREG), small, tmp_path)  # a gang of 3
        assert small.idle_count() == 2
        small.idle_seconds = 0.0
        assert small.release_idle() == 2
        assert small.idle_count() == 0
    finally:
        small.close()


def test_a_job_stopped_early_gives_nothing_back(pool: WarmPool, tmp_path: Path) -> None:
    job = RayJob(
        resolve(LINREG), job_key="w-stop", artifacts_url=str(tmp_path), dtype="float64", pool=pool
    )
    try:
        job.start(ready_timeout_s=60)
        taken = [actor for _node, actor in job.pooled]
        next(job.events())  # one round, then a cancel
    finally:
        job.stop()
    assert pool.idle_count() == 0
    for actor in taken:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.reset.remote(), timeout=30)


@on_one_database("postgresql")
def test_a_dispatcher_with_a_pool_runs_jobs_on_warm_actors(
    pooled_dispatcher: PooledDispatcher, session_factory: Any
) -> None:
    dispatcher, pool = pooled_dispatcher.dispatcher, pooled_dispatcher.pool

    def reported_pool() -> dict[str, int]:
        with session_factory() as session:
            row = session.get(DispatcherRow, dispatcher.id)
            return {} if row is None else dict(row.resources.get("warm_pool", {}))

    # The dispatcher reports its pool; `started` grows once the actors warmed up.
    wait_until(lambda: reported_pool().get("started") == 3, timeout=300, what="a started pool")
    assert reported_pool() == {"size": 3, "idle": 3, "started": 3}
    with transaction(session_factory) as session:
        user, _, _ = create_user(session=session, name="pool-user", role="user")
        ids = [
            enqueue(session=session, owner_id=user.id, spec=resolve(LINREG))[0].id for _ in range(2)
        ]

    def statuses() -> list[str]:
        with session_factory() as session:
            return [session.get(Job, job_id).status for job_id in ids]

    wait_until(
        lambda: all(s in {"succeeded", "failed", "cancelled"} for s in statuses()),
        timeout=180,
        what="both jobs to end",
    )
    assert statuses() == ["succeeded", "succeeded"]
    wait_until(lambda: pool.idle_count() == 3, timeout=30, what="hand-back")
    pooled_dispatcher.stop()
    assert pool.idle_count() == 0  # closed with the dispatcher


def test_a_gang_taken_before_the_last_job_handed_back_waits_for_its_actors(
    ray_address: str,
) -> None:
    """A cleanly ended job frees its placement group before its actors are reset and
    handed back, so the next job can be claimed in between: take() then waits for the
    announced actor (milliseconds) instead of starting a process that imports torch."""
    node = ray.get_runtime_context().get_node_id()
    one = WarmPool(size=1, idle_seconds=3600)
    try:
        one.prewarm(node)
        actor = one.take(node)  # the ended job's actor; the pool is empty now
        one.expect_back([node])  # its job's free_resources()
        got: list[Any] = []
        taker = threading.Thread(target=lambda: got.append(one.take(node)), daemon=True)
        taker.start()
        taker.join(timeout=1.0)
        assert taker.is_alive() and got == []  # waiting, not starting a new process
        one.give_back([(node, actor)])  # its job's stop()
        taker.join(timeout=30)
        assert len(got) == 1 and got[0]._actor_id == actor._actor_id
        # Nothing is announced any more: the next take() starts a new actor at once.
        fresh = one.take(node)
        assert fresh._actor_id != actor._actor_id
        ray.kill(fresh)
        ray.kill(actor)
    finally:
        one.close()
