"""Giving storage back (SQLite and PostgreSQL): a user whose max_storage_bytes is full
deletes an upload or a finished job's checkpoints, and the bytes stop counting; what
an unfinished job or sweep still needs cannot be deleted (409 naming it), so no job
fails later on a worker for want of its data."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import service.api.sweeps as sweeps_route
from service.store.db import read_transaction, transaction
from service.store.models import Dataset
from service.store.spec_checks import spec_problems
from tests.api.conftest import SMALL_SPEC, SMALL_SWEEP, Api, assert_json_error
from tests.api.test_quota_races import all_at_once, quota, usage
from tests.lock_waits import a_transaction_waits_on_a_lock
from tests.polling import wait_until

TEXT = ("the quick brown fox jumps over the lazy dog. " * 40).encode()


def _upload(api: Api, headers: dict[str, str], content: bytes = TEXT) -> dict[str, Any]:
    r = api.client.post("/v1/datasets", files={"file": ("t.txt", content)}, headers=headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _char_lm(ref: str) -> dict[str, Any]:
    return {
        **SMALL_SPEC,
        "task": {"kind": "char_lm", "dataset": ref, "seq_len": 16, "max_chars": 1000},
    }


def _dataset_files(api: Api) -> list[Path]:
    return sorted((Path(api.settings.artifacts_url) / "datasets").glob("*.txt"))


def test_deleting_an_upload_frees_its_storage_unless_an_unfinished_job_names_it(
    api: Api,
) -> None:
    alice_id, alice = api.create_user("alice")
    _bob_id, bob = api.create_user("bob")
    dataset = _upload(api, alice)
    assert usage(api, alice)["storage_bytes"] == len(TEXT)
    [stored] = _dataset_files(api)
    job_id = api.submit(alice, _char_lm(dataset["ref"]))

    path = f"/v1/datasets/{dataset['id']}"
    detail = assert_json_error(api.client.delete(path, headers=alice), 409)
    assert detail.startswith(
        f"{dataset['ref']} is used by unfinished job {job_id}; cancel that or wait until "
        "it finishes"
    ), detail
    assert stored.exists() and usage(api, alice)["storage_bytes"] == len(TEXT)
    assert_json_error(api.client.delete(path, headers=bob), 404)  # not bob's to see

    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice).status_code == 202
    assert api.client.delete(path, headers=alice).status_code == 204
    assert not stored.exists()
    assert usage(api, alice)["storage_bytes"] == 0
    assert api.client.get("/v1/datasets", headers=alice).json()["data"] == []
    assert_json_error(api.client.delete(path, headers=alice), 404)
    # The finished job keeps its record; a new job naming the upload is refused at once.
    assert api.client.get(f"/v1/jobs/{job_id}", headers=alice).json()["status"] == "cancelled"
    r = api.client.post("/v1/jobs", json=_char_lm(dataset["ref"]), headers=alice)
    assert assert_json_error(r, 422)[0]["loc"] == ["body", "task", "dataset"]
    audit = api.client.get("/v1/audit", headers=api.admin).json()["data"]
    [entry] = [a for a in audit if a["action"] == "dataset.deleted"]
    assert entry["actor"] == "user:alice" and entry["target"] == f"dataset:{dataset['id']}"
    assert entry["detail"]["bytes"] == len(TEXT) and entry["detail"]["owner_id"] == alice_id


def _sweep(ref: str, **extra: Any) -> dict[str, Any]:
    objectives = [{"metric": "val_loss", "direction": "minimize"}]
    return {**SMALL_SWEEP, "base": _char_lm(ref), "objectives": objectives, **extra}


def test_an_unfinished_sweep_keeps_its_upload(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    dataset = _upload(api, alice)
    r = api.client.post("/v1/sweeps", json=_sweep(dataset["ref"]), headers=alice)
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]

    path = f"/v1/datasets/{dataset['id']}"
    detail = assert_json_error(api.client.delete(path, headers=alice), 409)
    assert f"sweep {sweep_id}" in detail, detail
    cancelled = api.client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=alice)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert api.client.delete(path, headers=api.admin).status_code == 204  # an admin may
    assert usage(api, alice)["storage_bytes"] == 0


def test_an_upload_a_sweep_may_choose_is_kept(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    one, other = _upload(api, alice), _upload(api, alice, TEXT.upper())
    choices = {"task.dataset": {"type": "categorical", "choices": [one["ref"], other["ref"]]}}
    r = api.client.post("/v1/sweeps", json=_sweep(one["ref"], parameters=choices), headers=alice)
    assert r.status_code == 201, r.text
    detail = assert_json_error(api.client.delete(f"/v1/datasets/{other['id']}", headers=alice), 409)
    assert f"sweep {r.json()['id']}" in detail, detail


def test_a_sweep_submit_and_a_delete_of_its_upload_never_both_succeed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep's submit is held after an upload check until the delete has come;
    the delete must then wait for it (and refuse), not delete the upload under it."""
    if api.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite's write transactions run one at a time")
    _alice_id, alice = api.create_user("alice")
    dataset = _upload(api, alice)
    checked, go = threading.Event(), threading.Event()
    corner_checks = spec_problems

    def held(**kwargs: Any) -> Any:
        problems = corner_checks(**kwargs)
        checked.set()  # a corner's upload has been found
        assert go.wait(60)
        return problems

    monkeypatch.setattr(sweeps_route, "spec_problems", held)
    answers: dict[str, httpx.Response] = {}

    def submit() -> None:
        answers["sweep"] = api.client.post("/v1/sweeps", json=_sweep(dataset["ref"]), headers=alice)

    def delete() -> None:
        answers["delete"] = api.client.delete(f"/v1/datasets/{dataset['id']}", headers=alice)

    threads = [threading.Thread(target=submit), threading.Thread(target=delete)]
    threads[0].start()
    wait_until(checked.is_set, timeout=60, what="the sweep's upload checks")
    threads[1].start()
    engine = api.sessions.kw["bind"]

    def delete_waits_or_ended() -> bool:
        return a_transaction_waits_on_a_lock(engine) or "delete" in answers

    wait_until(delete_waits_or_ended, timeout=60, what="the delete to wait or end")
    go.set()
    for thread in threads:
        thread.join(timeout=60)
    outcome = (answers["sweep"].status_code, answers["delete"].status_code)
    assert outcome == (201, 409), (answers["sweep"].text, answers["delete"].text)


