"""Reading text/event-stream: the client's parser for the server's SSE (kept apart
from the client so the tests that read a stream directly share it)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: its type ("message" when unnamed), its id (None when
    the server sent none) and its data, decoded from JSON."""

    event: str
    id: str | None
    data: Any


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Server-sent events from a stream's lines (the WHATWG text/event-stream rules
    lagtrain's server uses): fields `name: value` (one leading space dropped),
    comments (`:`) skipped, several data lines joined with newlines, an event sent at
    each blank line if it has data; a final event cut off before its blank line is
    dropped, as a browser does."""
    event: str = "message"
    event_id: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield SseEvent(event=event, id=event_id, data=json.loads("\n".join(data)))
            event, event_id, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
