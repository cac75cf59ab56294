"""Accounts from the command line against a real server: an admin adds a user with a
share and quotas, disables and enables them, changes a quota and returns it to the
default; a user lists, issues and revokes tokens; an admin issues one for a user
who has none left. Errors are one line naming what was wrong."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from typer.testing import CliRunner, Result

from service.app import create_app
from service.cli import app
from service.cli_common import binary_size
from tests.api.conftest import ADMIN_TOKEN, Api, bearer, serving

runner = CliRunner()


def rows(result: Result) -> list[list[str]]:
    """A table's body rows as cells (header and borders left out)."""
    cells = ([c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines())
    return [row for row in cells if row and row[0].isdigit()]


@contextmanager
def cli(api: Api) -> Iterator[tuple[str, dict[str, str]]]:
    with serving(create_app(api.settings)) as url:
        yield url, {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN, "COLUMNS": "200"}


def test_an_admin_adds_and_manages_a_user(api: Api) -> None:
    with cli(api) as (_url, admin):
        added = runner.invoke(
            app,
            [
                "user-add",
                "dana",
                "--share",
                "2",
                "--quota",
                "max_running_jobs=1",
                "--quota",
                "max_cpus=2.5",
            ],
            env=admin,
        )
        assert added.exit_code == 0, added.output
        token = added.stdout.strip()  # the secret alone: TOKEN=$(lagtrain user-add …)
        assert "created user 'dana'" in added.stderr and "shown only once" in added.stderr
        me = api.client.get("/v1/users/me", headers=bearer(token)).json()
        assert (me["share_weight"], me["quota"]["max_running_jobs"]) == (2.0, 1)
        assert me["quota"]["max_cpus"] == 2.5
        default_queued = me["quota"]["max_queued_jobs"]

        disabled = runner.invoke(app, ["user-set", "dana", "--disable"], env=admin)
        assert disabled.exit_code == 0, disabled.output
        [row] = rows(disabled)
        assert row[1:5] == ["dana", "user", "disabled", "2"]
        assert api.client.get("/v1/users/me", headers=bearer(token)).status_code == 401

        changed = runner.invoke(
            app,
            [
                "user-set",
                "dana",
                "--enable",
                "--quota",
                "max_running_jobs=default",
                "--quota",
                "max_queued_jobs=7",
            ],
            env=admin,
        )
        assert changed.exit_code == 0, changed.output
        [row] = rows(changed)
        assert row[3] == "active" and row[6] == "0/7"
        # Storage as people read it, not "0/21,474,836,480".
        limit = api.settings.default_max_storage_bytes
        assert row[8] == f"0 B/{binary_size(limit)}" and binary_size(20 << 30) == "20 GiB"
        me = api.client.get("/v1/users/me", headers=bearer(token)).json()
        assert me["quota"]["max_running_jobs"] == api.settings.default_max_running_jobs
        assert me["quota"]["max_queued_jobs"] == 7 != default_queued

        listed = runner.invoke(app, ["users"], env=admin)
        assert [r[1] for r in rows(listed)] == ["admin", "dana"]

        # One line naming what was wrong, for each kind of mistake.
        typo = runner.invoke(app, ["user-set", "dana", "--quota", "max_runing_jobs=2"], env=admin)
        assert typo.exit_code == 1 and "quota.max_runing_jobs" in typo.stderr
        assert len(typo.stderr.strip().splitlines()) == 1
        word = runner.invoke(app, ["user-set", "dana", "--quota", "max_cpus=lots"], env=admin)
        assert word.exit_code == 2 and "'lots' is no number" in word.stderr
        nothing = runner.invoke(app, ["user-set", "dana"], env=admin)
        assert nothing.exit_code == 2 and "nothing to change" in nothing.stderr
        shouted = runner.invoke(app, ["user-set", "DANA", "--share", "3"], env=admin)
        assert shouted.exit_code == 0 and rows(shouted)[0][1:5] == ["dana", "user", "active", "3"]
        nobody = runner.invoke(app, ["user-set", "erin", "--disable"], env=admin)
        assert nobody.exit_code == 1 and "no user named 'erin'" in nobody.stderr
        taken = runner.invoke(app, ["user-add", "dana"], env=admin)
        assert taken.exit_code == 1 and taken.stdout == "" and "dana" in taken.stderr
        as_dana = {**admin, "LAGTRAIN_TOKEN": token}
        refused = runner.invoke(app, ["users"], env=as_dana)
        assert refused.exit_code == 1 and refused.stderr.startswith("error 403")


def test_a_user_rotates_their_token_and_an_admin_issues_one_back(api: Api) -> None:
    _uid, headers = api.create_user("frank")
    first = headers["Authorization"].removeprefix("Bearer ")
    with cli(api) as (_url, admin):
        as_frank = {**admin, "LAGTRAIN_TOKEN": first}
        new = runner.invoke(app, ["token-new", "--expires-in-days", "3"], env=as_frank)
        assert new.exit_code == 0, new.output
        second = new.stdout.strip()
        assert api.client.get("/v1/users/me", headers=bearer(second)).json()["name"] == "frank"

        listed = rows(runner.invoke(app, ["tokens"], env=as_frank))
        assert len(listed) == 2
        old_id, new_id = (row[0] for row in listed)
        assert listed[0][2] == "never" and listed[1][2] != "never"  # expires

        revoked = runner.invoke(
            app, ["token-revoke", old_id], env={**admin, "LAGTRAIN_TOKEN": second}
        )
        assert revoked.exit_code == 0 and f"token {old_id} revoked" in revoked.stdout
        assert api.client.get("/v1/users/me", headers=bearer(first)).status_code == 401
        # An admin sees the one left, revokes it, and issues frank a way back in.
        assert [
            r[0] for r in rows(runner.invoke(app, ["tokens", "--user", "frank"], env=admin))
        ] == [new_id]
        assert runner.invoke(app, ["token-revoke", new_id], env=admin).exit_code == 0
        back = runner.invoke(app, ["token-new", "--user", "frank"], env=admin)
        assert back.exit_code == 0 and "for user 'frank'" in back.stderr
        me = api.client.get("/v1/users/me", headers=bearer(back.stdout.strip())).json()
        assert me["name"] == "frank"

        # A user cannot list another's tokens, and a missing token is named.
        other = runner.invoke(app, ["tokens", "--user", "admin"], env=as_frank)
        assert other.exit_code == 1 and other.stderr.startswith("error 40")
        gone = runner.invoke(app, ["token-revoke", "999999"], env=admin)
        assert gone.exit_code == 1 and "token 999999 not found" in gone.stderr
