"""SSE fan-out through a real uvicorn: many watchers of one job share one store
poller, and each of them, early or late, from the start or from a Last-Event-ID,
receives the complete series exactly once and the terminal status last."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from service.api import event_stream, job_feed
from service.api.job_stream import BATCH
from service.app import create_app
from service.settings import Settings
from service.sse_text import SseEvent, parse_sse
from tests.api.conftest import ADMIN_TOKEN, SMALL_SPEC, Api, bearer, serving
from tests.conftest import on_one_database
from tests.polling import wait_until

EARLY_WATCHERS = 40
LATE_WATCHERS = 20
# More than one store page (BATCH = 500) in one append: the feed must drain it.
BATCHES = [range(1, 4), range(4, 610), range(610, 700)]


@dataclass
class Server:
    url: str
    app: FastAPI
    api: Api


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    app = create_app(
        settings.model_copy(
            update={
                "bootstrap_admin_token": SecretStr(ADMIN_TOKEN),
                # One user watches with all of them (the per-user cap is another test's).
                "max_streams_per_user": EARLY_WATCHERS + LATE_WATCHERS,
            }
        )
    )
    # Api drives the same store through TestClient-free helpers (claim, append, finish).
    api = Api(client=None, settings=settings, sessions=app.state.sessions)  # type: ignore[arg-type]
    with serving(app) as url:
        yield Server(url, app, api)


@dataclass
class Watcher:
    after: int = 0
    events: list[SseEvent] = field(default_factory=list)
    greeted: asyncio.Event = field(default_factory=asyncio.Event)


async def watch(client: httpx.AsyncClient, job_id: int, watcher: Watcher) -> None:
    headers = bearer(ADMIN_TOKEN)
    if watcher.after:
        headers["Last-Event-ID"] = str(watcher.after)
    lines: list[str] = []
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            lines.append(line)
            if not line and not watcher.greeted.is_set():
                watcher.greeted.set()  # the first event (the current status) arrived
    watcher.events = list(parse_sse(lines))


@pytest.mark.timeout(120)
def test_many_watchers_share_one_poller_and_each_gets_the_complete_series(
    server: Server, clean_db: None
) -> None:
    async def scenario() -> list[Watcher]:
        limits = httpx.Limits(max_connections=EARLY_WATCHERS + LATE_WATCHERS + 5)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
            r = await client.post("/v1/jobs", json=SMALL_SPEC, headers=bearer(ADMIN_TOKEN))
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
            early = [Watcher() for _ in range(EARLY_WATCHERS)]
            tasks = [asyncio.create_task(watch(client, job_id, w)) for w in early]
            await asyncio.gather(*(w.greeted.wait() for w in early))
            assert server.app.state.stream_hub.feeds() == 1
            claimed = await asyncio.to_thread(server.api.claim)
            await asyncio.to_thread(server.api.append, claimed, BATCHES[0])
            await asyncio.to_thread(server.api.append, claimed, BATCHES[1])
            # Late joiners: from the start, and from seqs on both sides of the feed.
            late = [Watcher(after=after) for after in (0, 2, 300, 650) * (LATE_WATCHERS // 4)]
            tasks += [asyncio.create_task(watch(client, job_id, w)) for w in late]
            await asyncio.gather(*(w.greeted.wait() for w in late))
            assert server.app.state.stream_hub.feeds() == 1
            await asyncio.to_thread(server.api.append, claimed, BATCHES[2])
            await asyncio.to_thread(server.api.finish, claimed)
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
            return early + late

    watchers = asyncio.run(scenario())
    last = BATCHES[-1][-1]
    for watcher in watchers:
        metrics = [int(e.id or 0) for e in watcher.events if e.event == "metrics"]
        assert metrics == list(range(watcher.after + 1, last + 1)), watcher.after
        statuses = [e.data["status"] for e in watcher.events if e.event == "status"]
        assert statuses[-1] == "succeeded" and watcher.events[-1].event == "status"
        assert statuses[0] in {"queued", "running"}
    assert server.app.state.stream_hub.feeds() == 0  # the feed ended with the job


@pytest.mark.timeout(120)
def test_on_postgresql_the_feed_reads_when_the_store_notifies(
    server: Server, clean_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With polling slowed to a minute, every record and the terminal status still
    arrive within seconds: the store's NOTIFY (claim, metrics, finish) pokes the feed."""
    if not server.api.settings.database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    monkeypatch.setattr(job_feed, "POLL_SECONDS", 60.0)
    monkeypatch.setattr(job_feed, "NOTIFIED_POLL_SECONDS", 60.0)

    async def scenario() -> Watcher:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            r = await client.post("/v1/jobs", json=SMALL_SPEC, headers=bearer(ADMIN_TOKEN))
            assert r.status_code == 201, r.text
            watcher = Watcher()
            task = asyncio.create_task(watch(client, r.json()["id"], watcher))
            await asyncio.wait_for(watcher.greeted.wait(), timeout=30)
            hub = server.app.state.stream_hub
            await asyncio.to_thread(
                wait_until, hub._notified, timeout=30, what="the feed listener to connect"
            )
            claimed = await asyncio.to_thread(server.api.claim)
            await asyncio.to_thread(server.api.append, claimed, range(1, 4))
            await asyncio.to_thread(server.api.finish, claimed)
            await asyncio.wait_for(task, timeout=15)  # far below the minute's poll
            return watcher

    watcher = asyncio.run(scenario())
    assert [int(e.id or 0) for e in watcher.events if e.event == "metrics"] == [1, 2, 3]
    assert watcher.events[-1].event == "status"
    assert watcher.events[-1].data["status"] == "succeeded"


@on_one_database("sqlite")
@pytest.mark.timeout(120)
def test_a_stream_whose_client_stops_reading_is_closed_and_its_slot_freed(
    server: Server, clean_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that stops reading (a laptop asleep with a dashboard tab open) held its
    stream, its user's stream slot and its feed's backlog until TCP gave up, minutes
    later (a review). Closed once a send has waited SEND_STALL_SECONDS."""
    monkeypatch.setattr(event_stream, "SEND_STALL_SECONDS", 1.0)
    monkeypatch.setattr(event_stream, "STALL_CHECK_SECONDS", 0.1)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        admin_id = client.get("/v1/users/me", headers=bearer(ADMIN_TOKEN)).json()["id"]
        r = client.post("/v1/jobs", json=SMALL_SPEC, headers=bearer(ADMIN_TOKEN))
        assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    claimed = server.api.claim()
    # A backlog of ≈ 5 MB: more than the kernel's socket buffers take on loopback.
    for first in range(1, 30_000, BATCH):
        server.api.append(claimed, range(first, first + BATCH))
    server.api.finish(claimed)
    slots = server.app.state.stream_slots
    hidden = event_stream.stalled_closes_hidden()
    address = urlparse(server.url)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((address.hostname, address.port))
    try:
        stalled.sendall(
            f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode()
        )  # and never read
        wait_until(lambda: slots.open_streams(admin_id) == 1, timeout=30, what="the stream")
        wait_until(
            lambda: slots.open_streams(admin_id) == 0,
            timeout=30,
            what="the stalled stream to be closed",
        )
        # uvicorn's ERROR for the response left unfinished on purpose is dropped.
        wait_until(
            lambda: event_stream.stalled_closes_hidden() > hidden,
            timeout=30,
            what="uvicorn's unfinished-response error, dropped",
        )
    finally:
        stalled.close()
