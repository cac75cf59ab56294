"""`lagtrain show JOB` against a real server: a queued job says why it waits; a job
cancelled after 4 of 5 rounds says where it stopped and what its rounds sent (the
summary the dispatcher stores, built here by the same store calls and rule)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from service.app import create_app
from service.cli import app
from service.store.attempts import acknowledge_cancel
from service.store.db import transaction
from service.store.jobs import request_cancel
from tests.api.conftest import SMALL_SPEC, Api, serving
from tests.store.conftest import get_job
from tests.store.test_end_summary import ran
from workers.job_outcome import Progress, summary


def test_show_says_why_a_job_waits_and_where_a_stopped_one_ended(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    token = alice["Authorization"].removeprefix("Bearer ")
    stopped = api.submit(alice)
    waiting = api.submit(alice)
    claimed = api.claim()
    assert claimed.job_id == stopped  # SMALL_SPEC: 5 rounds
    ran(api.sessions, claimed, 4)
    with transaction(api.sessions) as session:
        request_cancel(session=session, job=get_job(session, stopped), actor="user:alice")
    with transaction(api.sessions) as session:
        acknowledge_cancel(
            session=session,
            job_id=stopped,
            token=claimed.fencing_token,
            summary=summary(
                session, job_id=stopped, rounds=5, progress=Progress(), attempt=1, wall_s=1.0
            ),
        )

    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token}
        runner = CliRunner()
        shown = runner.invoke(app, ["show", str(stopped)], env=env)
        queued = runner.invoke(app, ["show", str(waiting)], env=env)
        missing = runner.invoke(app, ["show", "999999"], env=env)
    assert shown.exit_code == 0, (shown.output, shown.exception)
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"job {stopped}") and ": cancelled (owner alice" in lines[0]
    assert "stopped at round 4 of 5" in lines
    assert lines[-1] == "summary: loss 0.25  uploads 30/40 (25 % saved)  bytes 25 % saved"

    assert queued.exit_code == 0, (queued.output, queued.exception)
    waits = queued.stdout.splitlines()
    assert ": queued (owner alice" in waits[0]
    assert waits[2].startswith("waiting: position 1 (0 ahead)"), waits
    assert any(line.startswith("  ") for line in waits[3:]), waits  # a blocking reason
    assert not any(line.startswith("summary") for line in waits)

    assert missing.exit_code != 0 and "404" in missing.output


def test_show_spec_prints_yaml_that_submits_the_same_job_again(api: Api, tmp_path: Path) -> None:
    """A sweep's best trial, run again as a job of its own: `show --spec` is its
    resolved spec, name left out, and submitting the file resolves to the same spec."""
    _uid, alice = api.create_user("alice")
    token = alice["Authorization"].removeprefix("Bearer ")
    job_id = api.submit(alice, {**SMALL_SPEC, "name": "sweep 3 #0"})
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token}
        runner = CliRunner()
        shown = runner.invoke(app, ["show", str(job_id), "--spec"], env=env)
        assert shown.exit_code == 0, (shown.output, shown.exception)
        assert shown.stdout.startswith(f"# job {job_id}'s resolved spec")
        again = tmp_path / "again.yaml"
        again.write_text(shown.stdout)
        submitted = runner.invoke(app, ["submit", str(again)], env=env)
        assert submitted.exit_code == 0, (submitted.output, submitted.exception)
    original = api.client.get(f"/v1/jobs/{job_id}", headers=alice).json()["spec"]
    jobs = api.client.get("/v1/jobs", headers=alice).json()["data"]
    [rerun] = [job for job in jobs if job["id"] != job_id]
    assert rerun["spec"] == {**original, "name": None}


def test_show_says_a_running_job_with_no_round_yet_is_starting(api: Api) -> None:
    """A claimed job's gang takes 10-20 s to place and start: `round 0/5` alone read
    as a stuck job. Once a round is recorded, the note is gone."""
    _uid, alice = api.create_user("alice")
    token = alice["Authorization"].removeprefix("Bearer ")
    job_id = api.submit(alice)
    claimed = api.claim()
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token}
        starting = CliRunner().invoke(app, ["show", str(job_id)], env=env)
        ran(api.sessions, claimed, 1)
        training = CliRunner().invoke(app, ["show", str(job_id)], env=env)
    assert starting.exit_code == 0, (starting.output, starting.exception)
    lines = starting.stdout.splitlines()
    assert ": running (owner alice" in lines[0] and lines[1].startswith("round 0/5")
    assert lines[2].startswith("starting: no round finished yet"), lines
    assert training.exit_code == 0 and "starting:" not in training.stdout, training.stdout
