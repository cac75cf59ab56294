"""The audit log's filters (actor_id, action exact or by prefix, target) and its
newest-first order, as an admin of a busy lab reads it: "who cancelled job 42",
"everything alice did", the newest token events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String

from service.schemas.audit import AuditAction
from service.store.models import AuditEvent, table_of
from tests.api.conftest import SMALL_SWEEP, Api, assert_json_error
from workers.sweeps.controller import SweepController

Row = tuple[str, str, str]


def audit(api: Api, **params: Any) -> list[dict[str, Any]]:
    """Every event the query matches, following next_after_id page by page."""
    params.setdefault("limit", 500)
    events: list[dict[str, Any]] = []
    while True:
        page = api.client.get("/v1/audit", params=params, headers=api.admin)
        assert page.status_code == 200, page.text
        events += page.json()["data"]
        if page.json()["next_after_id"] is None:
            return events
        params["after_id"] = page.json()["next_after_id"]


def rows(events: list[dict[str, Any]]) -> list[Row]:
    return [(e["actor"], e["action"], e["target"]) for e in events]


def test_each_filter_alone_and_combined(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    bob_id, bob = api.create_user("bob")
    token = api.client.post("/v1/tokens", headers=alice).json()["id"]
    alices_job = api.submit(alice)
    bobs_job = api.submit(bob)
    api.client.post(f"/v1/jobs/{alices_job}/cancel", headers=api.admin)
    api.client.post(f"/v1/jobs/{bobs_job}/cancel", headers=bob)
    sweep_id = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    SweepController(api.settings, api.sessions).poll()  # submits trials as alice's sweep
    admin_id = api.client.get("/v1/users/me", headers=api.admin).json()["id"]
    trial_ids = [
        t["job_id"]
        for t in api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()["trials"]
        if t.get("job_id") is not None
    ]
    assert trial_ids, "the controller submitted no trial"
    trials = [(f"sweep:{sweep_id} for user:alice", "job.submitted", f"job:{j}") for j in trial_ids]

    assert rows(audit(api, actor_id=alice_id)) == [
        ("user:alice", "token.created", f"token:{token}"),
        ("user:alice", "job.submitted", f"job:{alices_job}"),
        ("user:alice", "sweep.submitted", f"sweep:{sweep_id}"),
        *trials,  # a sweep's trials carry their owner's id
    ]
    assert rows(audit(api, action="job.cancelled")) == [
        ("admin:admin", "job.cancelled", f"job:{alices_job}"),
        ("user:bob", "job.cancelled", f"job:{bobs_job}"),
    ]
    assert rows(audit(api, target=f"job:{alices_job}")) == [
        ("user:alice", "job.submitted", f"job:{alices_job}"),
        ("admin:admin", "job.cancelled", f"job:{alices_job}"),
    ]
    # A prefix ending in "." is every action under it; the subject alone is the same.
    assert (
        rows(audit(api, action="job."))
        == rows(audit(api, action="job"))
        == [
            ("user:alice", "job.submitted", f"job:{alices_job}"),
            ("user:bob", "job.submitted", f"job:{bobs_job}"),
            ("admin:admin", "job.cancelled", f"job:{alices_job}"),
            ("user:bob", "job.cancelled", f"job:{bobs_job}"),
            *trials,
        ]
    )
    assert audit(api, action="job.cancel") == []  # with a dot, exact: no such action
    # "_" is no wildcard: u_er. is not user.
    assert audit(api, action="u_er.") == []
    assert [e["action"] for e in audit(api, action="user.")] == ["user.created"] * 3
    # Combined: AND.
    assert rows(audit(api, actor_id=bob_id, action="job.")) == [
        ("user:bob", "job.submitted", f"job:{bobs_job}"),
        ("user:bob", "job.cancelled", f"job:{bobs_job}"),
    ]
    assert rows(audit(api, actor_id=admin_id, action="job.", target=f"job:{alices_job}")) == [
        ("admin:admin", "job.cancelled", f"job:{alices_job}"),
    ]
    assert audit(api, actor_id=bob_id, target=f"job:{alices_job}") == []
    # Filtered or not, the log is an admin's.
    query = {"actor_id": alice_id, "order": "newest"}
    assert_json_error(api.client.get("/v1/audit", params=query, headers=alice), 403)


@pytest.mark.parametrize("matching", [7, 6], ids=["last-page-short", "last-page-full"])
def test_newest_first_pages_through_a_filter_without_repeating_or_losing_a_row(
    api: Api, matching: int
) -> None:
    alice_id, alice = api.create_user("alice")
    _bob_id, bob = api.create_user("bob")
    alices = []
    for _ in range(matching):  # interleaved with bob's, which the filter leaves out
        alices.append(api.submit(alice))
        api.submit(bob)
    api.client.post("/v1/tokens", headers=alice)  # alice's, not a job's

    pages = []
    params: dict[str, Any] = {
        "order": "newest",
        "actor_id": alice_id,
        "action": "job.submitted",
        "limit": 3,
    }
    while True:
        page = api.client.get("/v1/audit", params=params, headers=api.admin).json()
        pages.append([e["target"] for e in page["data"]])
        if page["next_after_id"] is None:
            break
        assert page["next_after_id"] == page["data"][-1]["id"]  # any full page names it
        params["after_id"] = page["next_after_id"]
    expected = [f"job:{j}" for j in reversed(alices)]
    assert [target for page in pages for target in page] == expected
    assert [len(page) for page in pages] == ([3, 3, 1] if matching == 7 else [3, 3, 0])
    # The default order is still oldest first, the same rows.
    oldest = audit(api, actor_id=alice_id, action="job.submitted", limit=3)
    assert [e["target"] for e in oldest] == expected[::-1]


def test_newest_token_events(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    first = api.client.post("/v1/tokens", headers=alice).json()["id"]
    second = api.client.post("/v1/tokens", headers=alice).json()["id"]
    api.client.delete(f"/v1/tokens/{first}", headers=alice)
    page = api.client.get(
        "/v1/audit", params={"order": "newest", "action": "token.", "limit": 2}, headers=api.admin
    ).json()
    assert rows(page["data"]) == [
        ("user:alice", "token.revoked", f"token:{first}"),
        ("user:alice", "token.created", f"token:{second}"),
    ]


def test_each_action_the_server_writes_is_a_filter_and_fits_the_column(api: Api) -> None:
    """record() takes only an AuditAction (mypy holds every caller to it): each member,
    and its prefix, must be something ?action= finds, and fit the column."""
    column = table_of(AuditEvent).c.action.type
    assert isinstance(column, String) and column.length
    for action in AuditAction:
        assert len(action) <= column.length, action
        for value in (action.value, action.partition(".")[0] + "."):
            answer = api.client.get(
                "/v1/audit", params={"action": value, "limit": 1}, headers=api.admin
            )
            assert answer.status_code == 200, answer.text
    # The row holds the plain text: the first start's admin, found by equality.
    [made] = audit(api, action="user.created")
    assert made["action"] == "user.created" and made["actor"] == "server"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"action": "job-cancelled"}, "action", "letters, dots and underscores only"),
        ({"action": "job.*"}, "action", "letters, dots and underscores only"),
        # Matched on SQLite (LIKE ignores case) and not on PostgreSQL: refused on both.
        ({"action": "JOB."}, "action", "lower-case letters, dots and underscores only"),
        ({"action": "x" * 41}, "action", "at most 40 characters"),
        ({"order": "sideways"}, "order", "'oldest' or 'newest'"),
        ({"target": "job:\x00"}, "target", "NUL"),
        ({"actor_id": 0}, "actor_id", "greater than or equal to 1"),
    ],
)
def test_a_bad_filter_is_a_422_naming_the_field(
    api: Api, params: dict[str, Any], field: str, message: str
) -> None:
    detail = assert_json_error(api.client.get("/v1/audit", params=params, headers=api.admin), 422)
    assert [e["loc"] for e in detail] == [["query", field]], detail
    assert message in detail[0]["msg"], detail


def test_the_operators_guide_describes_every_action() -> None:
    """docs/operations.md "The audit log" is where an admin learns what each action's
    detail holds: a new action must be described there too."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = guide.split("## The audit log", 1)[1].split("\n## ", 1)[0]
    missing = [a.value for a in AuditAction if f"`{a.value}`" not in section]
    assert not missing, missing
