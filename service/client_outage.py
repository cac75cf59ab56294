"""How the client's watchers ride out a server that is away for a while (a restart,
a proxy's 502 while it restarts): one rule for a job's event stream and a sweep's
polling, so `watch` and `sweep-watch` give up alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from service.client_base import ApiError

# A reverse proxy's answers while the server behind it restarts.
PROXY_UNAVAILABLE = frozenset({502, 503, 504})


class Outage:
    """Since when the server has failed, and how long to wait before the next try:
    0.5 s, doubling to 5 s; given up once it has failed for `give_up_after` seconds."""

    def __init__(
        self,
        give_up_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.give_up_after = give_up_after
        self._sleep, self._clock = sleep, clock
        self._since: float | None = None
        # The last sign of the server, or when the try under way began: an outage
        # counts from there, not from its report — a read timeout is reported only
        # after its own wait (30-60 s), which gave up at 90-120 s, not 60 (a review).
        self._alive: float | None = None
        self._wait = 0.5

    def trying(self) -> None:
        """A try begins (a request, a stream's connection)."""
        if self._since is None and self._alive is None:
            self._alive = self._clock()

    def over(self) -> None:
        """The server answered: a later failure starts a new outage."""
        self._since, self._wait, self._alive = None, 0.5, self._clock()

    def endure(self, exc: Exception, *, also: frozenset[int] = frozenset()) -> None:
        """Return if `exc` is the server being away (unreachable, a proxy's 502-504,
        or a status in `also`) for less than `give_up_after` so far; else raise it."""
        if not isinstance(exc, httpx.TransportError | ApiError):
            raise exc
        if isinstance(exc, ApiError) and exc.status not in PROXY_UNAVAILABLE | also:
            raise exc
        now = self._clock()
        if self._since is None:
            self._since = self._alive if self._alive is not None else now
        if now - self._since >= self.give_up_after:
            raise exc

    def pause(self) -> None:
        """Wait before the next try, longer each time until the server answers."""
        self._sleep(self._wait)
        self._wait = min(self._wait * 2, 5.0)
