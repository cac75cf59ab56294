"""GET /v1/cluster and explain with a dispatcher that exited cleanly: it reads
`alive: false` with its `stopped_at` at once (not after its lease timeout), and its
resources count neither as the cluster's nor as free for a waiting job. One that
died without saying so is lost: alive false once its lease period passed, stopped_at
null."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from service.store.db import transaction
from service.store.dispatchers import mark_dispatcher_stopped, upsert_dispatcher
from service.store.models import utcnow
from service.store.room_reasons import room_wait_note
from tests.api.conftest import Api

IDLE = {"total": {"CPU": 8.0}, "free": {"CPU": 8.0}, "capacity": {"CPU": 8.0}}
BUSY = {"total": {"CPU": 8.0}, "free": {"CPU": 0.0}, "capacity": {"CPU": 8.0}}


def _register(api: Api, dispatcher_id: str, resources: dict[str, Any], **when: Any) -> None:
    with transaction(api.sessions) as session:
        upsert_dispatcher(
            session=session,
            dispatcher_id=dispatcher_id,
            hostname="node-1",
            resources=resources,
            **when,
        )


def _stop(api: Api, dispatcher_id: str) -> None:
    with transaction(api.sessions) as session:
        mark_dispatcher_stopped(session=session, dispatcher_id=dispatcher_id)


def test_cluster_says_stopped_at_once_and_counts_only_live_resources(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    _register(api, "running", BUSY)
    _register(api, "stopped", IDLE)  # the freshest report, until it stops
    lease = timedelta(seconds=api.settings.lease_seconds)
    _register(api, "lost", IDLE, now=utcnow() - 2 * lease)
    cluster = api.client.get("/v1/cluster", headers=alice).json()
    assert cluster["resources"]["free"] == {"CPU": 8.0}
    assert all(d["stopped_at"] is None for d in cluster["dispatchers"])

    _stop(api, "stopped")
    cluster = api.client.get("/v1/cluster", headers=alice).json()
    shown = {d["id"]: (d["alive"], d["stopped_at"] is not None) for d in cluster["dispatchers"]}
    assert shown == {
        "running": (True, False),
        "stopped": (False, True),  # stopped: within its lease, and not alive
        "lost": (False, False),  # lost: not seen within the lease, stopped_at null
    }
    stopped = next(d for d in cluster["dispatchers"] if d["id"] == "stopped")
    assert stopped["stopped_at"].endswith("Z") and stopped["stopped_at"] >= stopped["last_seen_at"]
    assert cluster["resources"] == {"total": {"CPU": 8.0}, "free": {"CPU": 0.0}}


def test_explain_waits_for_the_running_dispatcher_not_a_stopped_ones_free_cpus(
    api: Api,
) -> None:
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    _register(api, "running", BUSY)
    _register(api, "stopped", IDLE)
    _stop(api, "stopped")
    body = api.client.get(f"/v1/jobs/{job_id}/explain", headers=alice).json()
    resources = [r["message"] for r in body["reasons"] if r["kind"] == "resources"]
    note = room_wait_note(job_id, [], api.settings.hold_room_after())  # not held yet
    assert resources == [f"waiting for 2 CPU to become free{note}"], body["reasons"]

    # With every dispatcher stopped, none is live: explain says so, and waits for no
    # CPUs of theirs.
    _stop(api, "running")
    body = api.client.get(f"/v1/jobs/{job_id}/explain", headers=alice).json()
    kinds = [r["kind"] for r in body["reasons"]]
    assert "no_dispatcher" in kinds and "resources" not in kinds, body["reasons"]
    message = next(r["message"] for r in body["reasons"] if r["kind"] == "no_dispatcher")
    assert "has stopped since" in message
