"""An attempt whose gang's stop raises (Ray's GCS unreachable as the placement group
is removed) still stops its lease keeper. Before (a review), the keeper was stopped
after the gang in the same `finally` and was left running: with the failure not
recorded (the store away past LAGTRAIN_STORE_OUTAGE_SECONDS), it renewed the lease
for good once the store was back, and the job read `running` with nothing behind
it, never reaped. No Ray: a stand-in gang."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.schemas.resolve import resolve
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.users import create_user
from tests.workers.dispatcher_seams import dispatcher_store
from tests.workers.test_attempt_start_reads import _claimed
from workers import job_run
from workers.job_run import JobRun


class GangRayLeft:
    """A gang whose start fails and whose stop raises, as with Ray's GCS gone."""

    def __init__(self, _spec: Any, **_kwargs: Any) -> None:
        pass

    def start(self, **_kwargs: Any) -> None:
        raise RuntimeError("GCS unreachable")

    def free_resources(self) -> None:
        pass

    def stop(self) -> None:
        raise RuntimeError("Failed to remove placement group: GCS unreachable")


def test_the_lease_keeper_stops_when_the_gangs_stop_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    # Beats far apart: the keeper cannot end by itself (StaleLease at a beat after
    # the final write) before it is looked at.
    settings = settings.model_copy(update={"lease_seconds": 600.0, "heartbeat_seconds": 300.0})
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        enqueue(session=session, owner_id=user.id, spec=resolve({"task": {"kind": "adding"}}))
    monkeypatch.setattr(job_run, "RayJob", GangRayLeft)
    run = JobRun(_claimed(sessions), settings=settings, sessions=sessions)
    keeper = run._lease._thread
    try:
        run.run()  # the stop's error is the run's own (logged), not raised
        assert not keeper.is_alive(), "the lease keeper outlived its attempt"
    finally:
        run._lease.stop()  # on the old code: a thread that would hold pytest's exit
