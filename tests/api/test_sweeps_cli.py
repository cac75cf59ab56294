"""`lagtrain sweeps` against a real server: a user who did not keep a sweep's id (or
submitted it without --watch) finds it from the command line, newest first, like
`lagtrain jobs`."""

from __future__ import annotations

from typer.testing import CliRunner

from service.app import create_app
from service.cli import app
from tests.api.conftest import SMALL_SWEEP, Api, serving


def test_sweeps_lists_the_users_sweeps_newest_first(api: Api) -> None:
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    ids = [
        api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"] for _ in "abc"
    ]
    bobs = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=bob).json()["id"]
    api.client.post(f"/v1/sweeps/{ids[0]}/cancel", headers=alice)
    token = alice["Authorization"].removeprefix("Bearer ")
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token, "COLUMNS": "200"}
        runner = CliRunner()
        cut = runner.invoke(app, ["sweeps", "--limit", "2"], env=env)
        whole = runner.invoke(app, ["sweeps", "--limit", "0"], env=env)
        cancelled = runner.invoke(app, ["sweeps", "--status", "cancelled"], env=env)
    for result in (cut, whole, cancelled):
        assert result.exit_code == 0, (result.output, result.exception)

    def rows(text: str) -> list[list[str]]:
        cells = ([c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines())
        return [row for row in cells if row and row[0].isdigit()]

    assert [int(r[0]) for r in rows(cut.stdout)] == ids[:0:-1]
    assert cut.stderr.strip() == "the 2 newest shown; --limit 0 lists all"
    listed = rows(whole.stdout)
    assert [int(r[0]) for r in listed] == ids[::-1], "bob's sweep is not alice's"
    assert str(bobs) not in {r[0] for r in listed} and whole.stderr == ""
    assert listed[0][1:5] == ["small-sweep", "alice", "queued", f"0/{SMALL_SWEEP['trials']}"]
    assert [(int(r[0]), r[3]) for r in rows(cancelled.stdout)] == [(ids[0], "cancelled")]
