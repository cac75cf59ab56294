"""SSE fan-out: one store poller per watched job, shared by all of its watchers.

A JobFeed polls the store for its job (job_stream.JobStream: status events before
metrics) and puts each new message, encoded once, into every watcher's queue. A
watcher's queue always starts with the feed's `Start`: the status and the highest
seq the feed had reached when the watcher joined. The watcher sends that status,
reads the metrics it missed up to that seq from the store itself (Last-Event-ID may
lie far back), then follows its queue. Queue order is the only synchronisation, so
nothing falls between the catch-up and the live messages, and nothing is sent twice.

The feed ends after broadcasting a terminal status (after the last metrics), when
its last watcher leaves, or, on a store error, by closing every watcher's stream
(clients reconnect with Last-Event-ID). A watcher who joins after a terminal status
gets it first and then the whole backlog, as the per-stream poller did before.
"""

from __future__ import annotations

import asyncio
import logging
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
class Start:
    status: StatusEvent
    head_seq: int  # metrics up to here come from the store, later ones from the feed


@dataclass(frozen=True)
class Item:
    data: bytes  # the SSE event, encoded once for all watchers
    seq: int = 0  # a metric's seq; 0 for a status
    last: bool = False  # the terminal status: the stream ends after it


# None: the feed stopped without a terminal status (store error); the stream closes.
Queued = Start | Item | None


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
        self._queues: set[asyncio.Queue[Queued]] = set()
        self._status: StatusEvent | None = None  # None until the first read
        self._on_close = on_close
        self._task: asyncio.Task[None] | None = None

    def add(self, queue: asyncio.Queue[Queued]) -> None:
        self._queues.add(queue)
        if self._status is not None:
            queue.put_nowait(Start(self._status, self._stream.last_seq))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, queue: asyncio.Queue[Queued]) -> None:
        self._queues.discard(queue)

    def _broadcast(self, item: Queued) -> None:
        for queue in self._queues:
            queue.put_nowait(item)

    def _close(self, final: Queued) -> None:
        self._on_close(self)
        self._broadcast(final)

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
        self._status = status
        self._broadcast(Start(status, self._stream.last_seq))
        if status.status in TERMINAL:
            self._on_close(self)
            return
        pending: StatusEvent | None = None
        while True:
            changes, metrics, terminal, newest = await run_in_threadpool(self._stream.poll)
            # From here to the broadcast nothing awaits: a watcher joining now gets
            # a Start that matches exactly what the queues already hold.
            pending = terminal or pending
            self._status = pending or newest or self._status
            for message in merge(changes, metrics):
                self._broadcast(_item(message))
            if len(metrics) == BATCH:
                continue  # drain the backlog before a terminal status and before waiting
            if pending is not None:
                self._close(Item(encode(status_message(pending)), last=True))
                return
            if not self._queues:
                self._on_close(self)
                return
            await asyncio.sleep(POLL_SECONDS)


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
        queued up while the watcher was writing goes out as one chunk. `still_allowed`
        (service.api.stream_guard) is asked while live; False closes the stream."""
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._feeds[job_id] = JobFeed(self.sessions, job_id, on_close=self._forget)
        queue: asyncio.Queue[Queued] = asyncio.Queue()
        feed.add(queue)
        try:
            start = await queue.get()  # always first in the queue (or None)
            if not isinstance(start, Start):
                return
            yield encode(status_message(start.status))
            ended = start.status.status in TERMINAL
            last_seq = after_seq
            # After a terminal status every metric is stored: read them all.
            upto = None if ended else start.head_seq
            async for page in self._stored(job_id, after=last_seq, upto=upto):
                yield b"".join(encode(metric_message(m)) for m in page)
                last_seq = page[-1].seq
            while not ended:
                if still_allowed is not None and not await still_allowed():
                    return
                try:
                    first = await asyncio.wait_for(queue.get(), ALLOWED_CHECK_SECONDS)
                except TimeoutError:
                    continue
                items = [first]
                while not queue.empty():
                    items.append(queue.get_nowait())
                chunk = bytearray()
                for item in items:
                    if not isinstance(item, Item):  # None: the feed stopped
                        ended = True
                        break
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
            feed.remove(queue)

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
