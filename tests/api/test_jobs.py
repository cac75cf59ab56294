"""Submitting, reading, listing, paginating and cancelling jobs."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select

from service import spec_yaml
from service.schemas.common import request_sha256
from service.schemas.jobspec import JobSpec
from service.store.models import Job, JobEvent
from service.store.room_reasons import room_wait_note
from tests.api.conftest import REPO_EXAMPLES, SMALL_SPEC, Api, assert_json_error


def test_submit_returns_the_job_with_defaults_filled(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    spec = {
        "name": "paper",
        "task": {"kind": "lag_paper_linreg"},
        "aggregation": {"strategy": "lag_wk"},
    }
    r = api.client.post("/v1/jobs", json=spec, headers=alice)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["owner"] == "alice" and job["name"] == "paper" and job["status"] == "queued"
    assert job["attempt"] == 0 and job["error"] is None and job["summary"] is None
    assert job["progress"] == {"round": 0, "rounds": 1000}
    # The paper's defaults: 9 workers, full batch, sgd with lr = 1/L.
    assert job["spec"]["distributed"]["workers"] == 9
    assert job["spec"]["aggregation"]["per_replica_metrics"] is False  # on request only
    assert job["spec"]["schedule"]["batch_size"] == "full"
    assert job["spec"]["optimizer"]["name"] == "sgd" and job["spec"]["optimizer"]["lr"] > 0
    assert job["created_at"].endswith("Z") and job["started_at"] is None

    got = api.client.get(f"/v1/jobs/{job['id']}", headers=alice)
    assert got.status_code == 200 and got.json() == job


def test_started_and_finished_jobs_show_progress_and_summary(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    claimed = api.claim()
    api.append(claimed, range(1, 4))
    running = api.client.get(f"/v1/jobs/{job_id}", headers=alice).json()
    assert running["status"] == "running" and running["attempt"] == 1
    assert running["progress"] == {"round": 3, "rounds": 5} and running["started_at"]
    api.finish(claimed)
    done = api.client.get(f"/v1/jobs/{job_id}", headers=alice).json()
    assert done["status"] == "succeeded" and done["summary"] == {"train_loss": 0.1}
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]


def test_idempotency_key_replays_and_conflicts(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    _uid, bob = api.create_user("bob")
    key = {"Idempotency-Key": "k-1"}
    first = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice | key)
    again = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice | key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other_body = SMALL_SPEC | {"priority": 5}
    detail = assert_json_error(
        api.client.post("/v1/jobs", json=other_body, headers=alice | key), 409
    )
    assert "Idempotency-Key" in detail
    # Keys are per user: bob's k-1 is a different job.
    bobs = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=bob | key)
    assert bobs.status_code == 201 and bobs.json()["id"] != first.json()["id"]


def test_an_idempotent_retry_is_the_same_request_across_a_schema_upgrade(api: Api) -> None:
    # An empty section asks for nothing: the same request...
    _uid, alice = api.create_user("alice")
    key = {"Idempotency-Key": "spelled-out"}
    first = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice | key)
    again = api.client.post("/v1/jobs", json=SMALL_SPEC | {"aggregation": {}}, headers=alice | key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    # ...but a field given is not a field left out, even at its schema default: the
    # paper task trains with sgd unless the request names an optimizer.
    paper = {"task": {"kind": "lag_paper_linreg"}, "schedule": {"rounds": 3}}
    key = {"Idempotency-Key": "paper"}
    assert api.client.post("/v1/jobs", json=paper, headers=alice | key).status_code == 201
    named = paper | {"optimizer": {"name": "adam"}}  # adam is JobSpec's default name
    assert_json_error(api.client.post("/v1/jobs", json=named, headers=alice | key), 409)

    # A retry that reaches a server whose schema gained a field or moved a default
    # (aggregation.bits did: 4 -> null, the rule's default) is the same request.
    class Before(BaseModel):
        a: int
        bits: int | None = 4

    class After(BaseModel):
        a: int
        bits: int | None = None
        dtype: str | None = None

    assert request_sha256(Before(a=1)) == request_sha256(After(a=1))
    assert request_sha256(After(a=1, bits=8)) != request_sha256(After(a=1))
    other = JobSpec.model_validate(SMALL_SPEC | {"priority": 5})
    assert request_sha256(JobSpec.model_validate(SMALL_SPEC)) != request_sha256(other)


def test_concurrent_duplicates_create_one_job(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    headers = alice | {"Idempotency-Key": "race"}
    barrier = threading.Barrier(6)
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait()
        r = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=headers)
        with lock:
            results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    codes = sorted(code for code, _ in results)
    assert codes == [200] * 5 + [201], results
    assert len({body["id"] for _, body in results}) == 1
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1
        assert session.scalar(select(func.count()).select_from(JobEvent)) == 1


def test_list_pagination_status_and_owner_filters(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    _uid, bob = api.create_user("bob")
    alice_ids = [api.submit(alice) for _ in range(5)]
    bob_id = api.submit(bob)
    api.client.post(f"/v1/jobs/{alice_ids[0]}/cancel", headers=alice)

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.client.get("/v1/jobs", params=params, headers=alice).json()
        seen += [j["id"] for j in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(alice_ids, reverse=True) and pages == 3  # newest first, no repeats
    # A page that is exactly full is the last one: no cursor to an empty page.
    full = api.client.get("/v1/jobs", params={"limit": 5}, headers=alice).json()
    assert len(full["data"]) == 5 and full["next_cursor"] is None

    cancelled = api.client.get("/v1/jobs", params={"status": "cancelled"}, headers=alice).json()
    assert [j["id"] for j in cancelled["data"]] == [alice_ids[0]]
    # A user never sees other users' jobs, whatever ?owner= says.
    assert api.client.get("/v1/jobs", params={"owner": "bob"}, headers=alice).json()["data"] == []
    everyone = api.client.get("/v1/jobs", headers=api.admin).json()["data"]
    assert {j["id"] for j in everyone} == {*alice_ids, bob_id}
    bobs = api.client.get("/v1/jobs", params={"owner": "bob"}, headers=api.admin).json()["data"]
    assert [(j["id"], j["owner"]) for j in bobs] == [(bob_id, "bob")]


def test_cancel_queued_and_running_jobs(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    queued = api.submit(alice)
    r = api.client.post(f"/v1/jobs/{queued}/cancel", headers=alice)
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    running = api.submit(alice)
    api.claim()
    r = api.client.post(f"/v1/jobs/{running}/cancel", headers=api.admin)
    assert r.status_code == 202 and r.json()["status"] == "cancelling"
    again = api.client.post(f"/v1/jobs/{running}/cancel", headers=alice)
    assert again.status_code == 202 and again.json()["status"] == "cancelling"
    finished = api.client.post(f"/v1/jobs/{queued}/cancel", headers=alice)
    assert finished.status_code == 202 and finished.json()["status"] == "cancelled"


def test_explain_says_a_cancelling_job_waits_for_a_dispatcher(api: Api) -> None:
    """A running job cancelled while no dispatcher is alive stays cancelling until one
    starts: explain said only "job is cancelling; it is not waiting"."""
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    api.claim()  # running, its dispatcher gone (none registered)
    r = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
    assert r.status_code == 202 and r.json()["status"] == "cancelling", r.text
    [why] = api.client.get(f"/v1/jobs/{job_id}/explain", headers=alice).json()["reasons"]
    assert why["kind"] == "no_dispatcher", why
    assert why["message"].startswith("job is cancelling and no dispatcher was seen"), why


def test_explain_says_a_running_job_waits_for_a_dispatcher(api: Api) -> None:
    """A dispatcher killed outright leaves its job running in the store until another
    one's reaper finds the lease expired: explain said "job is running; it is not
    waiting" with no dispatcher alive to take it over."""
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    api.claim()  # running, its dispatcher gone (none registered)
    [why] = api.client.get(f"/v1/jobs/{job_id}/explain", headers=alice).json()["reasons"]
    assert why["kind"] == "no_dispatcher", why
    assert why["message"].startswith("job is running by its last report, but no dispatcher"), why
    assert "`lagtrain worker`" in why["message"], why
    from service.store.db import transaction
    from service.store.dispatchers import upsert_dispatcher

    with transaction(api.sessions) as session:  # a live one will reap and resume it
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="n", resources={})
    [why] = api.client.get(f"/v1/jobs/{job_id}/explain", headers=alice).json()["reasons"]
    assert (why["kind"], why["message"]) == ("state", "job is running; it is not waiting")


