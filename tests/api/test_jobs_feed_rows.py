"""The live jobs feed's rows and events (service.api.feed_page): a row carries what
the dashboard's pages read of a job (the Lab, the jobs list, a sweep's page) and not
its spec, and after the first page only what changed is sent. Replayed as live.js
does, every event leaves the client with GET /v1/jobs's page less the specs."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, cast

import anyio
import pytest

from service.api import jobs_feed
from service.api.job_filters import JobFilters
from service.api.jobs_feed import _pages
from service.api.stream_guard import TokenRecheck
from service.schemas.jobs import JobStatus
from service.store.users import Principal
from tests.api.conftest import Api

# What jobs.js, lab.js and sweep.js read of a feed row (summary: its figures).
READ_BY_THE_PAGES = {"id", "name", "owner", "status", "progress", "summary", "created_at"}
Row = dict[str, Any]


async def _always() -> bool:
    return True


def _feed(api: Api, viewer: Principal, filters: JobFilters, limit: int) -> AsyncGenerator[Any]:
    feed = _pages(
        api.sessions,
        viewer,
        filters,
        limit=limit,
        cursor=None,
        still_allowed=cast(TokenRecheck, _always),  # only awaited: a coroutine will do
    )
    assert isinstance(feed, AsyncGenerator)
    return feed


def _listed(api: Api, headers: dict[str, str], query: str) -> dict[str, Any]:
    """GET /v1/jobs's page, each row without its spec: what the client should hold."""
    page: dict[str, Any] = api.client.get(f"/v1/jobs?{query}", headers=headers).json()
    for job in page["data"]:
        del job["spec"]
    return page


class Client:
    """live.js jobsFeed's merge, in Python: the page a client holds after each event."""

    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}
        self.page: dict[str, Any] = {}

    def take(self, event: dict[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(event["data"])
        if event["event"] == "jobs":
            self.rows = {job["id"]: job for job in body["data"]}
            self.page = body
        else:
            assert event["event"] == "changes", event
            self.rows.update({job["id"]: job for job in body["data"]})
            self.rows = {i: self.rows[i] for i in body.get("ids", self.rows)}
            self.page = {"data": list(self.rows.values()), "next_cursor": body["next_cursor"]}
        return body


def test_feed_rows_carry_what_the_pages_read_and_no_spec(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    for _ in range(3):
        api.submit(alice)
    claimed = api.claim()
    api.finish(claimed)  # a summary to carry
    viewer = Principal(user_id=alice_id, name="alice", role="user", token_id=0)

    async def first(limit: int) -> dict[str, str]:
        feed = _feed(api, viewer, JobFilters(), limit)
        try:
            event: dict[str, str] = await feed.__anext__()
            return event
        finally:
            await feed.aclose()

    pages = {}
    for limit in (10, 2):  # the whole list, and a page with a next one
        event = anyio.run(first, limit)
        assert event["event"] == "jobs"
        page = json.loads(event["data"])
        for row in page["data"]:
            assert set(row) >= READ_BY_THE_PAGES, row
            assert "spec" not in row
        assert page == _listed(api, alice, f"limit={limit}")
        assert (page["next_cursor"] is None) == (limit == 10)
        pages[limit] = page
    summaries = [row["summary"] for row in pages[10]["data"] if row["id"] == claimed.job_id]
    assert summaries and summaries[0] is not None


@pytest.mark.timeout(60)
def test_after_the_page_only_changed_rows_are_sent_and_the_ids_when_they_change(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_feed, "POLL_SECONDS", 0.05)
    alice_id, alice = api.create_user("alice")
    ids = [api.submit(alice) for _ in range(3)]
    viewer = Principal(user_id=alice_id, name="alice", role="user", token_id=0)
    engine = api.sessions.kw["bind"]
    query = "status=queued&limit=10"

    async def scenario() -> list[dict[str, Any]]:
        feed = _feed(api, viewer, JobFilters(status=JobStatus.QUEUED), 10)
        client = Client()
        sent = []
        try:
            with anyio.fail_after(30):
                client.take(await feed.__anext__())
                assert client.page == _listed(api, alice, query)
                # One row changes: that row alone.
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"UPDATE jobs SET priority = 5 WHERE id = {ids[1]}")
                sent.append(client.take(await feed.__anext__()))
                assert client.page == _listed(api, alice, query)
                # A job leaves the page: no row, and ids without it.
                api.client.post(f"/v1/jobs/{ids[0]}/cancel", headers=alice)
                sent.append(client.take(await feed.__anext__()))
                assert client.page == _listed(api, alice, query)
                # A new job: its row alone.
                ids.append(api.submit(alice))
                sent.append(client.take(await feed.__anext__()))
                assert client.page == _listed(api, alice, query)
        finally:
            await feed.aclose()
        return sent

    changed, left, added = anyio.run(scenario)
    assert [row["id"] for row in changed["data"]] == [ids[1]]
    assert changed["data"][0]["priority"] == 5
    assert "ids" not in changed  # the page's ids did not change
    assert left["data"] == [] and left["ids"] == [ids[2], ids[1]]
    assert [row["id"] for row in added["data"]] == [ids[3]]
    assert added["ids"] == [ids[3], ids[2], ids[1]]
