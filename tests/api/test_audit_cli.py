"""`lagtrain audit` against a real server: the newest events an admin asks for, one
line each, and one-line errors for an unknown user, a bad filter and a non-admin."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from service.app import create_app
from service.cli import app
from tests.api.conftest import ADMIN_TOKEN, Api, serving


def lines(result: Result) -> list[list[str]]:
    """The table's rows as cells (header and borders left out)."""
    cells = ([c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines())
    return [row for row in cells if row and row[0][:2] == "20"]


def test_audit_shows_the_newest_matching_events_one_line_each(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    _bob_id, bob = api.create_user("bob")
    _first, second, third = (api.submit(alice) for _ in range(3))
    api.submit(bob)
    api.client.post(f"/v1/jobs/{second}/cancel", headers=api.admin)
    api.client.post(f"/v1/jobs/{third}/cancel", headers=alice)
    alice_token = alice["Authorization"].removeprefix("Bearer ")
    runner = CliRunner()
    with serving(create_app(api.settings)) as url:
        admin_env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN, "COLUMNS": "200"}
        alices = runner.invoke(
            app, ["audit", "--user", "alice", "--action", "job.", "--limit", "2"], env=admin_env
        )
        cancelled = runner.invoke(app, ["audit", "--target", f"job:{second}"], env=admin_env)
        nobody = runner.invoke(app, ["audit", "--user", "carol"], env=admin_env)
        bad = runner.invoke(app, ["audit", "--action", "job-cancelled"], env=admin_env)
        as_alice = {**admin_env, "LAGTRAIN_TOKEN": alice_token}
        refused = runner.invoke(app, ["audit"], env=as_alice)
        refused_by_name = runner.invoke(app, ["audit", "--user", "alice"], env=as_alice)
    for result in (alices, cancelled):
        assert result.exit_code == 0, (result.output, result.exception)

    # Alice's 2 newest job events (not bob's, not the admin's cancel of her job),
    # printed oldest first: a log reads down to the latest.
    assert [row[1:4] for row in lines(alices)] == [
        ["user:alice", "job.submitted", f"job:{third}"],
        ["user:alice", "job.cancelled", f"job:{third}"],
    ]
    assert alices.stderr.strip() == "the 2 newest shown; --limit 0 lists all"
    (submitted, cancel) = lines(cancelled)
    assert submitted[1:4] == ["user:alice", "job.submitted", f"job:{second}"]
    assert cancel[1:5] == [
        "admin:admin",
        "job.cancelled",
        f"job:{second}",
        f"owner_id={alice_id} was=queued",
    ]
    assert cancelled.stderr == ""

    assert nobody.exit_code == 1 and nobody.stdout == ""
    assert nobody.stderr.strip() == (
        "error: no user named 'carol' (lagtrain audit --user takes a user's name)"
    )
    assert bad.exit_code == 1
    assert bad.stderr.strip() == (
        "error 422: action: lower-case letters, dots and underscores only: an action such as "
        "job.cancelled, or a prefix ending in '.' such as job."
    )
    for result in (refused, refused_by_name):
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.strip() == "error 403: admin role required"
