"""Token containment (list, expiry, last use, cap, admin disable) and the audit log."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import update

from service.bootstrap import IGNORED_BOOTSTRAP_TOKEN, bootstrap_admin
from service.schemas.audit import AuditAction
from service.settings import Settings
from service.store.models import ApiToken, table_of, utcnow
from tests.api.conftest import SMALL_SPEC, Api, MakeApi, assert_json_error, bearer


def test_token_list_expiry_and_last_use(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    r = api.client.post("/v1/tokens", json={"expires_in_days": 2}, headers=alice)
    assert r.status_code == 201, r.text
    short = r.json()
    assert short["expires_at"] is not None
    listed = api.client.get("/v1/tokens", headers=alice).json()["data"]
    assert [t["id"] for t in listed][-1] == short["id"]
    assert all(set(t) == {"id", "created_at", "expires_at", "last_used_at"} for t in listed)
    assert short["token"] not in r.text.replace(short["token"], "", 1)  # shown once
    assert api.client.get("/v1/users/me", headers=bearer(short["token"])).status_code == 200
    used = {t["id"]: t for t in api.client.get("/v1/tokens", headers=alice).json()["data"]}
    assert used[short["id"]]["last_used_at"] is not None
    # Expiry passes (seam: the stored expiry is moved into the past).
    with api.sessions.begin() as session:
        session.execute(
            update(table_of(ApiToken))
            .where(table_of(ApiToken).c.id == short["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_json_error(api.client.get("/v1/users/me", headers=bearer(short["token"])), 401)
    ids = [t["id"] for t in api.client.get("/v1/tokens", headers=alice).json()["data"]]
    assert short["id"] not in ids
    # What the OpenAPI promises: no server-side maximum exists to cut "never" short.
    schema = api.client.get("/openapi.json").json()["components"]["schemas"]["TokenCreate"]
    assert schema["properties"]["expires_in_days"]["description"] == (
        "days until it expires; null = never"
    )


def test_active_tokens_are_capped_per_user(make_api: MakeApi) -> None:
    api = make_api(max_tokens_per_user=2)
    alice_id, alice = api.create_user("alice")  # holds one
    second = api.client.post("/v1/tokens", headers=alice).json()
    detail = assert_json_error(api.client.post("/v1/tokens", headers=alice), 429)
    assert "max_tokens_per_user" in detail
    # The cap is the user's, whoever issues: an admin's token for them is refused too,
    # naming whose tokens are counted.
    on_behalf = api.client.post("/v1/tokens", json={"user_id": alice_id}, headers=api.admin)
    assert f"user {alice_id} holds 2 active tokens" in assert_json_error(on_behalf, 429)
    assert api.client.delete(f"/v1/tokens/{second['id']}", headers=alice).status_code == 204
    assert api.client.post("/v1/tokens", headers=alice).status_code == 201


def test_admin_disable_locks_every_token_out_at_once(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    other = bearer(api.client.post("/v1/tokens", headers=alice).json()["token"])
    r = api.client.patch(f"/v1/users/{alice_id}", json={"disabled": True}, headers=api.admin)
    assert r.status_code == 200 and r.json()["disabled"] is True
    for headers in (alice, other):
        assert_json_error(api.client.get("/v1/users/me", headers=headers), 401)
        assert_json_error(api.client.post("/v1/jobs", json=SMALL_SPEC, headers=headers), 401)
    api.client.patch(f"/v1/users/{alice_id}", json={"disabled": False}, headers=api.admin)
    assert api.client.get("/v1/users/me", headers=other).status_code == 200
    missing = api.client.patch("/v1/users/999999", json={"disabled": True}, headers=api.admin)
    assert_json_error(missing, 404)


def test_audit_log_names_who_did_what(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    token = api.client.post("/v1/tokens", headers=alice).json()
    api.client.delete(f"/v1/tokens/{token['id']}", headers=alice)
    job_id = api.submit(alice)
    api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.admin)  # an admin cancels
    api.client.post("/v1/datasets", files={"file": ("t.txt", b"hello\n")}, headers=alice)
    api.client.patch(
        f"/v1/users/{alice_id}",
        json={"quota": {"max_running_jobs": 2}, "disabled": True},
        headers=api.admin,
    )
    page = api.client.get("/v1/audit", params={"limit": 3}, headers=api.admin).json()
    events = page["data"]
    while page["next_after_id"] is not None:
        page = api.client.get(
            "/v1/audit", params={"after_id": page["next_after_id"]}, headers=api.admin
        ).json()
        events += page["data"]
    seen = [(e["actor"], e["action"], e["target"]) for e in events]
    admin_id = api.client.get("/v1/users/me", headers=api.admin).json()["id"]
    assert seen == [
        ("server", "user.created", f"user:{admin_id}"),  # the first start made the admin
        ("admin:admin", "user.created", f"user:{alice_id}"),
        ("user:alice", "token.created", f"token:{token['id']}"),
        ("user:alice", "token.revoked", f"token:{token['id']}"),
        ("user:alice", "job.submitted", f"job:{job_id}"),
        ("admin:admin", "job.cancelled", f"job:{job_id}"),
        ("user:alice", "dataset.uploaded", seen[6][2]),
        ("admin:admin", "user.disabled", f"user:{alice_id}"),
        ("admin:admin", "quota.changed", f"user:{alice_id}"),
    ]
    assert events[-1]["detail"] == {"max_running_jobs": [None, 2]}
    assert events[5]["detail"]["owner_id"] == alice_id
    assert {action for _, action, _ in seen} <= set(AuditAction)  # what record() takes
    assert_json_error(api.client.get("/v1/audit", headers=bearer("nope")), 401)


def audit_actions(api: Api) -> list[tuple[str, str, str]]:
    page = api.client.get("/v1/audit", params={"limit": 500}, headers=api.admin).json()
    return [(e["actor"], e["action"], e["target"]) for e in page["data"]]


def test_revoking_a_revoked_token_is_204_without_a_second_audit_row(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    token = api.client.post("/v1/tokens", headers=alice).json()
    for headers in (alice, alice, api.admin):  # again, and an admin after the owner
        assert api.client.delete(f"/v1/tokens/{token['id']}", headers=headers).status_code == 204
    revoked = [a for a in audit_actions(api) if a[1] == "token.revoked"]
    assert revoked == [("user:alice", "token.revoked", f"token:{token['id']}")]


def test_a_short_bootstrap_token_is_refused(api: Api) -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(bootstrap_admin_token=SecretStr("short"))
    unchecked = api.settings.model_copy(update={"bootstrap_admin_token": SecretStr("x" * 31)})
    with pytest.raises(ValueError, match="at least 32"):
        bootstrap_admin(api.sessions, unchecked)


def test_a_bootstrap_token_that_signs_nobody_in_is_named_at_start(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """After the first start the bootstrap token is ignored; a changed one (or the
    admin's, revoked) would leave the operator locked out without a word."""
    caplog.set_level(logging.WARNING, logger="service.bootstrap")
    assert bootstrap_admin(api.sessions, api.settings) is False  # still the admin's: quiet
    assert [r for r in caplog.records if r.name == "service.bootstrap"] == []
    rotated = api.settings.model_copy(update={"bootstrap_admin_token": SecretStr("y" * 43)})
    assert bootstrap_admin(api.sessions, rotated) is False
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "service.bootstrap"]
    assert warning == IGNORED_BOOTSTRAP_TOKEN
    assert "lagtrain admin create-user NAME --admin" in warning