def test_explain_reports_position_and_blocking_reasons(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    first = api.submit(alice)
    second = api.submit(alice)
    r = api.client.get(f"/v1/jobs/{second}/explain", headers=alice)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queue_position"] == 2 and body["queued_ahead"] == 1
    assert body["required"] == {"CPU": 2.0, "GPU": 0.0}
    kinds = {reason["kind"] for reason in body["reasons"]}
    assert {"no_dispatcher", "priority"} <= kinds
    priority = [r["message"] for r in body["reasons"] if r["kind"] == "priority"]
    assert priority == ["1 queued job with higher priority or submitted earlier goes first"]
    third = api.submit(alice)
    body = api.client.get(f"/v1/jobs/{third}/explain", headers=alice).json()
    priority = [r["message"] for r in body["reasons"] if r["kind"] == "priority"]
    assert priority == ["2 queued jobs with higher priority or submitted earlier go first"]

    from service.store.db import transaction
    from service.store.dispatchers import upsert_dispatcher

    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="h", resources={"CPU": 1})
    body = api.client.get(f"/v1/jobs/{first}/explain", headers=alice).json()
    resources = [r["message"] for r in body["reasons"] if r["kind"] == "resources"]
    assert body["queue_position"] == 1 and resources and "never" in resources[0]
    assert not any(r["kind"] == "no_dispatcher" for r in body["reasons"])

    # After a restart: the old dispatcher's row stays with its last report (CPUs
    # free), the live one has none free. The wait is the live one's.
    from datetime import timedelta

    from service.store.models import utcnow

    free = {"total": {"CPU": 8.0}, "free": {"CPU": 8.0}, "capacity": {"CPU": 8.0}}
    busy = {"total": {"CPU": 8.0}, "free": {"CPU": 0.0}, "capacity": {"CPU": 8.0}}
    with transaction(api.sessions) as session:
        old = utcnow() - timedelta(hours=1)
        upsert_dispatcher(
            session=session, dispatcher_id="d1", hostname="h", resources=free, now=old
        )
        upsert_dispatcher(session=session, dispatcher_id="d2", hostname="h", resources=busy)
    body = api.client.get(f"/v1/jobs/{first}/explain", headers=alice).json()
    resources = [r["message"] for r in body["reasons"] if r["kind"] == "resources"]
    note = room_wait_note(first, [], api.settings.hold_room_after())  # not held yet
    assert resources == [f"waiting for 2 CPU to become free{note}"], body["reasons"]

    api.claim()
    body = api.client.get(f"/v1/jobs/{first}/explain", headers=alice).json()
    assert body["status"] == "running" and body["queue_position"] is None