def test_a_retried_submit_is_replayed_after_its_upload_is_deleted(api: Api) -> None:
    """A client that retries an accepted job or sweep submit (same Idempotency-Key and
    body) gets the original back, not a 422 for the upload deleted since."""
    _alice_id, alice = api.create_user("alice")
    dataset = _upload(api, alice)
    key = {**alice, "Idempotency-Key": "once"}
    job = api.client.post("/v1/jobs", json=_char_lm(dataset["ref"]), headers=key)
    sweep = api.client.post("/v1/sweeps", json=_sweep(dataset["ref"]), headers=key)
    assert (job.status_code, sweep.status_code) == (201, 201), (job.text, sweep.text)
    api.client.post(f"/v1/jobs/{job.json()['id']}/cancel", headers=alice)
    api.client.post(f"/v1/sweeps/{sweep.json()['id']}/cancel", headers=alice)
    assert api.client.delete(f"/v1/datasets/{dataset['id']}", headers=alice).status_code == 204

    job_again = api.client.post("/v1/jobs", json=_char_lm(dataset["ref"]), headers=key)
    sweep_again = api.client.post("/v1/sweeps", json=_sweep(dataset["ref"]), headers=key)
    assert job_again.status_code == 200 and job_again.json()["id"] == job.json()["id"]
    assert sweep_again.status_code == 200 and sweep_again.json()["id"] == sweep.json()["id"]


def test_a_file_an_older_upload_shares_stays_until_its_last_row_goes(api: Api) -> None:
    """Uploads of the same bytes used to share one content-addressed file."""
    _alice_id, alice = api.create_user("alice")
    first, second = _upload(api, alice), _upload(api, alice)
    one, other = _dataset_files(api)  # every upload now writes its own file
    with transaction(api.sessions) as session:
        session.get(Dataset, second["id"]).uri = str(one)  # type: ignore[union-attr]
    other.unlink()

    assert api.client.delete(f"/v1/datasets/{first['id']}", headers=alice).status_code == 204
    assert one.exists()
    assert api.client.delete(f"/v1/datasets/{second['id']}", headers=alice).status_code == 204
    assert not one.exists()


