"""`lagtrain cluster` against a real server: the Lab's view in a terminal — an
operator's walkthrough had to curl /v1/cluster to see dispatchers and the queue."""

from __future__ import annotations

from typer.testing import CliRunner

from service.app import create_app
from service.cli import app
from service.store.db import transaction
from service.store.dispatchers import mark_dispatcher_stopped, upsert_dispatcher
from tests.api.conftest import ADMIN_TOKEN, SMALL_SPEC, Api, serving

runner = CliRunner()


def _cells(output: str) -> list[list[str]]:
    cells = ([c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines())
    return [row for row in cells if row]


def test_the_cluster_command_shows_dispatchers_and_the_queue(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    bob_id, bob = api.create_user("bob")
    first = api.submit(alice)
    skipped = api.submit(bob)
    api.client.patch(
        f"/v1/users/{bob_id}", json={"quota": {"max_running_jobs": 0}}, headers=api.admin
    )
    report = {"total": {"CPU": 8.0}, "free": {"CPU": 6.0}, "running_jobs": 1}
    with transaction(api.sessions) as session:
        for dispatcher_id in ("d-up", "d-gone"):
            upsert_dispatcher(
                session=session, dispatcher_id=dispatcher_id, hostname="node", resources=report
            )
        mark_dispatcher_stopped(session=session, dispatcher_id="d-gone")
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN, "COLUMNS": "250"}
        result = runner.invoke(app, ["cluster"], env=env)
    assert result.exit_code == 0, result.output
    rows = {row[0]: row for row in _cells(result.stdout)}
    assert rows["d-up"][1:3] == ["node", "alive"] and rows["d-up"][4:] == ["1", "6/8"]
    assert rows["d-gone"][2].startswith("stopped 20") and rows["d-gone"][4:] == ["0", ""]
    assert "cluster: 6/8 CPU free" in result.stdout
    assert "jobs: 2 queued" in result.stdout
    assert rows["1"][1:3] == [f"{first}", "alice"], rows["1"]
    assert rows["skipped"][1:3] == [f"{skipped}", "bob"], rows["skipped"]
    assert "bob's quota is 0" in rows["skipped"][4], rows["skipped"]


def test_a_note_every_waiting_job_shares_is_printed_once(api: Api) -> None:
    """Explain adds the room-hold policy (≈ 200 characters) to every wait for free
    room: printed once below the table, each row marked, not on every row."""
    _alice_id, alice = api.create_user("alice")
    spec = {**SMALL_SPEC, "distributed": {"workers": 3, "cpus_per_worker": 1}}
    jobs = [api.submit(alice, spec) for _ in range(3)]
    report = {"total": {"CPU": 8.0}, "free": {"CPU": 2.0}, "running_jobs": 1}
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d", hostname="node", resources=report)
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN, "COLUMNS": "250"}
        result = runner.invoke(app, ["cluster"], env=env)
    assert result.exit_code == 0, result.output
    waits = {row[1]: row[4] for row in _cells(result.stdout) if row[0].isdigit()}
    assert set(waits) == {str(job) for job in jobs}, waits
    assert all(wait.startswith("waiting for 4 CPU to become free [1]") for wait in waits.values())
    assert "2 queued jobs with higher priority" in waits[str(jobs[2])], waits
    [note] = [line for line in result.stdout.splitlines() if line.startswith("[1] ")]
    assert "smaller jobs queued behind it start meanwhile" in note, note
    assert result.stdout.count("smaller jobs queued behind it") == 1, result.stdout
