"""The SSE parser that the client and the API tests share (service.client)."""

from __future__ import annotations

from service.client import SseEvent, parse_sse


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
