"""Quotas hold under concurrent requests of one user (SQLite and PostgreSQL): each
check takes the user's quota lock (service.store.quotas.lock_owner), so submits or
uploads that arrive together cannot all pass a check that counts what the others
are adding. Without the lock, 12 concurrent submits left 5 jobs queued against a
quota of 2 on PostgreSQL, and 8 concurrent uploads stored 5x the storage quota on
both databases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.api.conftest import SMALL_SPEC, SMALL_SWEEP, Api


def all_at_once(count: int, request: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """`request(i)` for i in range(count), each in its own thread, released together."""
    start = threading.Barrier(count)
    answers: list[httpx.Response | None] = [None] * count

    def run(i: int) -> None:
        start.wait()
        answers[i] = request(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(a is not None for a in answers), "a request did not return"
    return [a for a in answers if a is not None]


def quota(api: Api, user_id: int, **values: int) -> None:
    r = api.client.patch(f"/v1/users/{user_id}", json={"quota": values}, headers=api.admin)
    assert r.status_code == 200, r.text


def usage(api: Api, headers: dict[str, str]) -> dict[str, int]:
    body: dict[str, int] = api.client.get("/v1/users/me", headers=headers).json()["usage"]
    return body


def test_concurrent_submits_never_queue_more_than_max_queued_jobs(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    quota(api, alice_id, max_queued_jobs=2)
    answers = all_at_once(
        12, lambda _i: api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice)
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 2 + [429] * 10, [a.text for a in answers]
    assert usage(api, alice)["queued_jobs"] == 2


def test_concurrent_uploads_never_store_more_than_max_storage_bytes(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    quota(api, alice_id, max_storage_bytes=100_000)

    def upload(i: int) -> httpx.Response:
        text = (f"file {i} " + "abcdefghij " * 6000).encode()  # ~66 kB, each its own
        files = {"file": (f"t{i}.txt", text, "text/plain")}
        # TestClient's base class is httpx2's Client (absent here), so mypy sees Any.
        response: httpx.Response = api.client.post("/v1/datasets", files=files, headers=alice)
        return response

    answers = all_at_once(8, upload)
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [429] * 7, [a.text for a in answers]
    assert all("max_storage_bytes" in a.text for a in answers if a.status_code == 429)
    assert usage(api, alice)["storage_bytes"] <= 100_000
    # An upload that passed the first check wrote its file; refused by the second, it
    # removed it: only the accepted upload's file is left.
    assert len(list((Path(api.settings.artifacts_url) / "datasets").iterdir())) == 1


def test_concurrent_retries_of_one_sweep_create_it_once(api: Api) -> None:
    """The same Idempotency-Key and body, sent 8 times at once: one sweep, answered
    201 once and 200 with the same sweep to every other; no 409, 429 or 500 (the key
    is looked up under the user's quota lock, which the quota check then holds)."""
    alice_id, alice = api.create_user("alice")
    quota(api, alice_id, max_queued_jobs=3)  # one budget (3 trials) fits, no more
    key = {**alice, "Idempotency-Key": "once"}
    answers = all_at_once(
        8, lambda _i: api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=key)
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 7 + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    listed = api.client.get("/v1/sweeps", headers=alice).json()["data"]
    assert len(listed) == 1
