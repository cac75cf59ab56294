"""Open SSE streams re-check their token and close when it is revoked or the user is
disabled; a user's concurrent streams are capped (429)."""

from __future__ import annotations

import pytest

from service.store.db import transaction
from service.store.models import User
from service.store.users import Principal, revoke_token, set_disabled
from tests.api.conftest import MakeApi, assert_json_error, bearer
from tests.api.test_metrics_and_events import parse_sse


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
