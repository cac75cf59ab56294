"""SSE fan-out: one store poller per watched job, shared by all of its watchers.

A JobFeed polls the store for its job (job_stream.JobStream: status events before
metrics) and appends each new message, encoded once, to one log shared by every
watcher; each watcher keeps its own position in it. One wake-up (an asyncio.Event
per publication) releases every waiting watcher, which then takes everything past
its position as one chunk: no per-watcher queue, timer or copy of the message.

A watcher starts from the feed's state when it first looks: the status and the
highest seq the feed had reached, and the log's end. It sends that status, reads
the metrics it missed up to that seq from the store itself (Last-Event-ID may lie
far back), then follows the log from that end. The state and the log change
together with no await in between, so nothing falls between the catch-up and the
live messages, and nothing is sent twice (seqs at or below the watcher's last are
skipped).

The feed ends after publishing a terminal status (after the last metrics), when its
last watcher leaves, or, on a store error, by ending the log without one (the
streams close; clients reconnect with Last-Event-ID). A watcher who joins after a
terminal status gets it first and then the whole backlog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from service.api.job_stream import (
    BATCH,
    JobStream,
    Message,
    merge,
    metric_message,
    status_message,
)
from service.errors import NotFound
from service.schemas.jobs import StatusEvent
from service.store.db import read_transaction
from service.store.metrics import metrics_after
from service.store.models import TERMINAL, Metric

log = logging.getLogger(__name__)

# One poll per job, whatever the number of watchers: short enough that a record
# reaches its watchers well within a quarter second.
POLL_SECONDS = 0.1
SSE_SEPARATOR = "\r\n"  # sse_starlette's default, for what it sends itself (pings)
# How often an idle watcher asks `still_allowed` (which itself rate-limits its store
# reads): a revoked token closes even a stream whose job has gone quiet.
ALLOWED_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Item:
    data: bytes  # the SSE event, encoded once for all watchers
    seq: int = 0  # a metric's seq; 0 for a status
    last: bool = False  # the terminal status: the stream ends after it


@dataclass(eq=False)  # hashed by identity: one per watcher
class _Cursor:
    """A watcher's position in its feed's log (absolute; None until it starts)."""

    pos: int | None = None


def encode(message: Message) -> bytes:
    return ServerSentEvent(
        data=message["data"], event=message["event"], id=message.get("id"), sep=SSE_SEPARATOR
    ).encode()


def _item(message: Message) -> Item:
    return Item(encode(message), seq=int(message.get("id", "0")))


class JobFeed:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: int,
        *,
        on_close: Callable[[JobFeed], None],
    ) -> None:
        self.job_id = job_id
        self._stream = JobStream(sessions, job_id=job_id, after_seq=0)
        self._cursors: set[_Cursor] = set()
        self._log: list[Item] = []
        self._base = 0  # the absolute position of _log[0] (the log is trimmed)
        self._wake = asyncio.Event()
        self.status: StatusEvent | None = None  # None until the first read
        # Metrics up to here are in the store; a watcher starting now gets later ones
        # from the log.
        self.head_seq = 0
        self.done = False  # no more items: the last one, or the feed failed
        self._on_close = on_close
        self._task: asyncio.Task[None] | None = None

    @property
    def end(self) -> int:
        return self._base + len(self._log)

    def join(self) -> _Cursor:
        cursor = _Cursor()
        self._cursors.add(cursor)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return cursor

    def leave(self, cursor: _Cursor) -> None:
        self._cursors.discard(cursor)

    async def changed(self) -> None:
        """Until the next publication (or tick)."""
        await self._wake.wait()

    def take(self, cursor: _Cursor) -> list[Item]:
        """The items past the cursor, which moves to the end."""
        assert cursor.pos is not None
        items = self._log[cursor.pos - self._base :]
        cursor.pos = self.end
        return items

    def _publish(self, items: list[Item]) -> None:
        self._log.extend(items)
        self.head_seq = self._stream.last_seq  # the metrics the log holds, and before
        # Forget what every started watcher has taken (a slow one holds the rest).
        low = min((c.pos for c in self._cursors if c.pos is not None), default=self.end)
        if low > self._base:
            del self._log[: low - self._base]
            self._base = low
        self._wake.set()
        self._wake = asyncio.Event()

    def _close(self, final: Item | None) -> None:
        self._on_close(self)
        self.done = True
        self._publish([] if final is None else [final])

    async def _run(self) -> None:
        try:
            await self._follow()
        except NotFound:  # the job was deleted: nothing left to stream
            self._close(None)
        except Exception:
            log.exception("SSE feed of job %s failed; closing its streams", self.job_id)
            self._close(None)

    async def _follow(self) -> None:
        status = await run_in_threadpool(self._stream.start)
        self.status = status
        if status.status in TERMINAL:
            self._on_close(self)
            self.done = True
            self._publish([])
            return
        self._publish([])
        pending: StatusEvent | None = None
        ticked = time.monotonic()
        while True:
            changes, metrics, terminal, newest = await run_in_threadpool(self._stream.poll)
            # From here to the publication nothing awaits: a watcher starting now
            # sees a state that matches exactly what the log already holds.
            pending = terminal or pending
            self.status = pending or newest or self.status
            items = [_item(message) for message in merge(changes, metrics)]
            if len(metrics) == BATCH:
                self._publish(items)
                continue  # drain the backlog before a terminal status and before waiting
            if pending is not None:
                self._close_after(items, Item(encode(status_message(pending)), last=True))
                return
            now = time.monotonic()
            if items or now - ticked >= ALLOWED_CHECK_SECONDS:
                # A tick with nothing new still wakes idle watchers for their re-check.
                self._publish(items)
                ticked = now
            if not self._cursors:
                self._on_close(self)
                return
            await asyncio.sleep(POLL_SECONDS)

    def _close_after(self, items: list[Item], final: Item) -> None:
        self._log.extend(items)
        self._close(final)


class StreamHub:
    """The app's feeds, one per watched job (lives in the app's event loop)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._feeds: dict[int, JobFeed] = {}

    def _forget(self, feed: JobFeed) -> None:
        if self._feeds.get(feed.job_id) is feed:
            del self._feeds[feed.job_id]

    def feeds(self) -> int:
        """How many jobs are being polled now (tests, diagnostics)."""
        return len(self._feeds)

    async def watch(
        self,
        job_id: int,
        *,
        after_seq: int,
        still_allowed: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[bytes]:
        """One watcher's stream, SSE-encoded: the current status, the metrics after
        `after_seq` (SSE id = seq) and status changes, until a terminal status. What
        was published while the watcher was writing goes out as one chunk.
        `still_allowed` (service.api.stream_guard) is asked while live, at least
        every ALLOWED_CHECK_SECONDS; False closes the stream."""
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._feeds[job_id] = JobFeed(self.sessions, job_id, on_close=self._forget)
        cursor = feed.join()
        try:
            while feed.status is None and not feed.done:
                await feed.changed()
            status = feed.status
            if status is None:  # the feed failed before its first read
                return
            # Read together, with no await in between (see the module docstring).
            head_seq, cursor.pos = feed.head_seq, feed.end
            yield encode(status_message(status))
            ended = status.status in TERMINAL
            last_seq = after_seq
            # After a terminal status every metric is stored: read them all.
            upto = None if ended else head_seq
            async for page in self._stored(job_id, after=last_seq, upto=upto):
                yield b"".join(encode(metric_message(m)) for m in page)
                last_seq = page[-1].seq
            while not ended:
                if still_allowed is not None and not await still_allowed():
                    return
                items = feed.take(cursor)
                if not items:
                    if feed.done:  # the feed stopped without a terminal status
                        return
                    await feed.changed()
                    continue
                chunk = bytearray()
                for item in items:
                    if item.seq and item.seq <= last_seq:
                        continue  # the client's Last-Event-ID is ahead of the feed
                    chunk += item.data
                    last_seq = item.seq or last_seq
                    if item.last:
                        ended = True
                        break
                if chunk:
                    yield bytes(chunk)
        finally:
            feed.leave(cursor)

    async def _stored(
        self, job_id: int, *, after: int, upto: int | None
    ) -> AsyncIterator[list[Metric]]:
        """Pages of stored metrics after `after` (up to `upto`, if given)."""
        while upto is None or after < upto:
            page = await run_in_threadpool(self._page, job_id, after)
            wanted = [m for m in page if upto is None or m.seq <= upto]
            if wanted:
                yield wanted
                after = wanted[-1].seq
            if len(wanted) < BATCH:
                return

    def _page(self, job_id: int, after: int) -> list[Metric]:
        with read_transaction(self.sessions) as session:
            return metrics_after(session=session, job_id=job_id, after_seq=after, limit=BATCH)
