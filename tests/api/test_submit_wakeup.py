"""The submit route calls the app's `on_job_queued` hook (what `server --embedded`
wires to its dispatcher's wake-up) once per newly queued job, after the commit:
not for an idempotent replay, not for a rejected spec."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from service.app import create_app
from service.settings import Settings
from service.store.models import Job
from tests.api.conftest import ADMIN_TOKEN, SMALL_SPEC, bearer


class Hook:
    """Records, at each call, which jobs the store holds as queued (a fresh session:
    the hook must run after the submit's commit)."""

    def __init__(self) -> None:
        self.seen: list[list[int]] = []
        self.app_sessions: object = None

    def __call__(self) -> None:
        with self.app_sessions() as session:  # type: ignore[operator]
            self.seen.append(list(session.scalars(select(Job.id).where(Job.status == "queued"))))


@pytest.fixture
def hooked(settings: Settings) -> Iterator[tuple[TestClient, Hook]]:
    hook = Hook()
    app = create_app(
        settings.model_copy(update={"bootstrap_admin_token": SecretStr(ADMIN_TOKEN)}),
        on_job_queued=hook,
    )
    hook.app_sessions = app.state.sessions
    with TestClient(app) as client:
        yield client, hook


def test_a_submit_wakes_the_dispatcher_after_its_commit(
    hooked: tuple[TestClient, Hook],
) -> None:
    client, hook = hooked
    r = client.post("/v1/jobs", json=SMALL_SPEC, headers=bearer(ADMIN_TOKEN))
    assert r.status_code == 201, r.text
    assert hook.seen == [[r.json()["id"]]]


def test_replays_and_rejected_specs_wake_nobody(hooked: tuple[TestClient, Hook]) -> None:
    client, hook = hooked
    headers = {**bearer(ADMIN_TOKEN), "Idempotency-Key": "k1"}
    first = client.post("/v1/jobs", json=SMALL_SPEC, headers=headers)
    assert first.status_code == 201, first.text
    replay = client.post("/v1/jobs", json=SMALL_SPEC, headers=headers)
    assert replay.status_code == 200, replay.text
    bad = client.post(
        "/v1/jobs",
        json={**SMALL_SPEC, "schedule": {"rounds": 0}},
        headers=bearer(ADMIN_TOKEN),
    )
    assert bad.status_code == 422, bad.text
    assert len(hook.seen) == 1
