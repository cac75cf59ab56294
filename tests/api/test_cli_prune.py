"""`lagtrain delete-job`, `delete-sweep` and `prune` against a real server: prune
finds the finished sweeps and jobs of no sweep older than its cutoff (the caller's
own, or an admin's choice of one user or everyone), deletes nothing without --yes,
names what the server keeps and why, and says what it did even when cut short."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from typer.testing import CliRunner, Result

from service.app import create_app
from service.cli import app
from service.store.db import transaction
from service.store.models import Job, Sweep
from tests.api.conftest import ADMIN_TOKEN, SMALL_SWEEP, Api, bearer, serving
from workers.sweeps.controller import SweepController

Lagtrain = Callable[..., Result]


def _finished_days_ago(api: Api, table: type[Job] | type[Sweep], row_id: int, days: float) -> None:
    at = datetime.now(UTC) - timedelta(days=days)
    with transaction(api.sessions) as session:
        session.execute(update(table).where(table.id == row_id).values(finished_at=at))


def _cancelled(api: Api, headers: dict[str, str], days_ago: float) -> int:
    job_id = api.submit(headers)
    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202
    _finished_days_ago(api, Job, job_id, days_ago)
    return job_id


def _ids(api: Api, headers: dict[str, str], what: str = "jobs") -> set[int]:
    return {row["id"] for row in api.client.get(f"/v1/{what}", headers=headers).json()["data"]}


def _cli(url: str) -> Lagtrain:
    def lagtrain(headers: dict[str, str], *args: str) -> Result:
        token = headers["Authorization"].removeprefix("Bearer ")
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token, "COLUMNS": "200"}
        return CliRunner().invoke(app, list(args), env=env)

    return lagtrain


def test_prune_deletes_old_finished_sweeps_and_jobs_only_with_yes(api: Api) -> None:
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    old, recent = _cancelled(api, alice, 10), _cancelled(api, alice, 1)
    unfinished = api.submit(alice)
    bobs_old = _cancelled(api, bob, 10)
    # An old finished sweep (cancelled before its first trial) goes; a running one,
    # and its trial job that finished long ago, stay.
    gone_sweep = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    api.client.post(f"/v1/sweeps/{gone_sweep}/cancel", headers=alice)
    _finished_days_ago(api, Sweep, gone_sweep, 30)
    running = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    SweepController(api.settings, api.sessions).poll()
    trial = api.client.get(f"/v1/sweeps/{running}", headers=alice).json()["trials"][0]["job_id"]
    api.client.post(f"/v1/jobs/{trial}/cancel", headers=alice)
    _finished_days_ago(api, Job, trial, 30)

    with serving(create_app(api.settings)) as url:
        lagtrain = _cli(url)
        listed = lagtrain(alice, "prune", "--older-than", "5")
        assert listed.exit_code == 0, listed.output
        lines = listed.stdout.splitlines()
        assert lines[0].startswith("finished before "), lines
        assert lines[0].endswith(
            " UTC (yours): 1 sweep (cancelled 1), 1 job (cancelled 1) of no sweep"
        ), lines
        assert lines[1:] == ["nothing deleted: --yes deletes them"], lines
        assert old in _ids(api, alice) and gone_sweep in _ids(api, alice, "sweeps")

        pruned = lagtrain(alice, "prune", "--older-than", "5", "--yes")
        assert pruned.exit_code == 0, pruned.output
        assert pruned.stdout.splitlines()[1:] == ["deleted 1 sweep, 1 job"], pruned.stdout
        assert _ids(api, alice, "sweeps") == {running}
        assert old not in _ids(api, alice)
        assert {recent, unfinished, trial} <= _ids(api, alice)
        assert bobs_old in _ids(api, bob)  # another user's job is not alice's to prune

        refused = lagtrain(alice, "prune", "--older-than", "5", "--everyone")
        assert refused.exit_code == 2 and "for admins" in refused.stderr, refused.output
        admin = bearer(ADMIN_TOKEN)
        both = lagtrain(admin, "prune", "--older-than", "5", "--owner", "bob", "--everyone")
        assert both.exit_code == 2 and "not both" in both.stderr, both.output
        typo = lagtrain(admin, "prune", "--older-than", "5", "--owner", "bbo", "--yes")
        assert typo.exit_code == 1 and "no user named 'bbo'" in typo.stderr, typo.output
        too_far = lagtrain(admin, "prune", "--older-than", "1e9")
        assert too_far.exit_code == 2 and "--older-than" in too_far.stderr, too_far.output
        # alice's recent job and bob's old one (the trial goes with its sweep).
        everyone = lagtrain(admin, "prune", "--older-than", "0", "--everyone")
        assert "(every user's): 0 sweeps, 2 jobs (cancelled 2)" in everyone.stdout, everyone.stdout
        bobs = lagtrain(admin, "prune", "--older-than", "5", "--owner", "bob", "--yes")
        assert bobs.stdout.splitlines()[1:] == ["deleted 1 job"], bobs.stdout
        assert bobs_old not in _ids(api, bob)
        nothing = lagtrain(admin, "prune", "--older-than", "5", "--yes")  # the admin's own
        assert nothing.stdout.splitlines()[1:] == ["deleted nothing"], nothing.stdout


def test_delete_job_and_sweep_delete_each_and_name_what_they_keep(api: Api) -> None:
    _a, alice = api.create_user("alice")
    done, queued, other = _cancelled(api, alice, 0), api.submit(alice), _cancelled(api, alice, 0)
    sweep = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    with serving(create_app(api.settings)) as url:
        lagtrain = _cli(url)
        result = lagtrain(alice, "delete-job", str(done), str(queued), str(other))
        assert result.exit_code == 1
        assert result.stdout == f"job {done} deleted\njob {other} deleted\n"
        assert (
            result.stderr.startswith("error 409: ") and f"job {queued} is queued" in result.stderr
        )
        assert _ids(api, alice) == {queued}

        refused = lagtrain(alice, "delete-sweep", str(sweep))
        assert refused.exit_code == 1 and f"sweep {sweep} is queued" in refused.stderr
        api.client.post(f"/v1/sweeps/{sweep}/cancel", headers=alice)
        deleted = lagtrain(alice, "delete-sweep", str(sweep))
        assert deleted.exit_code == 0 and deleted.stdout == f"sweep {sweep} deleted\n"
        assert _ids(api, alice, "sweeps") == set()


def test_cancel_takes_several_jobs_and_goes_on_past_a_refusal(api: Api) -> None:
    """Emptying a backlog took one `lagtrain cancel` per job (a walkthrough's 20)."""
    _a, alice = api.create_user("alice")
    first, second = api.submit(alice), api.submit(alice)
    with serving(create_app(api.settings)) as url:
        result = _cli(url)(alice, "cancel", str(first), "999999", str(second))
    assert result.exit_code == 1
    assert result.stdout == f"job {first} cancelled\njob {second} cancelled\n"
    assert result.stderr.startswith("error 404: ") and "999999" in result.stderr
    statuses = {
        j["id"]: j["status"] for j in api.client.get("/v1/jobs", headers=alice).json()["data"]
    }
    assert statuses == {first: "cancelled", second: "cancelled"}


def test_a_dry_run_is_said_as_such_and_an_admin_lists_one_users_jobs_and_sweeps(
    api: Api,
) -> None:
    """`prune --dry-run` (the habit of other tools) deletes nothing, and with --yes is
    refused; `jobs --owner` and `sweeps --owner` list one user's, as an admin's
    leaked-token drill asks (docs/operations.md)."""
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    old, bobs = _cancelled(api, alice, 10), _cancelled(api, bob, 10)
    bobs_sweep = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=bob).json()["id"]
    api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    with serving(create_app(api.settings)) as url:
        lagtrain = _cli(url)
        dry = lagtrain(alice, "prune", "--older-than", "5", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert dry.stdout.splitlines()[1:] == ["nothing deleted: --yes deletes them"]
        assert old in _ids(api, alice)
        both = lagtrain(alice, "prune", "--older-than", "5", "--dry-run", "--yes")
        assert both.exit_code == 2 and "not both" in both.stderr, both.output

        admin = bearer(ADMIN_TOKEN)
        jobs = lagtrain(admin, "jobs", "--owner", "bob")
        assert jobs.exit_code == 0, jobs.output
        assert _first_column(jobs.stdout) == [bobs], jobs.stdout
        sweeps = lagtrain(admin, "sweeps", "--owner", "bob")
        assert sweeps.exit_code == 0, sweeps.output
        assert _first_column(sweeps.stdout) == [bobs_sweep], sweeps.stdout


def _first_column(table: str) -> list[int]:
    """The ids of a listing's rows (its first column)."""
    return [int(m) for m in re.findall(r"^\S\s*(\d+)\s", table, flags=re.MULTILINE)]
