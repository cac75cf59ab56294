"""A cancelled job on warm actors (workers.warm_pool) is asked to stop at its round's
end: its actors go back to the pool, so the next job — a pruned sweep trial's
successor — starts on them, and no checkpoint is written for the stop. A job that does
not stop within the grace (workers.job_run.CANCEL_STOP_SECONDS) has its actors killed,
as before the pool existed."""

from __future__ import annotations

from typing import Any

import pytest
import ray
from sqlalchemy import func, select

from service.schemas.resolve import resolve
from service.store.db import transaction
from service.store.jobs import enqueue, get_job, request_cancel
from service.store.models import TERMINAL, Checkpoint, Job
from service.store.users import create_user
from tests.conftest import on_one_database
from tests.polling import wait_until
from tests.workers.conftest import PooledDispatcher
from workers import job_run
from workers.ray_job import RayJob
from workers.warm_pool import WarmPool

pytestmark = pytest.mark.ray

LONG_LINREG = {
    "task": {"kind": "lag_paper_linreg"},
    "aggregation": {"strategy": "lag_wk"},
    "distributed": {"workers": 2, "cpus_per_worker": 0.5},
    # Runs until cancelled; no periodic checkpoint before the cancel.
    "schedule": {"rounds": 1_000_000, "checkpoint_every": 1_000_000},
}


def _idle_actors(pool: WarmPool) -> dict[str, Any]:
    with pool._lock:
        return {idle.actor._actor_id.hex(): idle.actor for idle in pool._idle}


def _cancel_mid_run(session_factory: Any, spec: dict[str, Any]) -> tuple[int, str]:
    """Queue a job, cancel it once it has run a few rounds: its id and final status."""
    with transaction(session_factory) as session:
        user, _, _ = create_user(session=session, name="cancel-user", role="user")
        job_id = enqueue(session=session, owner_id=user.id, spec=resolve(spec))[0].id

    def progress() -> tuple[str, int]:
        with session_factory() as session:
            job = get_job(session=session, job_id=job_id)
            return job.status, job.progress_round

    wait_until(lambda: progress()[1] >= 5, timeout=180, what="a few rounds")
    with transaction(session_factory) as session:
        request_cancel(session=session, job=get_job(session=session, job_id=job_id), actor="t")
    wait_until(lambda: progress()[0] in TERMINAL, timeout=120, what="the job's end")
    return job_id, progress()[0]


def _run_ended(pooled: PooledDispatcher) -> None:
    """Until the job's run has ended: its actors handed back or killed (after its status)."""
    wait_until(lambda: not pooled.dispatcher.runs, timeout=60, what="the run to end")


def _checkpoints(session_factory: Any, job_id: int) -> int:
    with session_factory() as session:
        count = session.scalar(
            select(func.count()).select_from(Checkpoint).where(Checkpoint.job_id == job_id)
        )
        return int(count or 0)


@on_one_database("postgresql")
def test_a_cancelled_jobs_warm_actors_go_back_to_the_pool(
    pooled_dispatcher: PooledDispatcher, session_factory: Any
) -> None:
    pool = pooled_dispatcher.pool
    warm = set(_idle_actors(pool))
    job_id, status = _cancel_mid_run(session_factory, LONG_LINREG)
    assert status == "cancelled"
    _run_ended(pooled_dispatcher)
    assert set(_idle_actors(pool)) == warm  # the same processes, not new ones
    assert _checkpoints(session_factory, job_id) == 0  # a stop for a cancel writes none
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.summary is not None
        assert job.summary["rounds_completed"] >= 5


@on_one_database("sqlite")
def test_a_cancelled_job_that_does_not_stop_in_time_has_its_actors_killed(
    pooled_dispatcher: PooledDispatcher, session_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A job whose round outlasts the grace: here one that never hears the stop.
    monkeypatch.setattr(RayJob, "request_stop", lambda _self, checkpoint=True: None)
    pool = pooled_dispatcher.pool
    taken = _idle_actors(pool).values()
    assert _cancel_mid_run(session_factory, LONG_LINREG)[1] == "cancelled"
    _run_ended(pooled_dispatcher)
    assert pool.idle_count() == 0  # killed, not handed back
    for actor in taken:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.reset.remote(), timeout=30)


@on_one_database("postgresql")
def test_a_job_whose_last_round_ends_while_it_stops_for_a_cancel_succeeds(
    pooled_dispatcher: PooledDispatcher, session_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a job that ends before its cancel is noticed: it finished every round."""
    monkeypatch.setattr(RayJob, "request_stop", lambda _self, checkpoint=True: None)
    monkeypatch.setattr(job_run, "CANCEL_STOP_SECONDS", 120.0)  # it runs to its end
    short = {**LONG_LINREG, "schedule": {"rounds": 300}}
    job_id, status = _cancel_mid_run(session_factory, short)
    assert status == "succeeded"
    _run_ended(pooled_dispatcher)
    assert pooled_dispatcher.pool.idle_count() == 3  # a clean end: handed back
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.summary is not None
        assert job.summary["rounds_completed"] == 300
