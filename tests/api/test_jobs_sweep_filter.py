"""GET /v1/jobs?sweep_id=N (and the live jobs feed with it): a sweep's trial jobs,
under the listing's usual visibility rules, combined with its other filters."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from service.api.job_filters import JobFilters
from service.api.jobs_feed import _pages
from service.app import create_app
from service.cli import app
from service.store.users import Principal
from tests.api.conftest import SMALL_SWEEP, Api, assert_json_error, serving
from workers.sweeps.controller import SweepController


def _ids(api: Api, headers: dict[str, str], **params: Any) -> list[int]:
    """Every page's ids (limit 1: the cursor is followed through the sweep's jobs)."""
    ids: list[int] = []
    cursor = None
    while True:
        query = {"limit": 1, **params} | ({"cursor": cursor} if cursor else {})
        r = api.client.get("/v1/jobs", params=query, headers=headers)
        assert r.status_code == 200, r.text
        ids += [j["id"] for j in r.json()["data"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return ids


def _trial_jobs(api: Api, headers: dict[str, str], sweep_id: int) -> list[int]:
    sweep = api.client.get(f"/v1/sweeps/{sweep_id}", headers=headers).json()
    return sorted((t["job_id"] for t in sweep["trials"]), reverse=True)


def test_sweep_filter_lists_that_sweeps_jobs_to_whoever_may_see_them(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    ours = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    other = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    bobs = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=bob).json()["id"]
    SweepController(api.settings, api.sessions).poll()  # each sweep queues 2 trial jobs
    alone = api.submit(alice)  # no sweep's
    trials = _trial_jobs(api, alice, ours)
    assert len(trials) == 2 and alone not in trials
    assert len(_trial_jobs(api, alice, other)) == 2

    # Another sweep's jobs and a job of no sweep are not listed; newest first, paged.
    assert _ids(api, alice, sweep_id=ours) == trials
    # Another user's sweep lists nothing to a plain user (as an unknown sweep does:
    # an empty page, as ?owner= does for a name no user has), everything to an admin.
    assert _ids(api, alice, sweep_id=bobs) == []
    assert _ids(api, alice, sweep_id=999_999) == []
    assert _ids(api, api.admin, sweep_id=bobs) == _trial_jobs(api, bob, bobs)
    assert _ids(api, api.admin, sweep_id=bobs, owner="alice") == []

    # Combined with ?status=.
    cancelled = trials[0]
    assert api.client.post(f"/v1/jobs/{cancelled}/cancel", headers=alice).status_code == 202
    assert _ids(api, alice, sweep_id=ours, status="cancelled") == [cancelled]
    assert _ids(api, alice, sweep_id=ours, status="queued") == trials[1:]

    # The live feed takes the same filter by the same rules (one dependency).
    viewer = Principal(user_id=alice_id, name="alice", role="user", token_id=0)

    async def first_page(sweep_id: int) -> list[int]:
        feed = _pages(api.sessions, viewer, JobFilters(sweep_id=sweep_id), limit=10, cursor=None)
        assert isinstance(feed, AsyncGenerator)  # declared AsyncIterator; aclose() below
        page = await feed.__anext__()
        await feed.aclose()
        return [j["id"] for j in json.loads(page["data"])["data"]]

    assert anyio.run(first_page, ours) == trials
    assert anyio.run(first_page, bobs) == []


# A feed that took the bad value would stream on: a failure, not a hung run.
@pytest.mark.timeout(30)
@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1.5", str(2**63)])
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/feeds/jobs"])
def test_a_bad_sweep_id_is_422_naming_it(api: Api, path: str, bad: str) -> None:
    _a, alice = api.create_user("alice")
    detail = assert_json_error(api.client.get(path, params={"sweep_id": bad}, headers=alice), 422)
    assert [e["loc"] for e in detail] == [["query", "sweep_id"]], detail


def test_cli_jobs_sweep_lists_that_sweeps_jobs(api: Api) -> None:
    _a, alice = api.create_user("alice")
    ours = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    SweepController(api.settings, api.sessions).poll()
    api.submit(alice)
    token = alice["Authorization"].removeprefix("Bearer ")
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token, "COLUMNS": "200"}
        result = CliRunner().invoke(app, ["jobs", "--sweep", str(ours)], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    cells = ([c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines())
    assert [int(row[0]) for row in cells if row and row[0].isdigit()] == _trial_jobs(
        api, alice, ours
    )
