"""`?finished_before=` on GET /v1/jobs, its live feed and GET /v1/sweeps (SQLite and
PostgreSQL): only rows finished before the time, never an unfinished one; a time with
an offset is that instant, one without is UTC; cursor pages keep the filter; a
non-admin still sees only their own; a bad time is a 422 naming the field."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from sqlalchemy import update

from service.api.job_filters import JobFilters
from service.api.jobs_feed import _pages
from service.client import Client
from service.store.db import transaction
from service.store.models import Job, Sweep
from service.store.users import Principal
from tests.api.conftest import ADMIN_TOKEN, SMALL_SWEEP, Api, assert_json_error

NOON = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
# The times asked below, and what each must list of rows finished at 10:00 and 12:00
# UTC ("early", "late"): each offset's answer differs from its wall-clock time's.
ASKED = {
    "2024-06-01T11:00:00": ["early"],  # no offset: UTC
    "2024-06-01T13:00:00+02:00": ["early"],  # 11:00 UTC, not 13:00
    "2024-06-01T11:00:00-02:00": ["late", "early"],  # 13:00 UTC, not 11:00
    "2024-06-01T12:00:00Z": ["early"],  # strictly before
    "2024-06-01T09:00:00Z": [],
    "9999-12-31T23:59:59": ["late", "early"],  # every finished row, no unfinished one
}


def _finish_at(api: Api, table: type[Job] | type[Sweep], row_id: int, at: datetime) -> None:
    with transaction(api.sessions) as session:
        session.execute(update(table).where(table.id == row_id).values(finished_at=at))


def _cancelled_job(api: Api, headers: dict[str, str], at: datetime) -> int:
    job_id = api.submit(headers)
    cancelled = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).json()
    # A job cancelled before it ever ran has finished too (prune relies on it).
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    _finish_at(api, Job, job_id, at)
    return job_id


def _cancelled_sweep(api: Api, headers: dict[str, str], at: datetime) -> int:
    sweep_id: int = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=headers).json()["id"]
    cancelled = api.client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=headers).json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    _finish_at(api, Sweep, sweep_id, at)
    return sweep_id


def _ids(api: Api, path: str, headers: dict[str, str], **params: Any) -> list[int]:
    """Every page's ids, one row a page: the cursor is followed with the filter."""
    ids: list[int] = []
    cursor = None
    while True:
        query = {"limit": 1, **params} | ({"cursor": cursor} if cursor else {})
        r = api.client.get(path, params=query, headers=headers)
        assert r.status_code == 200, r.text
        ids += [row["id"] for row in r.json()["data"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return ids


def test_jobs_finished_before_a_time_to_whoever_may_see_them(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    early = _cancelled_job(api, alice, NOON - timedelta(hours=2))
    running = api.submit(alice)
    assert api.claim().job_id == running
    late = _cancelled_job(api, alice, NOON)
    api.submit(alice)  # queued
    bobs = _cancelled_job(api, bob, NOON - timedelta(hours=2))
    named = {"early": early, "late": late}

    # Paged one row a time: the unfinished jobs between early and late are skipped.
    for asked, expected in ASKED.items():
        got = _ids(api, "/v1/jobs", alice, finished_before=asked)
        assert got == [named[n] for n in expected], asked
    # Another user's job is not listed to alice; an admin sees it, or only bob's.
    every = "9999-12-31T23:59:59"
    assert _ids(api, "/v1/jobs", api.admin, finished_before=every) == [bobs, late, early]
    assert _ids(api, "/v1/jobs", api.admin, finished_before=every, owner="bob") == [bobs]
    # Combined with ?status=: both hold.
    assert _ids(api, "/v1/jobs", alice, finished_before=every, status="cancelled") == [late, early]
    assert _ids(api, "/v1/jobs", alice, finished_before=every, status="running") == []

    # The live feed reads the same filters (one dependency) through the same query,
    # its fingerprint included.
    viewer = Principal(user_id=alice_id, name="alice", role="user", token_id=0)
    eleven_utc = datetime(2024, 6, 1, 13, 0, tzinfo=timezone(timedelta(hours=2)))

    async def first_page(finished_before: datetime) -> dict[str, Any]:
        filters = JobFilters(finished_before=finished_before)
        feed = _pages(api.sessions, viewer, filters, limit=1, cursor=None)
        assert isinstance(feed, AsyncGenerator)  # declared AsyncIterator; aclose() below
        page = await feed.__anext__()
        await feed.aclose()
        data: dict[str, Any] = json.loads(page["data"])
        return data

    page = anyio.run(first_page, eleven_utc.astimezone(UTC))
    assert [j["id"] for j in page["data"]] == [early] and page["next_cursor"] is None
    page = anyio.run(first_page, datetime(9999, 1, 1, tzinfo=UTC))
    assert [j["id"] for j in page["data"]] == [late] and page["next_cursor"] == str(late)

    # The client sends an aware time as that instant (its "+" survives the URL).
    client = Client("http://testserver", ADMIN_TOKEN, http=api.client)
    client_rows = client.jobs(finished_before=eleven_utc, limit=1)
    assert [j["id"] for j in client_rows] == [bobs, early]  # the admin's: everyone's


def test_sweeps_finished_before_a_time_to_whoever_may_see_them(api: Api) -> None:
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    early = _cancelled_sweep(api, alice, NOON - timedelta(hours=2))
    queued = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    late = _cancelled_sweep(api, alice, NOON)
    bobs = _cancelled_sweep(api, bob, NOON - timedelta(hours=2))
    named = {"early": early, "late": late}

    assert _ids(api, "/v1/sweeps", alice) == [late, queued, early]
    for asked, expected in ASKED.items():
        got = _ids(api, "/v1/sweeps", alice, finished_before=asked)
        assert got == [named[n] for n in expected], asked
    every = "9999-12-31T23:59:59"
    assert _ids(api, "/v1/sweeps", api.admin, finished_before=every) == [bobs, late, early]
    assert _ids(api, "/v1/sweeps", api.admin, finished_before=every, owner="bob") == [bobs]
    assert _ids(api, "/v1/sweeps", alice, finished_before=every, status="queued") == []

    client = Client("http://testserver", ADMIN_TOKEN, http=api.client)
    eleven_utc = datetime(2024, 6, 1, 13, 0, tzinfo=timezone(timedelta(hours=2)))
    client_rows = client.sweeps(finished_before=eleven_utc, limit=1)
    assert [s["id"] for s in client_rows] == [bobs, early]  # the admin's: everyone's


# A feed that took the bad value would stream on: a failure, not a hung run.
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "bad",
    [
        "yesterday",
        "2024-02-30T00:00:00",
        "0001-01-01T00:00:00+01:00",  # valid, but before the year 1 in UTC
        "9999-12-31T23:00:00-02:00",  # valid, but after the year 9999 in UTC
    ],
)
def test_a_bad_finished_before_is_422_naming_it(api: Api, bad: str) -> None:
    for path in ("/v1/jobs", "/v1/feeds/jobs", "/v1/sweeps"):
        r = api.client.get(path, params={"finished_before": bad}, headers=api.admin)
        detail = assert_json_error(r, 422)
        assert [e["loc"] for e in detail] == [["query", "finished_before"]], (path, detail)


def test_an_offsets_plus_sent_unencoded_is_422_saying_to_write_it_as_2b(api: Api) -> None:
    """`?finished_before=…T00:00:00+01:00` typed as written reaches the server with a
    space for the + (a walkthrough found only "unexpected extra characters")."""
    _uid, alice = api.create_user("alice")
    sent = api.client.get("/v1/jobs?finished_before=2026-12-07T00:00:00+01:00", headers=alice)
    [error] = assert_json_error(sent, 422)
    assert error["loc"] == ["query", "finished_before"]
    assert "write a time's offset +01:00 as %2B01:00" in error["msg"]
    encoded = "/v1/jobs?finished_before=2026-12-07T00:00:00%2B01:00"
    assert api.client.get(encoded, headers=alice).status_code == 200
    [other] = assert_json_error(api.client.get("/v1/jobs?finished_before=x", headers=alice), 422)
    assert "%2B" not in other["msg"], "only where a + was read as a space"
    [no_plus] = assert_json_error(
        api.client.get("/v1/jobs?finished_before=2026-12-07 25:00", headers=alice), 422
    )
    assert "%2B" not in no_plus["msg"], "a date and a bad time with a space: no + was lost"
