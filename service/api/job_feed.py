"""One watched job's SSE feed: a store poller (job_stream.JobStream) whose messages,
encoded once, go into a log shared by all of the job's watchers (see
service.api.stream_hub for how a watcher follows it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from service.api.job_stream import (
    BATCH,
    JobStream,
    Message,
    merge,
    status_message,
)
from service.errors import NotFound
from service.schemas.jobs import StatusEvent
from service.store.models import TERMINAL

log = logging.getLogger(__name__)

# One poll per job, whatever the number of watchers: short enough that a record
# reaches its watchers well within a quarter second. On PostgreSQL a feed reads when
# the store NOTIFYs (service.api.feed_listener) and polls only as a safety net.
POLL_SECONDS = 0.1
NOTIFIED_POLL_SECONDS = 1.0
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
class Cursor:
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
        notified: Callable[[], bool] = lambda: False,
    ) -> None:
        """`notified()`: whether the store's notifications reach `poke` now."""
        self.job_id = job_id
        self._notified = notified
        self._poked = asyncio.Event()
        self._stream = JobStream(sessions, job_id=job_id, after_seq=0)
        self._cursors: set[Cursor] = set()
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

    def join(self) -> Cursor:
        cursor = Cursor()
        self._cursors.add(cursor)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return cursor

    def leave(self, cursor: Cursor) -> None:
        self._cursors.discard(cursor)

    def poke(self) -> None:
        """The job has something new: read the store now."""
        self._poked.set()

    async def _until_poked(self) -> None:
        timeout = NOTIFIED_POLL_SECONDS if self._notified() else POLL_SECONDS
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poked.wait(), timeout)
        self._poked.clear()  # a poke during the next read sets it again

    async def changed(self) -> None:
        """Until the next publication (or tick)."""
        await self._wake.wait()

    def take(self, cursor: Cursor) -> list[Item]:
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
            await self._until_poked()

    def _close_after(self, items: list[Item], final: Item) -> None:
        self._log.extend(items)
        self._close(final)
