"""An admin's `?owner=` a name no user has is a 422 naming it, with the nearest name
("did you mean 'bob'?"), on GET /v1/jobs, GET /v1/sweeps and the jobs feed, and so
in `lagtrain jobs --owner` and `lagtrain sweeps --owner`: it answered an empty list,
a typo read as "no jobs" (a walkthrough). A non-admin's is still an empty page, as
another user's name is: the answer does not say which names exist."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from service.app import create_app
from service.cli import app
from tests.api.conftest import ADMIN_TOKEN, SMALL_SWEEP, Api, assert_json_error, serving

LISTINGS = ("/v1/jobs", "/v1/sweeps", "/v1/feeds/jobs")


def test_an_admins_unknown_owner_is_a_422_naming_it(api: Api) -> None:
    _bob_id, bob = api.create_user("bob")
    bobs_job = api.submit(bob)
    for route in LISTINGS:
        for typed, said in (
            ("bbo", "no user named 'bbo'; did you mean 'bob'?"),
            ("BBO", "no user named 'BBO'; did you mean 'bob'?"),  # any case, as names are
            ("nobody", "no user named 'nobody'"),
        ):
            answer = api.client.get(route, params={"owner": typed}, headers=api.admin)
            detail = assert_json_error(answer, 422)
            assert [(d["loc"], d["msg"]) for d in detail] == [(["query", "owner"], said)], route
    # A name that exists, in any case, still lists that user's.
    for typed in ("bob", "BOB"):
        jobs = api.client.get("/v1/jobs", params={"owner": typed}, headers=api.admin).json()
        assert [job["id"] for job in jobs["data"]] == [bobs_job]


def test_a_non_admins_owner_filter_says_nothing_of_other_names(api: Api) -> None:
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    api.submit(bob)
    api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=bob)
    for route in ("/v1/jobs", "/v1/sweeps"):
        for typed in ("bob", "bbo", "nobody"):  # another's name and none: the same page
            answer = api.client.get(route, params={"owner": typed}, headers=alice)
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"] == [], (route, typed)


def test_the_cli_says_an_unknown_owner_and_a_misspelt_status(api: Api) -> None:
    api.create_user("bob")
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN, "COLUMNS": "200"}

        def lagtrain(*args: str) -> Result:
            return CliRunner().invoke(app, list(args), env=env)

        for command in ("jobs", "sweeps"):
            typo = lagtrain(command, "--owner", "bbo")
            assert typo.exit_code == 1, typo.output
            assert "owner: no user named 'bbo'; did you mean 'bob'?" in typo.stderr, typo.output
            status = lagtrain(command, "--status", "runing")
            assert status.exit_code == 1, status.output
            assert "did you mean 'running'?" in status.stderr, status.output
