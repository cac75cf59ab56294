"""Open SSE streams re-check their token and close when it is revoked or the user is
disabled; a user's concurrent streams are capped (429); reads take no write lock."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import MutableMapping
from typing import Any, cast

import anyio
import pytest
from sqlalchemy.exc import OperationalError

from service import auth
from service.api.job_stream import BATCH
from service.api.stream_hub import StreamHub
from service.sse_text import parse_sse
from service.store.db import is_sqlite, make_engine, transaction
from service.store.models import User
from service.store.users import Principal, revoke_token, set_disabled
from tests.api.conftest import Api, MakeApi, assert_json_error, bearer


@pytest.mark.timeout(60)
@pytest.mark.parametrize("containment", ["revoke", "disable"])
def test_an_open_stream_closes_when_its_token_is_contained(
    make_api: MakeApi, containment: str
) -> None:
    api = make_api(stream_auth_recheck_seconds=0.2)
    alice_id, _first = api.create_user("alice")
    created = api.client.post("/v1/tokens", headers=_first).json()
    alice = bearer(created["token"])
    job_id = api.submit(alice)
    api.claim()  # running: the stream would otherwise stay open
    with api.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=alice) as response:
        events = parse_sse(response.iter_lines())
        assert next(events).data["status"] == "running"
        with transaction(api.sessions) as session:
            if containment == "revoke":
                actor = Principal(user_id=alice_id, name="alice", role="user", token_id=0)
                revoke_token(session=session, token_id=created["id"], actor=actor)
            else:
                user = session.get(User, alice_id)
                assert user is not None
                set_disabled(session=session, user=user, disabled=True)
        assert list(events) == []  # the server closed the stream
    assert api.client.get("/v1/users/me", headers=alice).status_code == 401


@pytest.mark.timeout(60)
def test_concurrent_streams_per_user_are_capped(make_api: MakeApi) -> None:
    api = make_api(max_streams_per_user=1)
    _uid, alice = api.create_user("alice")
    _uid, bob = api.create_user("bob")
    job_id = api.submit(alice)
    bob_job = api.submit(bob)
    with api.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=alice) as response:
        events = parse_sse(response.iter_lines())
        assert next(events).data["status"] == "queued"
        second = api.client.get(f"/v1/jobs/{job_id}/events", headers=alice)
        assert "max_streams_per_user" in assert_json_error(second, 429)
        api.client.post(f"/v1/jobs/{bob_job}/cancel", headers=bob)
        with api.client.stream("GET", f"/v1/jobs/{bob_job}/events", headers=bob) as other:
            assert other.status_code == 200  # another user's cap is their own
        api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
        assert [e.data["status"] for e in events] == ["cancelled"]
    # The slot is free again once the stream ended.
    with api.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=alice) as again:
        assert again.status_code == 200


@pytest.mark.timeout(120)
def test_reads_do_not_wait_for_a_writer_on_sqlite(api: Api, db_url: str) -> None:
    """A writer holding SQLite's write lock does not hold up probes, GETs or
    authentication (they would wait out the busy timeout and fail if they took it),
    nor the write of a token's last use, which is skipped then and written by a
    later request (a review: a GET whose token was due it waited 30 s behind a long
    prune and answered 503)."""
    if not is_sqlite(db_url):
        pytest.skip("PostgreSQL readers never take a write lock")
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    assert api.client.get("/v1/users/me", headers=alice).status_code == 200  # last use noted
    unused = api.client.post("/v1/tokens", headers=alice).json()
    due = {"Authorization": f"Bearer {unused['token']}"}  # its first use is to be noted
    engine = make_engine(db_url)
    writer = engine.connect()
    writer.begin()  # BEGIN IMMEDIATE: the write lock is held until rollback
    try:
        for path in ("/readyz", "/metrics", "/v1/users/me", "/v1/jobs", f"/v1/jobs/{job_id}"):
            r = api.client.get(path, headers=alice)
            assert r.status_code == 200, (path, r.text)
        r = api.client.get("/v1/jobs", headers=due)
        assert r.status_code == 200, r.text
    finally:
        writer.rollback()
        writer.close()
        engine.dispose()

    def last_used() -> str | None:
        tokens = api.client.get("/v1/tokens", headers=alice).json()["data"]
        [token] = [t for t in tokens if t["id"] == unused["id"]]
        return cast(str | None, token["last_used_at"])

    assert last_used() is None, "skipped while the lock was held"
    assert api.client.get("/v1/jobs", headers=due).status_code == 200
    assert last_used() is not None, "written by the next request"


@pytest.mark.timeout(60)
def test_the_dashboard_jobs_feed_is_capped_and_closes_for_a_disabled_user(
    make_api: MakeApi,
) -> None:
    api = make_api(stream_auth_recheck_seconds=0.2, max_streams_per_user=1)
    alice_id, alice = api.create_user("alice")
    api.submit(alice)
    with api.client.stream("GET", "/v1/feeds/jobs", headers=alice) as response:
        events = parse_sse(response.iter_lines())
        assert next(events).event == "jobs"
        second = api.client.get("/v1/feeds/jobs", headers=alice)
        assert "max_streams_per_user" in assert_json_error(second, 429)
        with transaction(api.sessions) as session:
            user = session.get(User, alice_id)
            assert user is not None
            set_disabled(session=session, user=user, disabled=True)
        assert list(events) == []  # closed by the re-check, long before FEED_SECONDS


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["/v1/jobs/{job_id}/events", "/v1/feeds/jobs"])
def test_a_stream_that_never_starts_gives_its_slot_back(make_api: MakeApi, path: str) -> None:
    """A client gone before its stream's first write (the response's headers still
    waiting on a socket that never drains): sse_starlette never starts the stream,
    and its slot was given back only when the stream ended — a few such clients
    locked the user out of every stream until a restart. Called at the ASGI seam: no
    real socket can be held unwritable on cue."""
    api = make_api(max_streams_per_user=1)
    _uid, alice = api.create_user("alice")
    url = path.format(job_id=api.submit(alice))
    sent: list[str] = []

    async def gone_before_the_first_write() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(str(message.get("status", message["type"])))
            if (b"content-type", b"text/event-stream; charset=utf-8") in message.get("headers", []):
                await anyio.Event().wait()  # never writable: only the disconnect ends it

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": url,
            "raw_path": url.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"authorization", alice["Authorization"].encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        with anyio.fail_after(20):
            await api.client.app(scope, receive, send)

    for _ in range(3):
        anyio.run(gone_before_the_first_write)
    assert sent == ["200"] * 3  # each stream was answered (a leaked slot: a 429 and its body)
    with api.client.stream("GET", url, headers=alice) as response:
        assert response.status_code == 200, response.read()


@pytest.mark.timeout(60)
def test_a_backlog_stops_between_pages_once_the_token_is_no_longer_allowed(api: Api) -> None:
    """A slow reader of a finished job's long backlog read it to its end after its
    user was disabled (a review: 4 MB over 20 s, with a 2 s re-check): the re-check
    is asked before each stored page too, not only while live."""
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    claimed = api.claim()
    api.append(claimed, range(1, 3 * BATCH + 1))
    api.finish(claimed)
    answers = iter([True])  # the first page allowed, then the user is disabled

    async def still_allowed() -> bool:
        return next(answers, False)

    async def read() -> bytes:
        hub = StreamHub(api.sessions)
        try:
            watch = hub.watch(job_id, after_seq=0, still_allowed=still_allowed)
            return b"".join([chunk async for chunk in watch])
        finally:
            hub.close()

    events = list(parse_sse(asyncio.run(read()).decode().splitlines()))
    assert [e.event for e in events] == ["status"] + ["metrics"] * BATCH, len(events)


def test_a_failed_last_use_write_does_not_fail_the_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token's last use is bookkeeping a later request redoes: a write of it that
    fails (a full disk, a read-only file) is logged, and the request, authenticated
    already, answers (it was a 503 about once a minute per token: a review)."""
    _uid, alice = api.create_user("alice")

    def full(*, session: Any, token_id: int) -> None:
        raise OperationalError(
            "UPDATE api_tokens", {}, sqlite3.OperationalError("database or disk is full")
        )

    monkeypatch.setattr(auth, "touch_token", full)
    r = api.client.get("/v1/users/me", headers=alice)
    assert r.status_code == 200, r.text
