"""The client's jobs: submitting, reading and cancelling them, their metrics and
checkpoints, and following a job's event stream."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from service.client_base import (
    ApiError,
    ChecksumMismatch,
    ClientBase,
    not_the_api,
    refuse_unanswered,
)
from service.client_outage import Outage
from service.schemas.jobs import TERMINAL
from service.sse_text import parse_sse

TERMINAL_STATUSES: frozenset[str] = TERMINAL
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)


class JobsApi(ClientBase):
    def submit(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        return self._create("/v1/jobs", spec, idempotency_key)

    def job(self, job_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/jobs/{job_id}")
        return result

    def cluster(self) -> dict[str, Any]:
        """GET /v1/cluster: dispatchers, the cluster's resources, jobs by status and
        the queue's head (a user: their own places in it)."""
        result: dict[str, Any] = self._request("GET", "/v1/cluster")
        return result

    def explain(self, job_id: int) -> dict[str, Any]:
        """Why a job waits: its place in the queue and what blocks it."""
        result: dict[str, Any] = self._request("GET", f"/v1/jobs/{job_id}/explain")
        return result

    def jobs(
        self,
        *,
        status: str | None = None,
        sweep_id: int | None = None,
        owner: str | None = None,
        finished_before: datetime | None = None,
        limit: int = 50,
        most: int | None = None,
    ) -> list[dict[str, Any]]:
        """Your jobs (an admin's: everyone's, or `owner`'s), newest first, `limit` a
        page; with `most`, the newest `most` and one more when there are more.
        `sweep_id`: only that sweep's trial jobs. `finished_before`: only jobs
        finished before it (a naive time is UTC)."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if owner is not None:
            params["owner"] = owner
        if sweep_id is not None:
            params["sweep_id"] = sweep_id
        if finished_before is not None:
            params["finished_before"] = finished_before.isoformat()
        return self._every_page("/v1/jobs", params, most=most)

    def cancel(self, job_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", f"/v1/jobs/{job_id}/cancel")
        return result

    def metrics(self, job_id: int, *, after_seq: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self._request(
                "GET", f"/v1/jobs/{job_id}/metrics", params={"after_seq": after_seq, "limit": 1000}
            )
            out.extend(page["data"])
            if not page["data"]:
                return out
            after_seq = page["next_after_seq"]

    def checkpoints(self, job_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", f"/v1/jobs/{job_id}/checkpoints")[
            "data"
        ]
        return result

    def download_checkpoint(
        self,
        job_id: int,
        checkpoint_id: int,
        dest: Path,
        *,
        sha256: str | None = None,
        replace: bool = True,
    ) -> Path:
        """Stream the checkpoint to `dest`, checking it against the X-Checkpoint-SHA256
        the server sends and `sha256` (the checkpoint listing's), each one given: the
        bytes go to a temporary file beside `dest`, which replaces `dest` only when
        they match (else ChecksumMismatch, `dest` untouched). A proxy may drop the
        header: with `sha256` the bytes are checked all the same. `replace` False: a
        `dest` that exists when the bytes are in place, even one made during the
        download, is left as it is (FileExistsError)."""
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/checkpoints/{checkpoint_id}") as r:
                if r.status_code >= 300:
                    r.read()
                    refuse_unanswered(r)
                expected = r.headers.get("X-Checkpoint-SHA256")
                digest = hashlib.sha256()
                with partial.open("wb") as fh:
                    for chunk in r.iter_bytes():
                        digest.update(chunk)
                        fh.write(chunk)
            for wanted in (expected, sha256):
                if wanted is not None and digest.hexdigest() != wanted.lower():
                    raise ChecksumMismatch(
                        f"checkpoint {checkpoint_id} of job {job_id}: the download's sha256 "
                        f"{digest.hexdigest()} does not match the server's {wanted}; "
                        f"{dest} was not written"
                    )
            _put(partial, dest, replace=replace)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    def events(
        self, job_id: int, *, last_event_id: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (event, data) from the job's SSE stream until the server closes it."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
        # The server pings every 15 s: a minute without a byte is a dead connection
        # (a crashed host, a dropped NAT entry), which `follow` reconnects.
        with self._http.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=STREAM_TIMEOUT
        ) as response:
            if response.status_code >= 300:
                response.read()
                refuse_unanswered(response)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                # A login page or an empty 200 yields no event, and `follow` would
                # reconnect to it for ever (its outage clock starts only on errors).
                response.read()
                raise ApiError(response.status_code, not_the_api(response))
            for message in parse_sse(response.iter_lines()):
                yield message.event, message.data

    def follow(
        self,
        job_id: int,
        *,
        give_up_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """`events` until the server closes the stream after a terminal status,
        through a lost connection (a server restarting, a proxy timing out): it
        reconnects with Last-Event-ID = the last metric seen, so no metric repeats or
        goes missing. (A finished job's stream sends its terminal status first and
        again after its metrics: the end is the stream's close, and a connection lost
        before it reconnects.) Raises the connection's error once the server has been
        unreachable for `give_up_after` seconds. A 429 on a reconnect is waited out
        too: the server may hold the lost connection's stream slot until its next
        ping finds it gone (≤ 15 s), and with the user's streams at their cap the
        reconnect was refused (the dashboard waits it out as well). At the first
        connection a 429 is raised: the cap is full of other streams."""
        last_seq: int | None = None
        outage = Outage(give_up_after, sleep)
        ended = connected = False
        while True:
            outage.trying()
            try:
                for event, data in self.events(job_id, last_event_id=last_seq):
                    outage.over()
                    connected = True
                    if event == "metrics":
                        last_seq = int(data["seq"])
                        ended = False  # a finished job's backlog: its status comes again
                    elif event == "status":
                        ended = data.get("status") in TERMINAL_STATUSES
                    yield event, data
                if ended:
                    return
            except (httpx.TransportError, ApiError) as exc:
                outage.endure(exc, also=frozenset({429}) if connected else frozenset())
            # The stream ended (or broke) before a terminal status: connect again.
            outage.pause()


def _put(partial: Path, dest: Path, *, replace: bool) -> None:
    """Move the checked bytes to `dest`; without `replace`, only where no file is (a
    hard link fails on one that exists, atomically), else FileExistsError."""
    if replace:
        partial.replace(dest)
        return
    try:
        os.link(partial, dest)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: checked, then moved
        if dest.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(dest)) from None
        partial.replace(dest)