def test_deleting_a_finished_jobs_checkpoints_lets_a_full_user_submit_again(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    _bob_id, bob = api.create_user("bob")
    job_id = api.submit(alice)
    claimed = api.claim()
    first_uri, _ = api.checkpoint(claimed, 0, b"x" * 600)
    second_uri, _ = api.checkpoint(claimed, 1, b"y" * 600)
    path = f"/v1/jobs/{job_id}/checkpoints"

    detail = assert_json_error(api.client.delete(path, headers=alice), 409)
    assert "running" in detail, detail  # it may still resume from them
    api.finish(claimed)
    quota(api, alice_id, max_storage_bytes=1000)
    detail = assert_json_error(api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice), 429)
    assert "max_storage_bytes" in detail, detail

    assert_json_error(api.client.delete(path, headers=bob), 404)
    assert api.client.delete(path, headers=alice).status_code == 204
    assert not Path(first_uri).exists() and not Path(second_uri).exists()
    assert api.client.get(path, headers=alice).json()["data"] == []
    assert usage(api, alice)["storage_bytes"] == 0
    assert api.client.get(f"/v1/jobs/{job_id}/metrics", headers=alice).status_code == 200
    assert api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice).status_code == 201
    assert api.client.delete(path, headers=alice).status_code == 204  # nothing left: harmless
    audit = api.client.get("/v1/audit", headers=api.admin).json()["data"]
    [entry] = [a for a in audit if a["action"] == "checkpoints.deleted"]
    assert entry["detail"] == {"owner_id": alice_id, "checkpoints": 2, "bytes": 1200}


def test_deleted_checkpoints_ids_are_never_given_to_later_checkpoints(api: Api) -> None:
    """The newest checkpoints deleted, the next job's checkpoint gets a new id (SQLite
    too: AUTOINCREMENT, migration 0008), so a checkpoint id seen once names one file."""
    _alice_id, alice = api.create_user("alice")
    api.submit(alice)
    claimed = api.claim()
    deleted = [api.checkpoint(claimed, round_, b"c" * 10)[1] for round_ in range(2)]
    api.finish(claimed)
    path = f"/v1/jobs/{claimed.job_id}/checkpoints"
    assert api.client.delete(path, headers=alice).status_code == 204

    api.submit(alice)
    later = api.claim()
    _uri, new_id = api.checkpoint(later, 0, b"d" * 10)
    assert new_id > max(deleted), (new_id, deleted)


def test_concurrent_deletes_of_a_jobs_checkpoints_are_audited_once(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    for _round in range(3):
        job_id = api.submit(alice)
        claimed = api.claim()
        for round_ in range(4):
            api.checkpoint(claimed, round_, b"z" * 100)
        api.finish(claimed)
        path = f"/v1/jobs/{job_id}/checkpoints"

        def delete_checkpoints(_i: int, path: str = path) -> httpx.Response:
            # TestClient's base class is httpx2's Client (absent here), so mypy sees Any.
            response: httpx.Response = api.client.delete(path, headers=alice)
            return response

        answers = all_at_once(4, delete_checkpoints)
        assert [a.status_code for a in answers] == [204] * 4, [a.text for a in answers]
        audit = api.client.get("/v1/audit", headers=api.admin).json()["data"]
        entries = [
            a
            for a in audit
            if a["action"] == "checkpoints.deleted" and a["target"] == f"job:{job_id}"
        ]
        assert len(entries) == 1 and entries[0]["detail"]["bytes"] == 400, entries


def test_a_delete_and_a_submit_naming_the_upload_never_both_succeed(api: Api) -> None:
    """Each round: one submit naming the upload and one delete of it, released
    together. Either the job is queued and the delete refused, or the upload is gone
    and the submit refused (422): never a queued job whose data was deleted."""
    _alice_id, alice = api.create_user("alice")
    outcomes = set()
    for _round in range(6):
        dataset = _upload(api, alice)

        def submit_or_delete(
            i: int, ref: str = dataset["ref"], id_: int = dataset["id"]
        ) -> httpx.Response:
            # TestClient's base class is httpx2's Client (absent here), so mypy sees Any.
            response: httpx.Response = (
                api.client.post("/v1/jobs", json=_char_lm(ref), headers=alice)
                if i == 0
                else api.client.delete(f"/v1/datasets/{id_}", headers=alice)
            )
            return response

        submit, delete = all_at_once(2, submit_or_delete)
        outcome = (submit.status_code, delete.status_code)
        assert outcome in {(201, 409), (422, 204)}, (submit.text, delete.text)
        outcomes.add(outcome)
        if submit.status_code == 201:
            cancel = api.client.post(f"/v1/jobs/{submit.json()['id']}/cancel", headers=alice)
            assert cancel.status_code == 202
    with read_transaction(api.sessions) as session:
        left = {d.uri for d in session.query(Dataset)}
    assert {str(p) for p in _dataset_files(api)} == left  # no file without its row
