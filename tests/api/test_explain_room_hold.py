"""Explain and the lab's queue say when room is held for a gang that has waited
(service.store.claim_candidate), and which job the others wait behind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from service.store.db import db_now, transaction
from service.store.dispatchers import upsert_dispatcher
from service.store.models import Job
from tests.api.conftest import SMALL_SPEC, Api

WIDE = {**SMALL_SPEC, "distributed": {"workers": 2, "cpus_per_worker": 2}}  # 5 CPUs
# A live dispatcher with 3 of its 8 CPUs free: the small job fits, the wide one not.
PARTLY_FREE = {"total": {"CPU": 8.0}, "free": {"CPU": 3.0}, "capacity": {"CPU": 8.0}}


def _explain(api: Api, job_id: int, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = api.client.get(f"/v1/jobs/{job_id}/explain", headers=headers)
    assert response.status_code == 200, response.text
    reasons: list[dict[str, Any]] = response.json()["reasons"]
    return reasons


def _waited(api: Api, job_id: int, ago: timedelta) -> None:
    with transaction(api.sessions) as session:
        now = db_now(session)
        session.execute(update(Job).where(Job.id == job_id).values(created_at=now - ago))


def test_explain_names_the_job_room_is_held_for(api: Api) -> None:
    _uid, ann = api.create_user("ann")
    _uid, bob = api.create_user("bob")
    wide = api.submit(ann, WIDE)
    small = api.submit(bob)
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="h", resources=PARTLY_FREE)
    hold = api.settings.hold_room_after()

    # Not waited long enough: smaller jobs pass it, and nothing holds the small one.
    messages = [r["message"] for r in _explain(api, wide, ann) if r["kind"] == "resources"]
    assert len(messages) == 1 and "smaller jobs queued behind it start meanwhile" in messages[0]
    assert f"has waited {hold.total_seconds():g} s for room" in messages[0]
    assert not [r for r in _explain(api, small, bob) if r["kind"] == "resources"]

    _waited(api, wide, hold + timedelta(minutes=1))
    messages = [r["message"] for r in _explain(api, wide, ann) if r["kind"] == "resources"]
    assert messages == [
        f"waiting for 5 CPU to become free; room is held for it (first in line, it has "
        f"waited over {hold.total_seconds():g} s): nothing queued behind it starts until it has"
    ]
    held = [r["message"] for r in _explain(api, small, bob) if r["kind"] == "resources"]
    assert held == [
        f"room is held for job {wide}, first in line and waiting over "
        f"{hold.total_seconds():g} s for it: nothing queued behind starts until it has"
    ]
    # The lab's queue says the same for each (an admin sees every job).
    head = api.client.get("/v1/cluster", headers=api.admin).json()["queue_head"]
    reasons = {place["job_id"]: [r["message"] for r in place["reasons"]] for place in head}
    assert any("room is held for it" in m for m in reasons[wide])
    assert held[0] in reasons[small]

    # A second live dispatcher whose cluster is too small for the gang holds nothing:
    # the small job may start there.
    small_cluster = {"total": {"CPU": 4.0}, "free": {"CPU": 4.0}, "capacity": {"CPU": 4.0}}
    with transaction(api.sessions) as session:
        upsert_dispatcher(
            session=session, dispatcher_id="d2", hostname="h2", resources=small_cluster
        )
    assert not [r for r in _explain(api, small, bob) if r["kind"] == "resources"]
