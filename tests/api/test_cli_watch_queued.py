"""`lagtrain watch` of a queued job says why it waits: explain's reasons, printed
once and again only when they change, not at every poll; once the job leaves the
queue the watch goes on as before (a walkthrough: it printed nothing while queued).
No dispatcher runs here, so the job waits for one until the test changes its quota
and then cancels it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service import cli_watch
from service.app import create_app
from service.cli import app
from tests.api.conftest import SMALL_SPEC, Api, serving


@pytest.mark.timeout(60)  # a watch that never leaves the wait follows the stream for ever
def test_watch_prints_why_a_queued_job_waits_when_it_changes(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice_id, alice = api.create_user("alice")
    job_id = api.submit(alice)
    polls: list[int] = []

    def between_polls(seconds: float) -> None:
        """Each wait between two reads of explain: the second makes alice's quota
        hold the job back too (a new reason), the fifth cancels it; the others
        change nothing, and the reasons read then are not printed again."""
        assert seconds == cli_watch.QUEUED_POLL_SECONDS
        polls.append(len(polls) + 1)
        if len(polls) == 2:
            quota = {"quota": {"max_running_jobs": 0}}
            changed = api.client.patch(f"/v1/users/{alice_id}", json=quota, headers=api.admin)
            assert changed.status_code == 200, changed.text
        elif len(polls) == 5:
            cancelled = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
            assert cancelled.status_code == 202, cancelled.text

    monkeypatch.setattr(cli_watch, "pause", between_polls)
    token = alice["Authorization"].removeprefix("Bearer ")
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token}
        watched = CliRunner().invoke(app, ["watch", str(job_id)], env=env)
    assert watched.exit_code == 1, (watched.output, watched.exception)  # it was cancelled
    assert polls == [1, 2, 3, 4, 5]
    # The first reasons, then the changed ones (a quota of 0 leaves the job unranked),
    # each once: polls 1, 3, 4 and 5 found nothing new.
    first, changed, cancelled = watched.stdout.split(f"job {job_id} ")[1:]
    assert first.startswith("queued: position 1 (0 ahead)\n  no_dispatcher: "), first
    assert changed.startswith("queued: not ranked\n  quota: max_running_jobs: "), changed
    assert len(changed.splitlines()) == 2, changed
    assert cancelled == "cancelled\n"


@pytest.mark.timeout(60)
def test_submit_watch_says_in_explains_words_why_the_job_waits(
    api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The reasons as `show` prints them, explain's own words."""
    _alice_id, alice = api.create_user("alice")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SMALL_SPEC))
    seen: list[dict[str, Any]] = []

    def cancel_it(_seconds: float) -> None:
        [job] = api.client.get("/v1/jobs", headers=alice).json()["data"]
        seen.append(api.client.get(f"/v1/jobs/{job['id']}/explain", headers=alice).json())
        api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=alice)

    monkeypatch.setattr(cli_watch, "pause", cancel_it)
    token = alice["Authorization"].removeprefix("Bearer ")
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token}
        watched = CliRunner().invoke(app, ["submit", str(spec), "--watch"], env=env)
    assert watched.exit_code == 1, (watched.output, watched.exception)
    [why] = seen
    job_id = why["job_id"]
    assert [reason["kind"] for reason in why["reasons"]] == ["no_dispatcher"], why
    assert watched.stdout.splitlines() == [
        f"job {job_id} queued",  # submit's own line
        f"job {job_id} queued: position 1 (0 ahead)",
        *(f"  {reason['kind']}: {reason['message']}" for reason in why["reasons"]),
        f"job {job_id} cancelled",
    ]