def test_explain_waits_for_no_resources_of_a_dispatcher_that_is_gone(api: Api) -> None:
    """A dispatcher stopped (or dead) reported the gangs it ran then as its last free
    resources: explain said "waiting for 1.5 CPU to become free" beside "no dispatcher
    was seen", when only a dispatcher was missing."""
    from datetime import timedelta

    from service.store.db import transaction
    from service.store.dispatchers import upsert_dispatcher
    from service.store.models import utcnow

    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    busy = {"total": {"CPU": 8.0}, "free": {"CPU": 0.0}, "capacity": {"CPU": 8.0}}
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="h", resources=busy)
    body = api.client.get(f"/v1/jobs/{job_id}/explain", headers=alice).json()
    kinds = [r["kind"] for r in body["reasons"]]
    assert "resources" in kinds and "no_dispatcher" not in kinds  # live: it waits for CPUs

    with transaction(api.sessions) as session:
        stopped = utcnow() - timedelta(seconds=2 * api.settings.lease_seconds)  # its timeout
        upsert_dispatcher(
            session=session, dispatcher_id="d1", hostname="h", resources=busy, now=stopped
        )
    body = api.client.get(f"/v1/jobs/{job_id}/explain", headers=alice).json()
    kinds = [r["kind"] for r in body["reasons"]]
    assert "no_dispatcher" in kinds and "resources" not in kinds, body["reasons"]


def test_every_job_example_is_accepted(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    files = [p for p in sorted(REPO_EXAMPLES.glob("*.yaml")) if not p.name.startswith("sweep")]
    assert len(files) >= 5
    for path in files:
        r = api.client.post("/v1/jobs", json=spec_yaml.load(path.read_text()), headers=alice)
        assert r.status_code == 201, (path.name, r.text)
    submitted = api.client.get("/v1/jobs", headers=alice).json()["data"]
    laq = next(j for j in submitted if j["name"] == "shakespeare-laq")
    assert (laq["spec"]["aggregation"]["bits"], laq["spec"]["aggregation"]["xi"]) == (8, 0.1)
