"""The dispatcher's loop while a claimed gang starts (a slow placement, actors that
take long to start): it keeps its heartbeat, stays drainable, and still claims
nothing until the gang holds its resources — with the real store and local Ray. The
seams hold the placement and the actors' start in the dispatcher's process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.resolve import resolve
from service.settings import Settings
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Dispatcher as DispatcherRow
from service.store.models import Job, JobAttempt
from service.store.users import create_user
from tests.conftest import on_one_database
from tests.polling import wait_until
from workers import ray_job, ray_runtime
from workers.dispatcher import SHUTDOWN_JOIN_SECONDS, Dispatcher

pytestmark = pytest.mark.ray

# 1 CPU for the coordinator + 2 x 1.5: two of these do not fit the tests' 6 CPUs.
BIG_GANG = {
    "task": {"kind": "adding"},
    "distributed": {"workers": 2, "cpus_per_worker": 1.5},
    "schedule": {"rounds": 5},
}


class Gate:
    """Holds the first caller until `open()`; `entered` says one is held."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        self._open.wait(timeout=120)

    def open(self) -> None:
        self._open.set()


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Gate, Gate]]:
    """(placement, actors): the gang's placement group is asked for only once the
    first opens; its actors are started only once the second opens."""
    placement, actors = Gate(), Gate()
    real_place, real_start_own = ray_runtime.place_gang, ray_job.RayJob._start_own

    def slow_placement(*args: Any, **kwargs: Any) -> Any:
        placement.hold()
        return real_place(*args, **kwargs)

    def slow_actors(self: ray_job.RayJob, *args: Any) -> None:
        actors.hold()
        real_start_own(self, *args)

    monkeypatch.setattr(ray_job, "place_gang", slow_placement)
    monkeypatch.setattr(ray_job.RayJob, "_start_own", slow_actors)
    try:
        yield placement, actors
    finally:  # a failing test must not leave a job thread held
        placement.open()
        actors.open()


def _last_seen(sessions: sessionmaker[Session], dispatcher_id: str) -> datetime | None:
    with sessions() as session:
        row = session.get(DispatcherRow, dispatcher_id)
        return None if row is None else row.last_seen_at


def _status(sessions: sessionmaker[Session], job_id: int) -> str:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status


def _outcomes(sessions: sessionmaker[Session], job_id: int) -> list[str | None]:
    with sessions() as session:
        attempts = session.query(JobAttempt).filter_by(job_id=job_id).order_by(JobAttempt.number)
        return [a.outcome for a in attempts]


@on_one_database("sqlite")
def test_the_loop_heartbeats_and_drains_while_a_gang_starts_and_claims_after_placement(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clean_db: None,
    ray_address: str,
    gates: tuple[Gate, Gate],
) -> None:
    placement, actors = gates
    with transaction(session_factory) as session:
        user, _, _ = create_user(session=session, name="gang-start", role="user")
        first, second = (
            enqueue(session=session, owner_id=user.id, spec=resolve(BIG_GANG))[0].id
            for _ in range(2)
        )
    fast = settings.model_copy(update={"lease_seconds": 5.0, "heartbeat_seconds": 0.5})
    dispatcher = Dispatcher(fast, session_factory)
    loop = threading.Thread(target=dispatcher.run_forever, daemon=True)
    loop.start()
    try:
        assert placement.entered.wait(timeout=60), "the first job's gang never started"
        run, job_thread = dispatcher.runs[(first, 1)]
        # The heartbeat /v1/cluster reads goes on while the placement group is pending.
        seen = _last_seen(session_factory, dispatcher.id)
        assert seen is not None
        wait_until(
            lambda: (now := _last_seen(session_factory, dispatcher.id)) and now > seen,
            timeout=15,
            what="a heartbeat while the gang waits for its placement",
        )
        # Free resources do not show the pending gang yet: the second job waits.
        assert _status(session_factory, second) == "queued"
        assert not run.gang_reserved.is_set()

        placement.open()
        assert actors.entered.wait(timeout=60)
        # Reserved as soon as the placement group is ready, before the actors start.
        assert run.gang_reserved.is_set()

        started = time.monotonic()
        dispatcher.drain(1.0)
        loop.join(timeout=30)
        assert not loop.is_alive(), "the drain waited for the gang's actors"
        # The drain's bound, then the shutdown's wait for the held job thread.
        assert time.monotonic() - started < 1.0 + SHUTDOWN_JOIN_SECONDS + 5
        assert _status(session_factory, second) == "queued", "nothing fit beside the gang"
        # The job still starting was handed back by the stopping dispatcher: a lease
        # left to run out (the process exits next) would have used an attempt.
        assert _status(session_factory, first) == "queued"
        assert _outcomes(session_factory, first) == ["released"]
    finally:
        dispatcher.stop()
        placement.open()
        actors.open()
        loop.join(timeout=30)
    # Let go, its thread finds the lease gone and stops the gang; nothing changes.
    job_thread.join(timeout=120)
    assert not job_thread.is_alive()
    assert _status(session_factory, first) == "queued"
    assert _outcomes(session_factory, first) == ["released"]
