"""Every route answers 401 before 422: a body that is no JSON, or names a key twice,
sent without a good token is a 401 on every route that takes a JSON body, not a 422
that tells an unauthenticated caller how the route parses (a review: only the job
submit did; the users, tokens, sweeps and dashboard routes answered 422 first)."""

from __future__ import annotations

import re

from tests.api.conftest import Api

BAD_BODIES = ["{not json", '{"a": 1, "a": 2}']


def _json_body_routes(api: Api) -> list[tuple[str, str]]:
    """(method, path) of each route with a JSON body, by the OpenAPI document (path
    parameters filled), and the dashboard's spec parser (left out of it)."""
    found = [("POST", "/ui/parse-spec")]
    paths = api.client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path)))
    return found


def test_a_bad_body_without_a_good_token_is_a_401_on_every_json_route(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    routes = _json_body_routes(api)
    assert {("POST", "/v1/jobs"), ("POST", "/v1/sweeps"), ("POST", "/v1/users")} <= set(routes)
    assert ("PATCH", "/v1/users/1") in routes and ("POST", "/v1/tokens") in routes
    json_type = {"Content-Type": "application/json"}
    for who in ({}, {"Authorization": "Bearer " + "x" * 40}):
        for method, path in routes:
            for body in BAD_BODIES:
                r = api.client.request(method, path, content=body, headers=who | json_type)
                assert r.status_code == 401, (method, path, body, who, r.status_code, r.text)
    # With a good token the body's fault is named, as before.
    r = api.client.post("/v1/sweeps", content=BAD_BODIES[0], headers=alice | json_type)
    assert r.status_code == 422, r.text
