"""Room held for a waiting gang, end to end: a real dispatcher on the session's local
Ray (6 CPUs) and a real store. While a job holds 3 CPUs, a wide gang (5 CPUs) waits,
and a small one (2 CPUs) that fits the 3 free would take what the gang waits for: with
the hold on, the small one starts only after the gang (without it, it started
first, and on a busy cluster the gang could wait for ever)."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import ray
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.store.db import transaction
from service.store.jobs import request_cancel
from service.store.models import Job
from tests.conftest import on_one_database
from tests.polling import wait_until
from tests.store.conftest import load_job
from tests.workers.test_dispatcher import finished, running_dispatcher, submit

pytestmark = pytest.mark.ray


def _spec(workers: int, rounds: int) -> dict[str, Any]:
    return {
        "task": {"kind": "lag_paper_linreg"},
        "distributed": {"workers": workers, "cpus_per_worker": 1},
        "schedule": {"rounds": rounds},
    }


@on_one_database("postgresql")
def test_a_small_job_waits_behind_a_gang_room_is_held_for(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clean_db: None,
    ray_address: str,
) -> None:
    with running_dispatcher(settings, session_factory, hold_room_after_seconds=0.0) as dispatcher:
        busy = submit(session_factory, _spec(workers=2, rounds=100_000))  # 3 CPUs
        wait_until(
            lambda: (load_job(session_factory, busy).progress_round or 0) > 0,
            timeout=120,
            what="the first job trains",
        )
        wide = submit(session_factory, _spec(workers=4, rounds=3))  # 5 CPUs: 3 are free
        small = submit(session_factory, _spec(workers=1, rounds=3))  # 2 CPUs: would fit
        seen = dispatcher.maintenance_runs
        wait_until(
            lambda: dispatcher.maintenance_runs >= seen + 2,
            timeout=60,
            what="two turns of the dispatcher's loop with both queued",
        )
        assert load_job(session_factory, small).status == "queued", "room is held for the gang"
        # The running gang's room by node, from Ray's placement-group table: its 3
        # CPUs on the one node (capacity.room counts them there only).
        [(run, _thread)] = dispatcher.runs.values()
        [(node, held)] = run.gang().on_nodes.items()
        assert node == ray.get_runtime_context().get_node_id()
        assert (held.cpus, held.gpus) == (3.0, 0.0) and held.memory > 0  # its reservations
        with transaction(session_factory) as session:
            request_cancel(session=session, job=session.get_one(Job, busy), actor="test")
        for job_id in (wide, small):
            wait_until(partial(finished, session_factory, job_id), timeout=180, what="a job ends")
    wide_job, small_job = load_job(session_factory, wide), load_job(session_factory, small)
    assert (wide_job.status, small_job.status) == ("succeeded", "succeeded")
    assert wide_job.started_at is not None and small_job.started_at is not None
    assert wide_job.started_at < small_job.started_at, "the held gang started first"
