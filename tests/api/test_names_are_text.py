"""Names are other people's text: a job, sweep or upload name that looks like rich's
markup ("[/bold]") is listed as written by every command (it ended `lagtrain jobs`
with a MarkupError traceback, for the admin too), an upload's file name loses the
control characters a terminal would obey, and a control character stored before
names were checked is shown as an escape, not obeyed."""

from __future__ import annotations

import io

from rich.table import Table
from typer.testing import CliRunner, Result

from service.app import create_app
from service.cli import app
from service.cli_common import TextConsole
from tests.api.conftest import ADMIN_TOKEN, SMALL_SPEC, SMALL_SWEEP, Api, serving
from tests.api.test_storage_release import TEXT


def test_every_listing_shows_markup_like_names_as_written(api: Api) -> None:
    _uid, bob = api.create_user("bob")
    job_id = api.submit(bob, SMALL_SPEC | {"name": "oops[/bold]"})
    sweep = api.client.post("/v1/sweeps", json=SMALL_SWEEP | {"name": "sw[/b]"}, headers=bob)
    assert sweep.status_code == 201, sweep.text
    upload = api.client.post(
        "/v1/datasets", files={"file": ("x[/i]\x1b[2J\x9b\u202e.txt", TEXT)}, headers=bob
    )
    assert upload.status_code == 201, upload.text
    # ESC, CSI and the right-to-left override dropped, the rest kept.
    assert upload.json()["filename"] == "x[/i][2J.txt"
    # Cancelled, so that sweep-watch prints its table and returns (exit 1: not succeeded).
    cancel = api.client.post(f"/v1/sweeps/{sweep.json()['id']}/cancel", headers=bob)
    assert cancel.status_code == 202, cancel.text

    env = {"LAGTRAIN_URL": "", "LAGTRAIN_TOKEN": ADMIN_TOKEN, "COLUMNS": "200"}
    with serving(create_app(api.settings)) as url:

        def lagtrain(*args: str) -> Result:
            return CliRunner().invoke(app, list(args), env=env | {"LAGTRAIN_URL": url})

        shown = {
            "jobs": lagtrain("jobs"),
            "sweeps": lagtrain("sweeps"),
            "sweep-watch": lagtrain("sweep-watch", str(sweep.json()["id"])),
            "datasets": lagtrain("datasets"),
            "audit": lagtrain("audit", "--limit", "0"),
            "show": lagtrain("show", str(job_id)),
        }
    for command, result in shown.items():
        expected = 1 if command == "sweep-watch" else 0
        assert result.exit_code == expected, (command, result.output, result.exception)
    assert "oops[/bold]" in shown["jobs"].stdout
    assert "sw[/b]" in shown["sweeps"].stdout and "sw[/b]" in shown["sweep-watch"].stdout
    assert "x[/i][2J.txt" in shown["datasets"].stdout
    assert "name=oops[/bold]" in shown["audit"].stdout
    assert "oops[/bold]" in shown["show"].stdout


def test_a_stored_control_character_is_shown_not_obeyed() -> None:
    # A row stored before names were checked: the CLI's console makes it visible.
    out = io.StringIO()
    console = TextConsole(file=out, markup=False, width=200)
    table = Table("name")
    table.add_row("\x1b]0;pwned\x07\x1b[2Jfake")
    console.print(table)
    console.print("tab\tand\nnewline \x9b")
    console.print("evil\u202etxt.exe")
    printed = out.getvalue()
    assert "\x1b" not in printed and "\x07" not in printed and "\x9b" not in printed
    assert "\\x1b]0;pwned\\x07\\x1b[2Jfake" in printed
    assert "newline \\x9b" in printed and "and\n" in printed
    assert "evil\\u202etxt.exe" in printed and "\u202e" not in printed


def test_a_blank_name_is_no_name_and_a_long_one_is_counted_in_characters(api: Api) -> None:
    """ "" or "   " named nothing and showed as "Sweep 2: "; a 630-character name was
    refused as "at most 200 items"."""
    _uid, bob = api.create_user("bob")
    for path, body in (("/v1/jobs", SMALL_SPEC), ("/v1/sweeps", SMALL_SWEEP)):
        for blank in ("", "   "):
            r = api.client.post(path, json=body | {"name": blank}, headers=bob)
            assert r.status_code == 201 and r.json()["name"] is None, r.text
        r = api.client.post(path, json=body | {"name": "n" * 630}, headers=bob)
        [error] = r.json()["detail"]
        assert r.status_code == 422 and error["loc"] == ["body", "name"], r.text
        assert error["msg"] == "String should have at most 200 characters"
