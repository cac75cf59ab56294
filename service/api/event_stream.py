"""The SSE response every stream route answers with: sse_starlette's, made cheap per
send and closed when its client stops reading.

Without a send timeout sse_starlette still enters a cancel scope around every send;
with 1000 watchers of a job, entering and leaving it cost about as much as the write
itself (issue 13's profile), so a send here is a plain `await send(...)`. Nothing
then bounds a send to a client that stopped reading (a laptop gone to sleep with a
dashboard tab open, a NAT entry dropped: TCP gives up after ≈ 15 minutes): uvicorn's
send waits for the socket to drain, the stream holds its user's stream slot (the
per-user cap's 429 for the tabs opened after waking) and its feed's backlog in
memory, and a disabled user's stream stays open, the generator stuck at its yield
(a review, 2026-12-06). One watchdog task per stream, waking every
STALL_CHECK_SECONDS, closes a stream whose oldest unfinished send has waited
SEND_STALL_SECONDS: a live client reads within a ping interval (15 s), and a client
that comes back reconnects with Last-Event-ID and loses nothing. The slot, the feed
and the generator go at once; the socket itself is uvicorn's, closed once what it
holds is flushed or TCP gives up (ASGI has no abort), and holds no more than
uvicorn's buffer meanwhile.

`on_close` runs once the response is over, however it ends (the stream_guard slot's
release): here, not in the stream's generator, whose `finally` never runs when the
client is gone before sse_starlette starts it."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, Callable
from contextvars import ContextVar
from typing import Any

import anyio
from sse_starlette import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger(__name__)

SEND_STALL_SECONDS = 60.0
STALL_CHECK_SECONDS = 5.0

# Set in a request's context once the watchdog closed its stream: uvicorn then logs
# "ASGI callable returned without completing response." at ERROR for it (the stream
# is left unfinished on purpose, its client reading nothing), which the filter below
# drops; this module has logged the close at INFO already.
_CLOSED_STALLED: ContextVar[bool] = ContextVar("lagtrain_closed_stalled", default=False)
UNFINISHED_RESPONSE = "ASGI callable returned without completing response."


class _StalledCloseIsNoError(logging.Filter):
    hidden = 0  # how many uvicorn errors it dropped (tests, diagnostics)

    def filter(self, record: logging.LogRecord) -> bool:
        if _CLOSED_STALLED.get() and record.getMessage() == UNFINISHED_RESPONSE:
            _StalledCloseIsNoError.hidden += 1
            return False
        return True


logging.getLogger("uvicorn.error").addFilter(_StalledCloseIsNoError())


def stalled_closes_hidden() -> int:
    """uvicorn's errors for streams the watchdog closed, dropped so far."""
    return _StalledCloseIsNoError.hidden


class EventStream(EventSourceResponse):
    def __init__(
        self, content: AsyncIterable[Any], *, on_close: Callable[[], None] | None = None
    ) -> None:
        super().__init__(content)
        self.on_close = on_close
        self._sends: dict[object, float] = {}  # each unfinished send: when it began
        self._stalled = False  # the watchdog closed it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watched(message: Message) -> None:
            # Every send, sse_starlette's closing one (not sent through
            # `_send_with_timeout`) included: it is the one that waits when the last
            # chunk filled uvicorn's buffer.
            key = object()
            self._sends[key] = time.monotonic()
            try:
                await send(message)
            finally:
                del self._sends[key]

        try:
            async with anyio.create_task_group() as stream:
                stream.start_soon(self._close_when_stalled, stream.cancel_scope)
                await super().__call__(scope, receive, watched)
                stream.cancel_scope.cancel()  # over: the watchdog with it
        finally:
            if self._stalled:  # here, in the request's own task: uvicorn's, below
                _CLOSED_STALLED.set(True)
            if self.on_close is not None:
                self.on_close()

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is not None:
            await super()._send_with_timeout(send, message)
            return
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True  # as sse_starlette's: no closing send after
            raise

    async def _close_when_stalled(self, stream: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(STALL_CHECK_SECONDS)
            oldest = min(self._sends.values(), default=None)
            if oldest is not None and time.monotonic() - oldest >= SEND_STALL_SECONDS:
                log.info(
                    "closing an event stream whose client read nothing for %.0f s",
                    time.monotonic() - oldest,
                )
                self._send_interrupted = self._stalled = True
                stream.cancel()
                return
