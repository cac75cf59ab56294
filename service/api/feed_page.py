"""What the live jobs feed (service.api.jobs_feed) sends of a page: a `jobs` event,
the whole page, when a connection starts, and after it only what changed — a
`changes` event with the rows that are new or differ from what this connection
last sent, and the page's ids in order (which drops the rows that left it) when they
changed.

A row is a job as GET /v1/jobs lists it without its `spec`: no page of the dashboard
that reads the feed shows a spec (the job page reads GET /v1/jobs/{id}), and a
resolved spec was most of a row's bytes. The Lab reads the newest 500 jobs, and the
feed sent all of them whole again at every change (every 0.5 s while any job ran):
docs/benchmarks.md, feed_bytes."""

from __future__ import annotations

import hashlib
import json

from service.schemas.common import Page
from service.schemas.jobs import JobOut

# JobOut's fields a feed row leaves out (DESIGN's GET /v1/jobs keeps them).
LEFT_OUT: frozenset[str] = frozenset({"spec"})


def row_json(job: JobOut) -> str:
    return job.model_dump_json(exclude=set(LEFT_OUT))


def _body(rows: list[str], **rest: object) -> str:
    """{"data": [rows...], **rest} with the rows as already encoded (each once)."""
    tail = "".join(f",{json.dumps(key)}:{json.dumps(value)}" for key, value in rest.items())
    return '{"data":[' + ",".join(rows) + "]" + tail + "}"


class FeedPage:
    """One connection's record of what its client holds: a digest of each row it was
    sent (not the rows: 500 of them are ≈ 0.5 MB, held for each open Lab)."""

    def __init__(self) -> None:
        self._sent: dict[int, bytes] | None = None  # None: nothing sent yet
        self._cursor: str | None = None

    def event(self, page: Page[JobOut]) -> dict[str, str] | None:
        """The event that brings the client to `page`; None when it shows it already."""
        rows = {job.id: row_json(job) for job in page.data}
        sent = self._sent
        if sent is None:
            event = {
                "event": "jobs",
                "data": _body(list(rows.values()), next_cursor=page.next_cursor),
            }
        else:
            changed = [row for job_id, row in rows.items() if sent.get(job_id) != _digest(row)]
            same_ids = list(rows) == list(sent)
            if not changed and same_ids and page.next_cursor == self._cursor:
                return None
            # The ids only when they changed (500 ids are ~3 KB, more than a few rows),
            # but then all of them: the client rebuilds the page from them alone, with
            # no rule of its own for order or for what left.
            ids = {} if same_ids else {"ids": list(rows)}
            data = _body(changed, **ids, next_cursor=page.next_cursor)
            event = {"event": "changes", "data": data}
        self._sent = {job_id: _digest(row) for job_id, row in rows.items()}
        self._cursor = page.next_cursor
        return event


def _digest(row: str) -> bytes:
    # 16 bytes of BLAKE2b: a changed row is never taken for the one sent (unlike
    # hash(), whose 64 bits a row's bytes could be made to collide with).
    return hashlib.blake2b(row.encode(), digest_size=16).digest()
