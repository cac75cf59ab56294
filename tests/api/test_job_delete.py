"""DELETE /v1/jobs/{id} (SQLite and PostgreSQL): a finished job goes with everything
it produced — metric records, events, attempts, checkpoint rows and files — and its
storage stops counting; an unfinished job, or a trial of an unfinished sweep, stays
(409 naming why), and a sweep's trials go only with their sweep; the audit log keeps
who deleted what; a cancel that the delete overtakes is a 404, as if it came after."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

import service.api.removals as removals
from service.api import jobs as jobs_route
from service.api import sweeps as sweeps_route
from service.artifacts import remove_quietly
from service.store.attempts import acknowledge_cancel
from service.store.audit import record
from service.store.db import read_transaction, transaction
from service.store.job_removal import delete_metric_batch
from service.store.jobs import request_cancel
from service.store.sweeps import request_cancel as sweeps_request_cancel
from tests.api.conftest import SMALL_SWEEP, Api, assert_json_error, serving
from tests.api.test_quota_races import all_at_once, usage
from tests.lock_waits import a_transaction_waits_on_a_lock
from tests.polling import wait_until
from workers.sweeps.controller import SweepController

# Every table whose rows name a job (the foreign keys that cascade or set null).
JOB_TABLES = ("metrics", "job_events", "job_attempts", "checkpoints")


def _rows_naming(api: Api, job_id: int) -> dict[str, int]:
    """How many rows of each table name the job, and whether the job's own row is there."""
    with read_transaction(api.sessions) as session:
        counts = {
            table: session.execute(
                text(f"SELECT count(*) FROM {table} WHERE job_id = :id"), {"id": job_id}
            ).scalar_one()
            for table in JOB_TABLES
        }
        counts["jobs"] = session.execute(
            text("SELECT count(*) FROM jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()
    return counts


def test_a_finished_job_goes_with_everything_it_produced(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    _bob_id, bob = api.create_user("bob")
    kept = api.submit(alice)  # another job of alice's: untouched
    api.claim()
    job_id = api.submit(alice)
    claimed = api.claim()
    assert claimed.job_id == job_id
    api.append(claimed, range(1, 4))
    first_uri, _ = api.checkpoint(claimed, 0, b"x" * 600)
    second_uri, _ = api.checkpoint(claimed, 1, b"y" * 400)
    path = f"/v1/jobs/{job_id}"

    detail = assert_json_error(api.client.delete(path, headers=alice), 409)
    assert f"job {job_id} is running" in detail, detail  # its dispatcher still writes
    api.finish(claimed)
    assert usage(api, alice)["storage_bytes"] == 1000
    assert_json_error(api.client.delete(path, headers=bob), 404)  # not bob's to see
    before = _rows_naming(api, job_id)
    assert all(before[table] for table in (*JOB_TABLES, "jobs")), before

    assert api.client.delete(path, headers=alice).status_code == 204
    assert _rows_naming(api, job_id) == dict.fromkeys((*JOB_TABLES, "jobs"), 0)
    assert not Path(first_uri).exists() and not Path(second_uri).exists()
    assert not Path(first_uri).parent.exists()  # its emptied jobs/<id>/ folder too
    assert usage(api, alice)["storage_bytes"] == 0
    for gone in (path, f"{path}/metrics", f"{path}/checkpoints"):
        assert_json_error(api.client.get(gone, headers=alice), 404)
    assert [j["id"] for j in api.client.get("/v1/jobs", headers=alice).json()["data"]] == [kept]
    assert _rows_naming(api, kept)["jobs"] == 1
    assert_json_error(api.client.delete(path, headers=alice), 404)  # deleted once

    audit = api.client.get("/v1/audit", headers=api.admin).json()["data"]
    [entry] = [a for a in audit if a["action"] == "job.deleted"]
    assert entry["actor"] == "user:alice" and entry["target"] == f"job:{job_id}"
    assert entry["detail"] == {
        "owner_id": alice_id,
        "name": None,
        "status": "succeeded",
        "metric_records": 3,
        "checkpoints": 2,
        "bytes": 1000,
    }
    # Ids are never given again (migration 0008): a link to the deleted job stays dead.
    assert api.submit(alice) > job_id


def test_deleting_the_checkpoints_then_the_job_leaves_no_folder(api: Api) -> None:
    """The folder goes with the checkpoints (the job has finished: nothing writes
    there again), and the job's delete tries its folder even when no checkpoint row
    is left to name it."""
    _alice_id, alice = api.create_user("alice")
    job_id = api.submit(alice)
    claimed = api.claim()
    uri, _ = api.checkpoint(claimed, 0, b"x" * 10)
    api.finish(claimed)
    folder = Path(uri).parent
    assert folder.name == str(job_id) and folder.is_dir()

    assert api.client.delete(f"/v1/jobs/{job_id}/checkpoints", headers=alice).status_code == 204
    assert not folder.exists()
    folder.mkdir()  # as a gang the reaper cut off could leave it, with nothing in it
    assert api.client.delete(f"/v1/jobs/{job_id}", headers=alice).status_code == 204
    assert not folder.exists() and folder.parent.is_dir()  # jobs/ itself stays


def test_a_queued_job_is_cancelled_first_and_an_admin_may_delete_it(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    job_id = api.submit(alice)
    detail = assert_json_error(api.client.delete(f"/v1/jobs/{job_id}", headers=alice), 409)
    assert "queued" in detail and "cancel it" in detail, detail
    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice).status_code == 202
    assert api.client.delete(f"/v1/jobs/{job_id}", headers=api.admin).status_code == 204
    assert _rows_naming(api, job_id) == dict.fromkeys((*JOB_TABLES, "jobs"), 0)
    audit = api.client.get("/v1/audit", headers=api.admin).json()["data"]
    [entry] = [a for a in audit if a["action"] == "job.deleted"]
    assert entry["actor"] == "admin:admin" and entry["detail"]["status"] == "cancelled"


def test_a_cancelling_job_is_not_told_to_cancel_it(api: Api) -> None:
    """An operator's walkthrough read "job 29 is cancelling; cancel it or wait until it
    finishes" for a job already cancelled and waiting for a dispatcher to stop it."""
    _alice_id, alice = api.create_user("alice")
    job_id = api.submit(alice)
    api.claim()
    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice).status_code == 202
    detail = assert_json_error(api.client.delete(f"/v1/jobs/{job_id}", headers=alice), 409)
    assert detail == f"job {job_id} is cancelling; wait until it has stopped, then delete it"


def test_a_sweep_goes_whole_once_it_and_its_trials_have_finished(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite, several batches of metric records, each in its own transaction, the
    # last short.
    monkeypatch.setattr(removals, "METRIC_BATCH", 2)
    batches: list[int] = []

    def counted(**kwargs: Any) -> int:
        batches.append(delete_metric_batch(**kwargs))
        return batches[-1]

    monkeypatch.setattr(removals, "delete_metric_batch", counted)
    alice_id, alice = api.create_user("alice")
    _bob_id, bob = api.create_user("bob")
    sweep_id = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    other = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    SweepController(api.settings, api.sessions).poll()  # each queues two trial jobs
    trials = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()["trials"]
    first, second = (t["job_id"] for t in trials)
    claimed = api.claim()  # the oldest queued job: the first sweep's first trial
    assert claimed.job_id == first
    api.append(claimed, range(1, 6))
    uri, _ = api.checkpoint(claimed, 0, b"w" * 100)
    path = f"/v1/sweeps/{sweep_id}"

    # A trial's job goes only with its sweep; the sweep, only once it has finished.
    detail = assert_json_error(api.client.delete(f"/v1/jobs/{second}", headers=alice), 409)
    trial_of = f"job {second} is a trial of sweep {sweep_id}; it is deleted with its sweep"
    assert f"{trial_of}, once it has finished" in detail, detail
    detail = assert_json_error(api.client.delete(path, headers=alice), 409)
    assert f"sweep {sweep_id} is running" in detail, detail
    # A sweep that ended with trial jobs still going (a controller that could not
    # read a stored spec used to fail the sweep; set by hand here): they must stop
    # first.
    with transaction(api.sessions) as session:
        session.execute(
            text("UPDATE sweeps SET status = 'failed' WHERE id = :id"), {"id": sweep_id}
        )
    detail = assert_json_error(api.client.delete(path, headers=alice), 409)
    assert f"job {first} is running, job {second} is queued" in detail, detail
    # The sweep has finished: the trial's own delete says to delete the sweep.
    detail = assert_json_error(api.client.delete(f"/v1/jobs/{second}", headers=alice), 409)
    assert f"sweep {sweep_id}; it is deleted with its sweep: delete sweep {sweep_id}" in detail
    assert_json_error(api.client.delete(path, headers=bob), 404)
    for job_id in (first, second):
        assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice).status_code == 202
    detail = assert_json_error(api.client.delete(path, headers=alice), 409)
    assert f"job {first} is cancelling" in detail, detail
    with transaction(api.sessions) as session:  # as its dispatcher does once stopped
        acknowledge_cancel(session=session, job_id=first, token=claimed.fencing_token)

    assert api.client.delete(path, headers=alice).status_code == 204
    for job_id in (first, second):
        assert _rows_naming(api, job_id) == dict.fromkeys((*JOB_TABLES, "jobs"), 0)
    with read_transaction(api.sessions) as session:
        left = session.execute(
            text("SELECT count(*) FROM sweep_trials WHERE sweep_id = :id"), {"id": sweep_id}
        ).scalar_one()
    assert left == 0 and not Path(uri).exists()
    sqlite = api.sessions.kw["bind"].dialect.name == "sqlite"
    assert batches == ([2, 2, 1] if sqlite else []), batches  # PostgreSQL: the cascade
    assert_json_error(api.client.get(path, headers=alice), 404)
    listed = api.client.get("/v1/sweeps", headers=alice).json()["data"]
    assert [s["id"] for s in listed] == [other]
    assert len(api.client.get("/v1/jobs", headers=alice).json()["data"]) == 2  # other's
    assert_json_error(api.client.delete(path, headers=alice), 404)
    audit = api.client.get("/v1/audit", headers=api.admin).json()["data"]
    [entry] = [a for a in audit if a["action"] == "sweep.deleted"]
    assert entry["target"] == f"sweep:{sweep_id}" and entry["actor"] == "user:alice"
    assert entry["detail"] == {
        "owner_id": alice_id,
        "name": SMALL_SWEEP["name"],
        "status": "failed",
        "jobs": 2,
        "metric_records": 5,
        "checkpoints": 1,
        "bytes": 100,
    }


def test_concurrent_deletes_of_a_job_delete_and_audit_it_once(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    job_id = api.submit(alice)
    claimed = api.claim()
    for round_ in range(3):
        api.checkpoint(claimed, round_, b"z" * 100)
    api.finish(claimed)

    def delete(_i: int) -> httpx.Response:
        # TestClient's base class is httpx2's Client (absent here), so mypy sees Any.
        response: httpx.Response = api.client.delete(f"/v1/jobs/{job_id}", headers=alice)
        return response

    answers = all_at_once(4, delete)
    codes = sorted(a.status_code for a in answers)
    assert codes == [204, 404, 404, 404], [a.text for a in answers]
    audit = api.client.get("/v1/audit", headers=api.admin).json()["data"]
    assert [a["target"] for a in audit if a["action"] == "job.deleted"] == [f"job:{job_id}"]


@pytest.mark.parametrize("moment", ["before the cancel locks it", "while the cancel waits"])
def test_a_cancel_that_a_delete_overtakes_is_a_404(
    api: Api, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """The cancel route reads the job, then locks and re-reads it. The delete of the
    (finished) job commits in between, or while the cancel waits for its row lock:
    the cancel answers 404, as if it had come after (it was a 500)."""
    if api.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite's write transactions run one at a time")
    _alice_id, alice = api.create_user("alice")
    job_id = api.submit(alice)
    api.finish(api.claim())
    read, go, deleted, commit = (threading.Event() for _ in range(4))

    def cancel_after_a_pause(**kwargs: Any) -> Any:
        read.set()  # the route has read the job, not locked it yet
        assert go.wait(60)
        return request_cancel(**kwargs)

    def record_before_the_commit(**kwargs: Any) -> Any:
        deleted.set()  # the row is deleted, and locked until the delete commits
        assert commit.wait(60)
        return record(**kwargs)

    monkeypatch.setattr(jobs_route, "request_cancel", cancel_after_a_pause)
    monkeypatch.setattr(removals, "record", record_before_the_commit)
    answers: dict[str, httpx.Response] = {}

    def cancel() -> None:
        answers["cancel"] = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice)

    def delete() -> None:
        answers["delete"] = api.client.delete(f"/v1/jobs/{job_id}", headers=alice)

    threads = [threading.Thread(target=cancel), threading.Thread(target=delete)]
    threads[0].start()
    wait_until(read.is_set, timeout=60, what="the cancel to read the job")
    threads[1].start()
    wait_until(deleted.is_set, timeout=60, what="the delete to delete the row")
    if moment == "before the cancel locks it":
        commit.set()
        threads[1].join(timeout=60)
        go.set()
    else:
        go.set()
        engine = api.sessions.kw["bind"]

        wait_until(
            lambda: a_transaction_waits_on_a_lock(engine),
            timeout=60,
            what="the cancel to wait for the row lock",
        )
        commit.set()
    for thread in threads:
        thread.join(timeout=60)
    assert answers["delete"].status_code == 204, answers["delete"].text
    assert "cancel" in answers, "the cancel raised (see the thread's exception)"
    assert_json_error(answers["cancel"], 404)


def test_a_sweep_cancel_that_a_delete_overtakes_is_a_404(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for a job: a cancel of a finished sweep that reads it, then finds it deleted
    when it locks it, answers 404 (session.refresh raised, a 500)."""
    if api.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite's write transactions run one at a time")
    _alice_id, alice = api.create_user("alice")
    sweep_id = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    assert api.client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=alice).status_code == 202
    read, go = threading.Event(), threading.Event()

    def cancel_after_a_pause(**kwargs: Any) -> Any:
        read.set()  # the route has read the sweep, not locked it yet
        assert go.wait(60)
        return sweeps_request_cancel(**kwargs)

    monkeypatch.setattr(sweeps_route, "request_cancel", cancel_after_a_pause)
    answers: dict[str, httpx.Response] = {}

    def cancel() -> None:
        answers["cancel"] = api.client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=alice)

    thread = threading.Thread(target=cancel)
    thread.start()
    wait_until(read.is_set, timeout=60, what="the cancel to read the sweep")
    assert api.client.delete(f"/v1/sweeps/{sweep_id}", headers=alice).status_code == 204
    go.set()
    thread.join(timeout=60)
    assert "cancel" in answers, "the cancel raised (see the thread's exception)"
    assert_json_error(answers["cancel"], 404)


def test_a_delete_answers_before_its_files_are_removed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a real uvicorn: the 204 comes once the rows are deleted; the files go after
    it (a large sweep's thousands of remote files outlasted a client's timeout, the
    delete committed though the client saw an error)."""
    _alice_id, alice = api.create_user("alice")
    job_id = api.submit(alice)
    claimed = api.claim()
    uri, _ = api.checkpoint(claimed, 0, b"x" * 10)
    api.finish(claimed)
    release = threading.Event()

    def slow_store(url: str, *, location: str) -> None:
        release.wait(30)
        remove_quietly(url, location=location)

    monkeypatch.setattr(removals, "remove_quietly", slow_store)
    try:
        with serving(cast(FastAPI, api.client.app)) as base:
            answer = httpx.delete(f"{base}/v1/jobs/{job_id}", headers=alice, timeout=5)
            assert answer.status_code == 204
            assert _rows_naming(api, job_id)["jobs"] == 0
            assert Path(uri).exists()  # not yet: after the answer
            release.set()
            wait_until(lambda: not Path(uri).exists(), timeout=30, what="the file's removal")
    finally:
        release.set()
