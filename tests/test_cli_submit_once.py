"""Submitting makes each job or sweep once: every POST carries its own
Idempotency-Key and is sent once more, under the same key, when its answer was lost
(a read timeout after the request went); `demo` names the jobs it made before a
refusal."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.cli_mock import answering, invoke, one_error

SWEEP_SPEC = "base: {task: {kind: adding}}\nparameters: {}\ntrials: 2\n"


class KeyedServer:
    """Creates one thing per Idempotency-Key, as the server does (DESIGN: the same
    key and body answer 200 with what the first made); the first answer to each key
    is lost in a read timeout."""

    def __init__(self) -> None:
        self.made: dict[str, dict[str, object]] = {}
        self.keys: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("Idempotency-Key")
        self.keys.append(key)
        assert key, "a create without an Idempotency-Key"
        if key in self.made:
            return httpx.Response(200, json=self.made[key])
        body = json.loads(request.content)
        self.made[key] = {
            "id": len(self.made) + 1,
            "name": "x",
            "status": "queued",
            "spec": {"trials": body.get("trials"), "parallel": 1, "sampler": "random"},
        }
        raise httpx.ReadTimeout("timed out", request=request)


@pytest.mark.parametrize(
    ("command", "text", "said"),
    [("submit", "task: {kind: adding}\n", "job 1 queued"), ("sweep", SWEEP_SPEC, "sweep 1")],
)
def test_a_create_whose_answer_was_lost_is_sent_again_and_made_once(
    command: str, text: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = KeyedServer()
    answering(monkeypatch, server)
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    result = invoke([command, str(spec)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.startswith(said), result.stdout
    assert len(server.made) == 1 and len(server.keys) == 2
    assert server.keys[0] == server.keys[1]

    invoke([command, str(spec)])  # another submit of the same file: another job
    assert len(server.made) == 2 and server.keys[2] != server.keys[0]


def test_demo_names_the_jobs_it_made_before_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    keys: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            return httpx.Response(201, json={"id": 12, "name": "dense", "status": "queued"})
        return httpx.Response(429, json={"detail": "max_queued_jobs: 1 queued"})

    answering(monkeypatch, server)
    result = invoke(["demo", "--rounds", "8"])
    line = one_error(result)
    assert line == "error 429: max_queued_jobs: 1 queued (already submitted: job 12)"
    assert result.stdout.splitlines() == ["job 12 dense queued"]
    assert len(set(keys)) == 2  # a key of its own for each job
