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
    _dispatcher(api, "d1", PARTLY_FREE)
    hold = f"{api.settings.hold_room_after().total_seconds():g} s"

    # Not waited long enough: smaller jobs pass it, and nothing holds the small one.
    messages = [r["message"] for r in _explain(api, wide, ann) if r["kind"] == "resources"]
    assert len(messages) == 1 and "smaller jobs queued behind it start meanwhile" in messages[0]
    assert f"the first in line of the jobs that have waited {hold} for it" in messages[0]
    assert not [r for r in _explain(api, small, bob) if r["kind"] == "resources"]

    _waited(api, wide, api.settings.hold_room_after() + timedelta(minutes=1))
    messages = [r["message"] for r in _explain(api, wide, ann) if r["kind"] == "resources"]
    assert messages == [
        f"waiting for 5 CPU to become free; room is held for it (it has waited over {hold}, "
        "first in line of those that have): it starts there first once it fits, and another "
        "job, ahead of it in the queue or behind, only if it leaves free what this one "
        "waits for"
    ]
    # Another user's job is a 404 to bob: its id is not his to read. An admin's read
    # names it.
    held = [r["message"] for r in _explain(api, small, bob) if r["kind"] == "resources"]
    assert held == [
        f"room is held for another user's job, waiting for it over {hold}: this job would "
        "take resources it waits for, so it starts after it"
    ]
    as_admin = [r["message"] for r in _explain(api, small, api.admin) if r["kind"] == "resources"]
    assert as_admin == [held[0].replace("another user's job", f"job {wide}")]
    # The lab's queue says the same for each: by id to an admin, who sees every job,
    # and without it to bob, who sees his own.
    head = api.client.get("/v1/cluster", headers=api.admin).json()["queue_head"]
    reasons = {place["job_id"]: [r["message"] for r in place["reasons"]] for place in head}
    assert any("room is held for it" in m for m in reasons[wide])
    assert as_admin[0] in reasons[small]
    head = api.client.get("/v1/cluster", headers=bob).json()["queue_head"]
    assert [place["job_id"] for place in head] == [small]
    assert held[0] in [r["message"] for r in head[0]["reasons"]]
    assert not any(f"job {wide}" in r["message"] for r in head[0]["reasons"])

    # A second live dispatcher whose cluster could free too little for the gang holds
    # nothing: the small job may start there, and the gang's note says where it is held.
    _dispatcher(api, "d2", {**PARTLY_FREE, "room": {"CPU": 4.0, "GPU": 0.0, "nodes": None}})
    assert not [r for r in _explain(api, small, bob) if r["kind"] == "resources"]
    messages = [r["message"] for r in _explain(api, wide, ann) if r["kind"] == "resources"]
    assert "room is held for it on 1 of the 2 live clusters" in messages[0]


def test_a_job_that_leaves_the_held_one_its_room_is_not_held_behind(api: Api) -> None:
    """A GPU gang waits for the only GPU: a CPU-only job that leaves it its CPUs is
    not held behind it, as the claim would start it."""
    _uid, ann = api.create_user("ann")
    _uid, bob = api.create_user("bob")
    gpu = {**SMALL_SPEC, "distributed": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 1}}
    waiting = api.submit(ann, gpu)
    small = api.submit(bob)
    no_gpu_free = {"total": {"CPU": 16.0, "GPU": 1.0}, "free": {"CPU": 14.0, "GPU": 0.0}}
    _dispatcher(api, "d1", {**no_gpu_free, "capacity": {"CPU": 16.0, "GPU": 1.0}})
    _waited(api, waiting, api.settings.hold_room_after() + timedelta(minutes=1))
    messages = [r["message"] for r in _explain(api, waiting, ann) if r["kind"] == "resources"]
    assert messages and "room is held for it" in messages[0]
    assert not [r for r in _explain(api, small, bob) if r["kind"] == "resources"]


def _dispatcher(api: Api, dispatcher_id: str, resources: dict[str, Any]) -> None:
    with transaction(api.sessions) as session:
        upsert_dispatcher(
            session=session, dispatcher_id=dispatcher_id, hostname="h", resources=resources
        )


def test_the_rooms_unplaceable_jobs_are_shown_to_admins_only(api: Api) -> None:
    """A dispatcher's room names the jobs that cannot hold it, whoever owns them
    (explain reads them): /v1/cluster shows that list to admins, not to bob, to whom
    ann's job is a 404."""
    _uid, ann = api.create_user("ann")
    _uid, bob = api.create_user("bob")
    wide = api.submit(ann, WIDE)
    room = {"CPU": 8.0, "GPU": 0.0, "nodes": None, "unplaceable": [wide]}
    _dispatcher(api, "d1", {**PARTLY_FREE, "room": room})
    assert api.client.get(f"/v1/jobs/{wide}", headers=bob).status_code == 404

    def shown(headers: dict[str, str]) -> dict[str, Any]:
        answer = api.client.get("/v1/cluster", headers=headers)
        assert answer.status_code == 200, answer.text
        reported: dict[str, Any] = answer.json()["dispatchers"][0]["resources"]["room"]
        return reported

    assert shown(api.admin)["unplaceable"] == [wide]
    assert shown(bob) == {"CPU": 8.0, "GPU": 0.0, "nodes": None}
