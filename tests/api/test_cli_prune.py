"""`lagtrain delete-job` and `lagtrain prune` against a real server: prune finds
the finished jobs older than its cutoff (the caller's own, or an admin's choice of
one user or everyone), deletes nothing without --yes, and keeps a trial of a sweep
that has not finished with the server's reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from typer.testing import CliRunner, Result

from service.app import create_app
from service.cli import app
from service.store.db import transaction
from service.store.models import Job
from tests.api.conftest import ADMIN_TOKEN, SMALL_SWEEP, Api, serving
from workers.sweeps.controller import SweepController


def _finished_days_ago(api: Api, job_id: int, days: float) -> None:
    with transaction(api.sessions) as session:
        at = datetime.now(UTC) - timedelta(days=days)
        session.execute(update(Job).where(Job.id == job_id).values(finished_at=at))


def _cancelled(api: Api, headers: dict[str, str], days_ago: float) -> int:
    job_id = api.submit(headers)
    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202
    _finished_days_ago(api, job_id, days_ago)
    return job_id


def _ids(api: Api, headers: dict[str, str]) -> set[int]:
    return {j["id"] for j in api.client.get("/v1/jobs", headers=headers).json()["data"]}


def test_prune_deletes_old_finished_jobs_only_with_yes(api: Api) -> None:
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    old, recent = _cancelled(api, alice, 10), _cancelled(api, alice, 1)
    unfinished = api.submit(alice)
    bobs_old = _cancelled(api, bob, 10)
    # A trial of a running sweep, finished long ago: the server keeps it.
    sweep = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    SweepController(api.settings, api.sessions).poll()
    trial = api.client.get(f"/v1/sweeps/{sweep}", headers=alice).json()["trials"][0]["job_id"]
    api.client.post(f"/v1/jobs/{trial}/cancel", headers=alice)
    _finished_days_ago(api, trial, 30)

    with serving(create_app(api.settings)) as url:

        def lagtrain(headers: dict[str, str], *args: str) -> Result:
            token = headers["Authorization"].removeprefix("Bearer ")
            env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token, "COLUMNS": "200"}
            return CliRunner().invoke(app, list(args), env=env)

        listed = lagtrain(alice, "prune", "--older-than", "5")
        assert listed.exit_code == 0, listed.output
        lines = listed.stdout.splitlines()
        assert lines[0].startswith("2 jobs (yours) finished before "), lines
        assert lines[0].endswith(" UTC: cancelled 2") and lines[1:] == [
            "nothing deleted: --yes deletes them"
        ], lines
        assert {old, trial} <= _ids(api, alice)

        pruned = lagtrain(alice, "prune", "--older-than", "5", "--yes")
        assert pruned.exit_code == 0, pruned.output
        assert pruned.stdout.splitlines()[1:3] == ["1 job deleted", "1 kept:"], pruned.stdout
        assert f"job {trial} is a trial of sweep {sweep}" in pruned.stdout
        assert old not in _ids(api, alice)
        assert {recent, unfinished, trial} <= _ids(api, alice)
        assert bobs_old in _ids(api, bob)  # another user's job is not alice's to prune

        refused = lagtrain(alice, "prune", "--older-than", "5", "--everyone")
        assert refused.exit_code == 2 and "for admins" in refused.stderr, refused.output
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        both = lagtrain(admin, "prune", "--older-than", "5", "--owner", "bob", "--everyone")
        assert both.exit_code == 2 and "not both" in both.stderr, both.output
        # alice's recent job and her trial, bob's old one.
        everyone = lagtrain(admin, "prune", "--older-than", "0", "--everyone")
        assert everyone.stdout.startswith("3 jobs (every user's) finished"), everyone.stdout
        bobs = lagtrain(admin, "prune", "--older-than", "5", "--owner", "bob", "--yes")
        assert bobs.stdout.splitlines()[1:] == ["1 job deleted"], bobs.stdout
        assert bobs_old not in _ids(api, bob)
        nothing = lagtrain(admin, "prune", "--older-than", "5")  # the admin's own: none
        assert nothing.stdout.startswith("0 jobs (yours) finished before "), nothing.stdout


def test_delete_job_deletes_each_and_stops_at_the_first_refusal(api: Api) -> None:
    _a, alice = api.create_user("alice")
    done, queued = _cancelled(api, alice, 0), api.submit(alice)
    with serving(create_app(api.settings)) as url:
        token = alice["Authorization"].removeprefix("Bearer ")
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token}
        result = CliRunner().invoke(app, ["delete-job", str(done), str(queued)], env=env)
    assert result.exit_code == 1
    assert result.stdout == f"job {done} deleted\n"
    assert result.stderr.startswith("error 409: ") and f"job {queued} is queued" in result.stderr
    assert _ids(api, alice) == {queued}
