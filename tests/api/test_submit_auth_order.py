"""POST /v1/jobs checks its token inside its one thread hop (issue 13); it must still
answer like every other route: a bad or missing token is a 401 whatever else is wrong
with the request, and only an authenticated caller learns what is wrong with a body."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import SMALL_SPEC, Api, assert_json_error, bearer

BAD_BODY: dict[str, Any] = {**SMALL_SPEC, "model": {"cell": "no-such-cell"}}
TOO_LONG_KEY = "k" * 201  # Idempotency-Key allows 200 characters


@pytest.mark.parametrize(
    ("body", "extra_headers"),
    [
        (BAD_BODY, {}),
        (SMALL_SPEC, {"Idempotency-Key": TOO_LONG_KEY}),
        (BAD_BODY, {"Idempotency-Key": TOO_LONG_KEY}),
    ],
    ids=["bad-body", "bad-header", "both"],
)
def test_a_bad_token_is_refused_before_the_request_is_validated(
    api: Api, body: dict[str, Any], extra_headers: dict[str, str]
) -> None:
    _uid, alice = api.create_user("alice")
    token_id = api.client.get("/v1/tokens", headers=alice).json()["data"][0]["id"]
    assert api.client.delete(f"/v1/tokens/{token_id}", headers=alice).status_code == 204
    callers = {
        "none": {},
        "unknown": bearer("not-a-token-of-anyone-here-0123456789"),
        "revoked": alice,
    }
    for caller, headers in callers.items():
        for path in ("/v1/jobs", "/v1/sweeps"):  # the sweep submit checks it as a dependency
            r = api.client.post(path, json=body, headers={**headers, **extra_headers})
            assert_json_error(r, 401)
            assert r.headers["www-authenticate"] == "Bearer", (caller, path)
    _uid, bob = api.create_user("bob")
    detail = assert_json_error(
        api.client.post("/v1/jobs", json=body, headers={**bob, **extra_headers}), 422
    )
    assert detail, "the 422 names what is invalid"


def test_an_authenticated_submit_and_its_replay(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    headers = {**alice, "Idempotency-Key": "once"}
    first = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=headers)
    assert first.status_code == 201, first.text
    assert first.headers["content-type"] == "application/json"
    again = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert first.json()["owner"] == "alice" and first.json()["status"] == "queued"
