"""`?action=` with an action's subject alone (`user`, no dot): every action is
`subject.verb`, so the bare word matched nothing and `lagtrain audit --action user`
printed an empty table without a word (a walkthrough). A known subject now stands
for its prefix (`user.`); a word without a dot that is no subject is a 422 naming
the `action` field and the actions there are."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app
from service.schemas.audit import AuditAction
from tests.api.conftest import ADMIN_TOKEN, Api, assert_json_error, serving


def actions(api: Api, action: str) -> list[str]:
    page = api.client.get("/v1/audit", params={"action": action}, headers=api.admin)
    assert page.status_code == 200, page.text
    return [event["action"] for event in page.json()["data"]]


def test_a_subject_alone_is_its_prefix(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    api.client.post("/v1/tokens", headers=alice)
    job = api.submit(alice)
    api.client.post(f"/v1/jobs/{job}/cancel", headers=alice)
    assert actions(api, "user") == actions(api, "user.") == ["user.created"] * 2
    assert actions(api, "job") == ["job.submitted", "job.cancelled"]
    assert actions(api, "token") == ["token.created"]
    # Each subject the server writes is one: none is refused.
    for subject in {action.partition(".")[0] for action in AuditAction}:
        actions(api, subject)


@pytest.mark.parametrize(("word", "guess"), [("usr", " (did you mean 'user'?)"), ("zzz", "")])
def test_a_word_that_is_no_subject_is_a_422_listing_the_actions(
    api: Api, word: str, guess: str
) -> None:
    answer = api.client.get("/v1/audit", params={"action": word}, headers=api.admin)
    [error] = assert_json_error(answer, 422)
    assert error["loc"] == ["query", "action"]
    known = ", ".join(sorted(action.value for action in AuditAction))
    assert error["msg"] == (
        f"'{word}' is no action nor the subject of one{guess}; the actions: {known}; a "
        "subject alone (job) or a prefix ending in '.' (job.) selects every action under it"
    )


def test_lagtrain_audit_takes_a_subject_and_says_what_a_wrong_word_is(api: Api) -> None:
    api.create_user("alice")
    runner = CliRunner()
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN, "COLUMNS": "200"}
        users = runner.invoke(app, ["audit", "--action", "user"], env=env)
        typo = runner.invoke(app, ["audit", "--action", "usr"], env=env)
    assert users.exit_code == 0, (users.output, users.exception)
    assert users.stdout.count("user.created") == 2  # the first admin's and alice's
    assert typo.exit_code == 1 and typo.stdout == ""
    assert typo.stderr.startswith(
        "error 422: action: 'usr' is no action nor the subject of one (did you mean 'user'?); "
        "the actions: artifacts.orphans_removed, checkpoints.deleted, "
    )
    assert len(typo.stderr.strip().splitlines()) == 1
