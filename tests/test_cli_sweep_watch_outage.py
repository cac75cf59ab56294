"""`sweep-watch` rides a server that is away for a while (a restart, its proxy's
502s) as a job's `watch` does — the same rule (service.client_outage.Outage) — where
it gave up at the first failed poll."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.cli_sweeps import poll
from service.client import Client
from service.client_outage import Outage
from tests.cli_mock import answering, invoke


def sweep(status: str) -> dict[str, Any]:
    spec = {"objectives": [], "parameters": {}, "trials": 1, "sampler": "random"}
    return {"id": 4, "name": "s", "status": status, "spec": spec, "trials": [], "best": []}


def test_sweep_watch_waits_through_a_proxys_502(monkeypatch: pytest.MonkeyPatch) -> None:
    polls: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/jobs":  # the finished sweep's trial jobs
            return httpx.Response(200, json={"data": [], "next_cursor": None})
        polls.append("asked")
        if len(polls) == 2:
            return httpx.Response(502, html="<html>Bad Gateway</html>")
        return httpx.Response(200, json=sweep("running" if len(polls) == 1 else "succeeded"))

    answering(monkeypatch, server)
    watched = invoke(["sweep-watch", "4"])
    assert watched.exit_code == 0, (watched.output, watched.exception)
    assert len(polls) == 3 and watched.stderr == ""
    assert watched.stdout.startswith("sweep 4 running\nsweep 4 succeeded\n"), watched.stdout


def test_a_poll_backs_off_and_gives_up_as_a_job_watch_does() -> None:
    answers: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        answers.append("asked")
        if len(answers) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if len(answers) in (2, 3):
            return httpx.Response(503, json={"detail": "upstream restarting"})
        return httpx.Response(200, json=sweep("running"))

    http = httpx.Client(base_url="http://lagtrain", transport=httpx.MockTransport(server))
    client = Client("http://lagtrain", "t", http=http)
    naps: list[float] = []
    assert poll(client, 4, Outage(sleep=naps.append))["status"] == "running"
    assert naps == [0.5, 1.0, 2.0]

    with pytest.raises(httpx.ConnectError):  # away past give_up_after: raised
        answers.clear()
        poll(client, 4, Outage(give_up_after=0.0, sleep=naps.append))


def test_an_outage_counts_from_the_try_that_failed_not_from_its_report() -> None:
    """A read timeout is reported only after its own wait: counted from the report, a
    hung server was given up at 90-120 s, not 60 (a review)."""
    now = [0.0]
    outage = Outage(give_up_after=60.0, sleep=lambda _s: None, clock=lambda: now[0])
    outage.trying()
    now[0] = 30.0  # the client's 30 s read timeout
    outage.endure(httpx.ReadTimeout("timed out"))
    outage.pause()
    outage.trying()
    now[0] = 61.0  # the second try's timeout: 61 s since the server last answered
    with pytest.raises(httpx.ReadTimeout):
        outage.endure(httpx.ReadTimeout("timed out"))


def test_a_stream_that_broke_counts_from_its_last_event() -> None:
    now = [0.0]
    outage = Outage(give_up_after=60.0, sleep=lambda _s: None, clock=lambda: now[0])
    outage.trying()
    now[0] = 600.0  # ten minutes of events, the last one now
    outage.over()
    now[0] = 601.0  # then the stream breaks: an outage of 1 s, not 601
    outage.endure(httpx.RemoteProtocolError("peer closed"))
