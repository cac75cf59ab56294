"""Containment for SSE streams: a per-user cap on concurrent streams (429), and an
open stream's periodic re-check of the token that opened it (revoked, expired, or its
user disabled -> the stream closes). Kept apart from the stream's polling
(service.api.stream_hub), which only asks `still_allowed()` while a watcher waits.

The cap counts the streams of this server process: with several API processes
behind a balancer each enforces it separately (documented in docs/operations.md).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.errors import QuotaExceeded
from service.store.db import read_transaction
from service.store.users import token_still_live

T = TypeVar("T")


class StreamSlots:
    """Open streams per user in this process."""

    def __init__(self) -> None:
        self._open: Counter[int] = Counter()
        self._lock = threading.Lock()

    def acquire(self, user_id: int, cap: int) -> None:
        with self._lock:
            if self._open[user_id] >= cap:
                raise QuotaExceeded(
                    f"max_streams_per_user: you have {self._open[user_id]} open event "
                    f"streams, the limit is {cap}; close one first"
                )
            self._open[user_id] += 1

    def release(self, user_id: int) -> None:
        with self._lock:
            self._open[user_id] -= 1
            if self._open[user_id] <= 0:
                del self._open[user_id]

    def open_streams(self, user_id: int) -> int:
        with self._lock:
            return self._open[user_id]


class TokenRecheck:
    """`await recheck()` is False once the token is no longer accepted; it asks the
    database at most once every `every_seconds`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        token_id: int,
        every_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.token_id = token_id
        self.every_seconds = every_seconds
        self.clock = clock
        self.checked_at = clock()

    def _live(self) -> bool:
        with read_transaction(self.sessions) as session:
            return token_still_live(session=session, token_id=self.token_id)

    async def __call__(self) -> bool:
        now = self.clock()
        if now - self.checked_at < self.every_seconds:
            return True
        self.checked_at = now
        return await run_in_threadpool(self._live)
