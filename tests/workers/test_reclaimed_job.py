"""A job whose lease this dispatcher lost (a store outage longer than the lease) can be
claimed again by it while the old attempt's thread is still stopping. The old thread,
ending later, must not take the new attempt out of the dispatcher's running jobs: a
drain would then find the dispatcher idle, exit at once and leave the new attempt's
gang to die with the process (an attempt lost, where a drain promises none).

No Ray: the job's run is a stand-in the test ends when it likes, at the dispatcher's
`JobRun` seam; the store, its claim and its reaper are real."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import utcnow
from service.store.reaper import requeue_expired
from service.store.users import create_user
from tests.polling import wait_until
from tests.workers.dispatcher_seams import dispatcher_store, idle_node_at_seam
from workers import dispatcher as dispatcher_module
from workers.dispatcher import Dispatcher
from workers.own_gangs import OwnGang, own_gang


class HeldRun:
    """Stands in for workers.job_run.JobRun: its thread runs until the test ends it."""

    def __init__(self, claimed: Any, *, on_exit: Any, **_: Any) -> None:
        self.claimed, self.job_id, self.on_exit = claimed, claimed.job_id, on_exit
        self.spec = ResolvedSpec.model_validate(claimed.spec)
        self.drain_requested = threading.Event()
        self.stop_requested = threading.Event()
        self.gang_reserved = threading.Event()
        self.gang_reserved.set()
        self.end = threading.Event()
        self.exited = threading.Event()

    def gang(self) -> OwnGang:  # the room counts its gang, on no known node
        return own_gang(self.spec, None, None)

    def run(self) -> None:
        self.end.wait(60)
        self.on_exit()
        self.exited.set()


def test_the_old_attempts_end_leaves_the_reclaimed_attempt_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    runs: list[HeldRun] = []

    def held_run(claimed: Any, **kwargs: Any) -> HeldRun:
        runs.append(HeldRun(claimed, **kwargs))
        return runs[-1]

    monkeypatch.setattr(dispatcher_module, "JobRun", held_run)
    idle_node_at_seam(monkeypatch, 8.0)
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="reclaimed", role="user")
        job_id = enqueue(
            session=session, owner_id=user.id, spec=resolve({"task": {"kind": "adding"}})
        )[0].id
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    try:
        assert dispatcher._claim_and_start()
        # The store was out for longer than the lease: the reaper requeues the job...
        with transaction(sessions) as session:
            later = utcnow() + timedelta(seconds=settings.lease_seconds + 60)
            assert requeue_expired(session=session, now=later) == [job_id]
        # ...and this dispatcher claims it again before the old thread has noticed.
        assert dispatcher._claim_and_start()
        old, new = runs
        assert (old.claimed.attempt, new.claimed.attempt) == (1, 2)

        old.end.set()
        assert old.exited.wait(10), "the old attempt's thread ends"
        dispatcher.drain(60)
        assert new.drain_requested.is_set(), "the drain reaches the running attempt"
        assert not dispatcher._drain_over(), "and waits for it"

        new.end.set()
        wait_until(dispatcher._drain_over, timeout=10, what="the drain to see no job left")
    finally:
        for run in runs:
            run.end.set()
        dispatcher._waker.close()
