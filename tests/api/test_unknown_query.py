"""A query parameter a route does not take is a 422 naming it and the ones it takes
(service.api.query_check): `?stauts=running` listed every job, silently."""

from __future__ import annotations

from tests.api.conftest import SMALL_SPEC, Api, assert_json_error


def test_a_misspelt_filter_is_a_422_naming_the_near_parameter(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    assert api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice).status_code == 201
    r = api.client.get("/v1/jobs?stauts=running&limit=5", headers=alice)
    [error] = assert_json_error(r, 422)
    assert error["loc"] == ["query", "stauts"] and error["input"] == "running", error
    assert error["msg"].startswith("Extra inputs are not permitted; did you mean 'status'?")
    assert "(parameters here: " in error["msg"] and "sweep_id" in error["msg"], error
    # The parameters it takes, a repeated one too (the last wins, as before).
    r = api.client.get("/v1/jobs?status=running&status=queued&limit=5", headers=alice)
    assert r.status_code == 200 and len(r.json()["data"]) == 1, r.text


def test_every_unknown_parameter_is_named_and_a_route_without_any_says_so(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    r = api.client.post("/v1/jobs?dry_run=1&x=2", json=SMALL_SPEC, headers=alice)
    errors = assert_json_error(r, 422)
    assert [e["loc"] for e in errors] == [["query", "dry_run"], ["query", "x"]], errors
    assert errors[0]["msg"] == "Extra inputs are not permitted (parameters here: none)"
    assert api.client.get("/v1/jobs", headers=alice).json()["data"] == [], "nothing queued"


def test_a_request_without_a_good_token_is_a_401_first(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    missing = api.client.get("/v1/jobs?stauts=running")
    assert missing.status_code == 401, missing.text
    bad = api.client.get("/v1/jobs?stauts=running", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401, bad.text
    assert api.client.get("/v1/jobs?stauts=running", headers=alice).status_code == 422


def test_pages_and_probes_take_any_query(api: Api) -> None:
    """A browser's bookmark or a monitor may add a query to the pages and probes."""
    assert api.client.get("/?from=bookmark").status_code == 200
    assert api.client.get("/healthz?probe=1").status_code == 200


def test_every_v1_route_declares_its_422(api: Api) -> None:
    """Any /v1 route can answer 422 now (an unknown parameter), those that take no
    parameter too (FastAPI declares it only for routes that take some)."""
    _uid, alice = api.create_user("alice")
    assert api.client.get("/v1/users/me?me=1", headers=alice).status_code == 422
    paths = api.client.get("/openapi.json").json()["paths"]
    undeclared = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
        if "422" not in operation["responses"]
    ]
    assert undeclared == []
