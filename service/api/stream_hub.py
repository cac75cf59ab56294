"""SSE fan-out: one store poller per watched job, shared by all of its watchers.

A JobFeed (service.api.job_feed) reads the store for its job (job_stream.JobStream:
status events before metrics) when the store NOTIFYs that the job changed
(PostgreSQL, service.api.feed_listener; else every POLL_SECONDS), and appends each
new message, encoded once, to one log shared by every watcher; each watcher keeps
its own position in it. One wake-up (an asyncio.Event per publication) releases
every waiting watcher, which then takes everything past its position as one chunk:
no per-watcher queue, timer or copy of the message.

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
terminal status gets that status, the backlog, then the status again (last, as a
live watcher gets it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.api.feed_listener import FeedListener
from service.api.job_feed import JobFeed, encode
from service.api.job_stream import BATCH, metric_message, status_message
from service.store.db import read_transaction
from service.store.metrics import metrics_after
from service.store.models import TERMINAL, Metric


class StreamHub:
    """The app's feeds, one per watched job (lives in the app's event loop)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._feeds: dict[int, JobFeed] = {}
        self._listener: FeedListener | None = None  # PostgreSQL, from the first watcher

    def _listen(self) -> None:
        engine = self.sessions.kw["bind"]
        if self._listener is None and engine.dialect.name == "postgresql":
            self._listener = FeedListener(
                engine.url.render_as_string(hide_password=False),
                asyncio.get_running_loop(),
                poke=self._poke,
                poke_all=self._poke_all,
                watched=self._feeds.__contains__,
            )

    def _notified(self) -> bool:
        return self._listener is not None and self._listener.listening

    def _poke(self, job_id: int) -> None:
        feed = self._feeds.get(job_id)
        if feed is not None:
            feed.poke()

    def _poke_all(self) -> None:
        for feed in self._feeds.values():
            feed.poke()

    def close(self) -> None:
        """Stop listening (the app's shutdown)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None

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
        `still_allowed` (service.api.stream_guard) is asked before each page of the
        stored backlog is sent (after it is read) and while live, at least every
        ALLOWED_CHECK_SECONDS; False closes the stream."""
        self._listen()
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._feeds[job_id] = JobFeed(
                self.sessions, job_id, on_close=self._forget, notified=self._notified
            )
        cursor = feed.join()
        try:
            while feed.status is None and not feed.done:
                await feed.changed()
            status = feed.status
            if status is None:  # the feed failed before its first read
                return
            # Read together, with no await in between (see the module docstring).
            head_seq, cursor.pos = feed.head_seq, feed.end
            ended = status.status in TERMINAL
            yield encode(status_message(status))
            last_seq = after_seq
            # After a terminal status every metric is stored: read them all.
            upto = None if ended else head_seq
            async for page in self._stored(job_id, after=last_seq, upto=upto):
                # Asked between pages too: a slow reader of a long backlog (a finished
                # job's) read for minutes after its user was disabled (a review).
                if still_allowed is not None and not await still_allowed():
                    return
                yield b"".join(encode(metric_message(m)) for m in page)
                last_seq = page[-1].seq
            if ended:
                # DESIGN: the current status first, and the stream closes after a
                # terminal one. A finished job's backlog sits between the two, so its
                # status is sent again last: a client that stops reading at a terminal
                # status has every metric by then.
                yield encode(status_message(status))
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
