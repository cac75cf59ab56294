"""The SSE parser that the client and the API tests share, and the client's
following of a job's stream through lost connections (service.client)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from service.client import ApiError, Client
from service.sse_text import SseEvent, parse_sse

# What the server sends its streams as (a 200 of any other type is no event stream).
SSE = {"content-type": "text/event-stream; charset=utf-8"}


def test_fields_comments_multiline_data_and_a_cut_off_event() -> None:
    lines = [
        ": ping",
        "event: status",
        'data: {"status": "queued"}',
        "",
        "id: 7",
        "event: metrics",
        'data: {"seq":',
        "data:  7}",
        "retry: 1000",
        "",
        "",  # a blank line with nothing pending sends nothing
        "event: nothing-to-send",
        "",
        "event: status",
        'data: {"status": "cut off"}',
    ]
    assert list(parse_sse(lines)) == [
        SseEvent(event="status", id=None, data={"status": "queued"}),
        SseEvent(event="metrics", id="7", data={"seq": 7}),
    ]


def test_unnamed_events_are_messages() -> None:
    assert list(parse_sse(["data:[1, 2]", ""])) == [SseEvent(event="message", id=None, data=[1, 2])]


class FlakyStream(httpx.SyncByteStream):
    """An SSE body that breaks off after its lines, as a restarting server's does."""

    def __init__(self, lines: list[str], *, breaks: bool) -> None:
        self.lines, self.breaks = lines, breaks

    def __iter__(self) -> Iterator[bytes]:
        yield "".join(f"{line}\n" for line in self.lines).encode()
        if self.breaks:
            raise httpx.RemoteProtocolError("incomplete chunked read")


def sse(event: str, data: dict[str, object], seq: int | None = None) -> list[str]:
    return [*([f"id: {seq}"] if seq else []), f"event: {event}", f"data: {json.dumps(data)}", ""]


def test_follow_reconnects_from_the_last_metric_until_a_terminal_status() -> None:
    """A stream cut mid-job (the server restarted): `follow` connects again with
    Last-Event-ID = the last metric seen, and stops at the terminal status."""
    asked: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Last-Event-ID"))
        if len(asked) == 1:
            lines = sse("status", {"status": "running"}) + sse("metrics", {"seq": 1}, 1)
            lines += sse("metrics", {"seq": 2}, 2)
            return httpx.Response(200, headers=SSE, stream=FlakyStream(lines, breaks=True))
        if len(asked) == 2:  # a server that closes before the job ends: connect again
            return httpx.Response(
                200,
                headers=SSE,
                stream=FlakyStream(sse("status", {"status": "running"}), breaks=False),
            )
        done = sse("status", {"status": "succeeded"})
        if len(asked) == 3:
            # Ended meanwhile: its status first, then the metrics not sent yet (DESIGN
            # §6) — cut before the status that closes a finished job's stream.
            return httpx.Response(
                200,
                headers=SSE,
                stream=FlakyStream(done + sse("metrics", {"seq": 3}, 3), breaks=False),
            )
        return httpx.Response(200, headers=SSE, stream=FlakyStream(done + done, breaks=False))

    http = httpx.Client(base_url="http://lagtrain", transport=httpx.MockTransport(server))
    client = Client("http://lagtrain", "t", http=http)
    naps: list[float] = []
    got = list(client.follow(7, sleep=naps.append))
    assert asked == [None, "2", "2", "3"]
    assert [d["seq"] for e, d in got if e == "metrics"] == [1, 2, 3]  # none twice, none lost
    assert got[-1] == ("status", {"status": "succeeded"})
    assert naps == [0.5, 0.5, 0.5]  # each new connection that worked resets the wait


def test_follow_gives_up_on_a_server_that_stays_away() -> None:
    def server(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    http = httpx.Client(base_url="http://lagtrain", transport=httpx.MockTransport(server))
    client = Client("http://lagtrain", "t", http=http)
    with pytest.raises(httpx.ConnectError):
        list(client.follow(7, give_up_after=0.0, sleep=lambda _s: None))


def test_follow_waits_through_a_proxy_and_a_refused_connection_while_the_server_restarts() -> None:
    """Behind a reverse proxy a restarting server answers 502/503/504; directly, the
    connection is refused: both are waited out (a 404 is not)."""
    answers: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        answers.append("asked")
        if len(answers) == 1:
            return httpx.Response(503, json={"detail": "upstream restarting"})
        if len(answers) == 2:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(
            200, headers=SSE, stream=FlakyStream(sse("status", {"status": "failed"}), breaks=False)
        )

    http = httpx.Client(base_url="http://lagtrain", transport=httpx.MockTransport(server))
    client = Client("http://lagtrain", "t", http=http)
    naps: list[float] = []
    assert list(client.follow(7, sleep=naps.append)) == [("status", {"status": "failed"})]
    assert naps == [0.5, 1.0]  # backing off while it fails

    gone = httpx.Client(
        base_url="http://lagtrain",
        transport=httpx.MockTransport(lambda _r: httpx.Response(404, json={"detail": "no job"})),
    )
    with pytest.raises(ApiError):
        list(Client("http://lagtrain", "t", http=gone).follow(7, sleep=naps.append))


def test_follow_waits_out_a_429_on_a_reconnect_but_not_on_the_first_connect() -> None:
    """A reconnect can meet the stream cap while the server still holds the lost
    connection's slot (until its next ping finds it gone): `lagtrain watch` died
    with "close one first" where the dashboard waits (a review). At the first
    connection the cap is full of other streams: raised."""
    answers: list[str] = []
    full = {"detail": "max_streams_per_user: you have 8 open event streams"}

    def server(request: httpx.Request) -> httpx.Response:
        answers.append("asked")
        if len(answers) == 1:
            lines = sse("status", {"status": "running"}) + sse("metrics", {"seq": 1}, 1)
            return httpx.Response(200, headers=SSE, stream=FlakyStream(lines, breaks=True))
        if len(answers) == 2:
            return httpx.Response(429, json=full)
        return httpx.Response(
            200, headers=SSE, stream=FlakyStream(sse("status", {"status": "failed"}), breaks=False)
        )

    http = httpx.Client(base_url="http://lagtrain", transport=httpx.MockTransport(server))
    got = list(Client("http://lagtrain", "t", http=http).follow(7, sleep=lambda _s: None))
    assert got[-1] == ("status", {"status": "failed"}) and len(answers) == 3

    capped = httpx.Client(
        base_url="http://lagtrain",
        transport=httpx.MockTransport(lambda _r: httpx.Response(429, json=full)),
    )
    with pytest.raises(ApiError, match="max_streams_per_user"):
        list(Client("http://lagtrain", "t", http=capped).follow(7, sleep=lambda _s: None))
