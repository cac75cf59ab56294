"""A cancelled job on warm actors (workers.warm_pool) is asked to stop at its round's
end: its actors go back to the pool, so the next job — a pruned sweep trial's
successor — starts on them, and no checkpoint is written for the stop. A job that does
not stop within the grace (workers.job_run.CANCEL_STOP_SECONDS) has its actors killed,
as before the pool existed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from service.schemas.resolve import resolve
from service.store.db import transaction
from service.store.jobs import enqueue, get_job, request_cancel
from service.store.models import Checkpoint, Job
from service.store.users import create_user
from tests.conftest import on_one_database
from tests.polling import wait_until
from workers import job_run
from workers.dispatcher import Dispatcher
from workers.warm_pool import WarmPool

pytestmark = pytest.mark.ray

LONG_LINREG = {
    "task": {"kind": "lag_paper_linreg"},
    "aggregation": {"strategy": "lag_wk"},
    "distributed": {"workers": 2, "cpus_per_worker": 0.5},
    # Runs until cancelled; no periodic checkpoint before the cancel.
    "schedule": {"rounds": 1_000_000, "checkpoint_every": 1_000_000},
}


@pytest.fixture
def pooled_dispatcher(
    settings: Any, session_factory: Any, clean_db: None, ray_address: str
) -> Iterator[WarmPool]:
    """A running dispatcher with a pool of 3 warm actors (a gang of 2 replicas + driver)."""
    pooled = settings.model_copy(update={"warm_pool_size": 3, "heartbeat_seconds": 0.5})
    dispatcher = Dispatcher(pooled, session_factory)
    pool = dispatcher.warm_pool
    assert pool is not None
    thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
    thread.start()
    try:
        wait_until(lambda: pool.started_count() == 3, timeout=300, what="a started pool")
        yield pool
    finally:
        dispatcher.stop()
        thread.join(timeout=60)


def _actor_ids(pool: WarmPool) -> set[str]:
    with pool._lock:
        return {idle.actor._actor_id.hex() for idle in pool._idle}


def _cancel_mid_run(session_factory: Any) -> int:
    """Queue the long job, cancel it once it has run a few rounds, wait for the end."""
    with transaction(session_factory) as session:
        user, _, _ = create_user(session=session, name="cancel-user", role="user")
        job_id = enqueue(session=session, owner_id=user.id, spec=resolve(LONG_LINREG))[0].id

    def progress() -> tuple[str, int]:
        with session_factory() as session:
            job = get_job(session=session, job_id=job_id)
            return job.status, job.progress_round

    wait_until(lambda: progress()[1] >= 5, timeout=180, what="a few rounds")
    with transaction(session_factory) as session:
        request_cancel(session=session, job=get_job(session=session, job_id=job_id), actor="t")
    wait_until(lambda: progress()[0] == "cancelled", timeout=60, what="the cancel")
    return job_id


def _checkpoints(session_factory: Any, job_id: int) -> int:
    with session_factory() as session:
        count = session.scalar(
            select(func.count()).select_from(Checkpoint).where(Checkpoint.job_id == job_id)
        )
        return int(count or 0)


@on_one_database("postgresql")
def test_a_cancelled_jobs_warm_actors_go_back_to_the_pool(
    pooled_dispatcher: WarmPool, session_factory: Any
) -> None:
    pool = pooled_dispatcher
    warm = _actor_ids(pool)
    job_id = _cancel_mid_run(session_factory)
    wait_until(lambda: pool.idle_count() == 3, timeout=60, what="the actors handed back")
    assert _actor_ids(pool) == warm  # the same processes, not new ones
    assert _checkpoints(session_factory, job_id) == 0  # a stop for a cancel writes none
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.summary is not None
        assert job.summary["rounds_completed"] >= 5


@on_one_database("sqlite")
def test_a_cancelled_job_that_does_not_stop_in_time_has_its_actors_killed(
    pooled_dispatcher: WarmPool, session_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_run, "CANCEL_STOP_SECONDS", 0.0)  # no round ends in 0 s
    pool = pooled_dispatcher
    _cancel_mid_run(session_factory)
    # Killed, not handed back: the pool holds none of the job's actors.
    assert pool.idle_count() == 0