def test_an_admin_finds_and_revokes_a_users_leaked_first_token(api: Api) -> None:
    """docs/operations.md's leaked-token steps, for the token the user was created
    with (no token.created row names it): disable, find its id, revoke, enable."""
    r = api.client.post(
        "/v1/users", json={"name": "alice", "max_running_jobs": 2}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    alice_id, leaked = r.json()["id"], bearer(r.json()["token"])
    (first,) = api.client.get("/v1/tokens", headers=leaked).json()["data"]
    kept = api.client.post("/v1/tokens", headers=leaked).json()
    created = [e for e in audit_events(api) if e["action"] == "user.created"][-1]
    assert created["target"] == f"user:{alice_id}"
    assert created["detail"] == {
        "name": "alice",
        "role": "user",
        "token_id": first["id"],
        "max_running_jobs": 2,  # a quota set at creation is in the log too
    }

    api.client.patch(f"/v1/users/{alice_id}", json={"disabled": True}, headers=api.admin)
    listed = api.client.get("/v1/tokens", params={"user_id": alice_id}, headers=api.admin)
    assert listed.status_code == 200, listed.text
    assert [t["id"] for t in listed.json()["data"]] == [first["id"], kept["id"]]
    assert api.client.delete(f"/v1/tokens/{first['id']}", headers=api.admin).status_code == 204
    api.client.patch(f"/v1/users/{alice_id}", json={"disabled": False}, headers=api.admin)
    assert_json_error(api.client.get("/v1/users/me", headers=leaked), 401)
    assert api.client.get("/v1/users/me", headers=bearer(kept["token"])).status_code == 200

    # Only admins list another user's tokens; an unknown user is a 404.
    admin_id = api.client.get("/v1/users/me", headers=api.admin).json()["id"]
    own = bearer(kept["token"])
    mine = api.client.get("/v1/tokens", params={"user_id": alice_id}, headers=own)
    assert [t["id"] for t in mine.json()["data"]] == [kept["id"]]
    assert_json_error(api.client.get("/v1/tokens", params={"user_id": admin_id}, headers=own), 403)
    missing = api.client.get("/v1/tokens", params={"user_id": 999_999}, headers=api.admin)
    assert_json_error(missing, 404)


def audit_events(api: Api) -> list[dict[str, Any]]:
    page = api.client.get("/v1/audit", params={"limit": 500}, headers=api.admin).json()
    events: list[dict[str, Any]] = page["data"]
    return events


def test_a_user_is_created_with_share_and_quota_as_patch_takes_them(api: Api) -> None:
    """POST /v1/users takes `share` and `quota` in PATCH's shapes (the older
    `share_weight` / `max_running_jobs` still work, one name of each pair)."""
    r = api.client.post(
        "/v1/users",
        json={"name": "carol", "share": 2.5, "quota": {"max_queued_jobs": 3, "max_cpus": 4}},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    carol = api.client.get("/v1/users/me", headers=bearer(r.json()["token"])).json()
    # Read back under the name it was given (DESIGN §11's `share`) and the older one.
    assert carol["share"] == carol["share_weight"] == 2.5
    assert (carol["quota"]["max_queued_jobs"], carol["quota"]["max_cpus"]) == (3, 4)
    created = [e for e in audit_events(api) if e["action"] == "user.created"][-1]
    assert created["detail"] == {
        "name": "carol",
        "role": "user",
        "token_id": created["detail"]["token_id"],
        "max_queued_jobs": 3,
        "max_cpus": 4,
        "share": 2.5,
    }
    # The quota at work: a fourth queued job is over it.
    headers = bearer(r.json()["token"])
    for _ in range(3):
        assert api.client.post("/v1/jobs", json=SMALL_SPEC, headers=headers).status_code == 201
    assert_json_error(api.client.post("/v1/jobs", json=SMALL_SPEC, headers=headers), 429)

    old_names = {"name": "dave", "share_weight": 0.5, "max_running_jobs": 1}
    r = api.client.post("/v1/users", json=old_names, headers=api.admin)
    assert r.status_code == 201, r.text
    dave = api.client.get("/v1/users/me", headers=bearer(r.json()["token"])).json()
    assert (dave["share_weight"], dave["quota"]["max_running_jobs"]) == (0.5, 1)

    for twice in (
        {"name": "erin", "share": 2.0, "share_weight": 2.0},
        {"name": "erin", "quota": {"max_cpus": 1}, "max_running_jobs": 1},
    ):
        r = api.client.post("/v1/users", json=twice, headers=api.admin)
        assert_json_error(r, 422)
        assert "once" in r.text, r.text
    r = api.client.post(
        "/v1/users", json={"name": "erin", "quota": {"max_cpu": 1}}, headers=api.admin
    )
    assert_json_error(r, 422)
    assert "max_cpu" in r.text


def test_an_admin_issues_a_token_for_a_user_whose_only_token_was_revoked(api: Api) -> None:
    """The leaked-token steps when the leaked token was the user's only one: without
    an admin's token for them, the user could never sign in again."""
    alice_id, leaked = api.create_user("alice")
    _bob_id, bob = api.create_user("bob")
    (only,) = api.client.get("/v1/tokens", headers=leaked).json()["data"]
    assert api.client.delete(f"/v1/tokens/{only['id']}", headers=api.admin).status_code == 204
    assert_json_error(api.client.get("/v1/users/me", headers=leaked), 401)

    # Nobody but an admin issues a token for someone else; nobody for nobody.
    assert_json_error(api.client.post("/v1/tokens", json={"user_id": alice_id}, headers=bob), 403)
    assert_json_error(
        api.client.post("/v1/tokens", json={"user_id": 10**12}, headers=api.admin), 404
    )
    r = api.client.post(
        "/v1/tokens", json={"user_id": alice_id, "expires_in_days": 7}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    issued = r.json()
    me = api.client.get("/v1/users/me", headers=bearer(issued["token"]))
    assert (me.status_code, me.json()["id"]) == (200, alice_id)
    listed = api.client.get("/v1/tokens", headers=bearer(issued["token"])).json()["data"]
    assert [t["id"] for t in listed] == [issued["id"]]
    admin_name = api.client.get("/v1/users/me", headers=api.admin).json()["name"]
    created = [e for e in audit_events(api) if e["action"] == "token.created"][-1]
    assert created["target"] == f"token:{issued['id']}"
    assert created["actor"] == f"admin:{admin_name}"
    assert created["detail"] == {"user_id": alice_id, "expires_in_days": 7}
    # An admin's own token, as before.
    mine = api.client.post("/v1/tokens", headers=api.admin)
    assert mine.status_code == 201, mine.text


def test_an_admin_keeps_their_own_last_token_until_they_hold_another(api: Api) -> None:
    _, admin = api.create_user("second-admin", role="admin")
    [first] = api.client.get("/v1/tokens", headers=admin).json()["data"]
    detail = assert_json_error(api.client.delete(f"/v1/tokens/{first['id']}", headers=admin), 409)
    assert f"token {first['id']} is your last active token" in detail
    assert api.client.get("/v1/users/me", headers=admin).status_code == 200  # still signs in

    # Rotated: a new token first, then the old one goes; now the new one is the last.
    second = api.client.post("/v1/tokens", headers=admin).json()
    assert api.client.delete(f"/v1/tokens/{first['id']}", headers=admin).status_code == 204
    rotated = bearer(second["token"])
    assert_json_error(api.client.delete(f"/v1/tokens/{second['id']}", headers=rotated), 409)
    # Another admin may revoke it (this one can issue a token back), and a user may
    # revoke their own last one (an admin can issue them another).
    assert api.client.delete(f"/v1/tokens/{second['id']}", headers=api.admin).status_code == 204
    assert api.client.get("/v1/users/me", headers=rotated).status_code == 401
    _, user = api.create_user("plain-user")
    [only] = api.client.get("/v1/tokens", headers=user).json()["data"]
    assert api.client.delete(f"/v1/tokens/{only['id']}", headers=user).status_code == 204
    assert ("admin:second-admin", "token.revoked", f"token:{first['id']}") in audit_actions(api)


def test_a_token_cannot_issue_one_that_outlives_it(api: Api) -> None:
    """A leaked 1-day token minted one that never expires (a review): a token's
    expiry bounds the tokens it issues, a 422 at `expires_in_days` saying how long."""
    _uid, alice = api.create_user("alice")  # her first token never expires
    r = api.client.post("/v1/tokens", json={"expires_in_days": 3}, headers=alice)
    assert r.status_code == 201, r.text
    short = bearer(r.json()["token"])
    for days in (None, 3):
        r = api.client.post("/v1/tokens", json={"expires_in_days": days}, headers=short)
        [error] = assert_json_error(r, 422)
        assert error["loc"] == ["body", "expires_in_days"], error
        assert "may not issue one that outlives it: ask for at most 2 days" in error["msg"]
    assert api.client.post("/v1/tokens", json={"expires_in_days": 2}, headers=short).is_success
    r = api.client.post("/v1/tokens", json={"expires_in_days": 1}, headers=short)
    day = bearer(r.json()["token"])
    r = api.client.post("/v1/tokens", json={"expires_in_days": 1}, headers=day)
    assert "it expires within a day, so it can issue none" in assert_json_error(r, 422)[0]["msg"]
    assert api.client.post("/v1/tokens", json={}, headers=alice).status_code == 201
    # Nor create a user, whose first token never expires: an admin's expiring token
    # would mint a lasting admin.
    r = api.client.post("/v1/tokens", json={"expires_in_days": 3}, headers=api.admin)
    short_admin = bearer(r.json()["token"])
    r = api.client.post("/v1/users", json={"name": "mallory", "role": "admin"}, headers=short_admin)
    assert "a token that expires cannot create users" in assert_json_error(r, 403)
    assert api.client.post("/v1/users", json={"name": "bob"}, headers=api.admin).is_success
