"""Embedded wake-up: a dispatcher whose poll interval is ten minutes still claims a
job at once when the submit route wakes it (DESIGN §4 polls elsewhere; issue 13)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from service.app import create_app
from service.settings import Settings
from service.store.models import TERMINAL, Job
from tests.api.conftest import ADMIN_TOKEN, bearer
from tests.polling import wait_until
from workers.dispatcher import Dispatcher

pytestmark = pytest.mark.ray

TINY_JOB = {
    "task": {"kind": "lag_paper_linreg"},
    "aggregation": {"strategy": "lag_wk"},
    "distributed": {"workers": 2, "cpus_per_worker": 0.25},
    "schedule": {"rounds": 3},
}


@pytest.fixture
def sleepy_dispatcher(
    settings: Settings, session_factory: sessionmaker[Session], clean_db: None, ray_address: str
) -> Iterator[Dispatcher]:
    # model_copy skips validation: a poll far beyond the test's deadlines, so only a
    # wake-up (or NOTIFY on PostgreSQL) can start the job in time.
    sleepy = settings.model_copy(update={"poll_seconds": 600.0, "heartbeat_seconds": 0.5})
    dispatcher = Dispatcher(sleepy, session_factory)
    thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
    thread.start()
    yield dispatcher
    dispatcher.stop()
    # stop() must interrupt the wait (on PostgreSQL, a LISTEN), not wait out the poll.
    thread.join(timeout=60)
    assert not thread.is_alive(), "stop() did not interrupt the dispatcher's wait"


def _status(sessions: sessionmaker[Session], job_id: int) -> str:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status


def test_the_submit_route_wakes_a_sleeping_dispatcher(
    sleepy_dispatcher: Dispatcher, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    app = create_app(
        settings.model_copy(update={"bootstrap_admin_token": SecretStr(ADMIN_TOKEN)}),
        on_job_queued=sleepy_dispatcher.wake,
    )
    with TestClient(app) as client:
        r = client.post("/v1/jobs", json=TINY_JOB, headers=bearer(ADMIN_TOKEN))
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        wait_until(
            lambda: _status(session_factory, job_id) != "queued",
            timeout=30,
            what="the woken dispatcher to claim the job",
        )
        wait_until(
            lambda: _status(session_factory, job_id) in {s.value for s in TERMINAL},
            timeout=120,
            what="the job to finish",
        )
    assert _status(session_factory, job_id) == "succeeded"


def test_a_job_queued_by_another_process_wakes_a_sleeping_dispatcher(
    sleepy_dispatcher: Dispatcher, session_factory: sessionmaker[Session]
) -> None:
    """No wake-up call: the job is queued through the store alone, as the API server
    in another process does. PostgreSQL's NOTIFY wakes the dispatcher; on SQLite the
    commit changes the file's data_version, which the dispatcher's wait watches
    (without it, the ten-minute poll would leave the job queued)."""
    from service.schemas.resolve import resolve
    from service.store.db import transaction
    from service.store.jobs import enqueue
    from service.store.users import create_user

    # The loop's first pass (which claims without waiting) is over: it sleeps now.
    wait_until(lambda: sleepy_dispatcher._waker.waits >= 1, timeout=60, what="the loop to wait")
    with transaction(session_factory) as session:
        user, _, _ = create_user(session=session, name="other-process", role="user")
        job_id = enqueue(session=session, owner_id=user.id, spec=resolve(TINY_JOB))[0].id
    wait_until(
        lambda: _status(session_factory, job_id) != "queued",
        timeout=30,
        what="the dispatcher to claim a job nobody woke it for",
    )
    wait_until(
        lambda: _status(session_factory, job_id) in {s.value for s in TERMINAL},
        timeout=120,
        what="the job to finish",
    )
    assert _status(session_factory, job_id) == "succeeded"
