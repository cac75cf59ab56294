"""When a dispatcher may reap expired leases: not for a lease period after it has
come back from a store outage.

During an outage every lease's heartbeat fails too, so leases run out in the
database's eyes while their jobs train on, riding the outage out (their writes wait
in order: workers.store_writer). When the store answers again, the heartbeats
renew those leases within a backoff (≤ 2 s) — but every dispatcher's maintenance
reaps every 2 s, so each healthy job was requeued or not by a race, and lost one of
its attempts and the rounds since its checkpoint when the reaper won (a review,
2026-12-06: a PostgreSQL failover of 30 to 60 s would requeue healthy jobs). A
dispatcher whose loop could not reach the store for `min_outage_seconds` or more
reaps nothing until a lease period after the store answered it again: the leases
still expired then belong to dispatchers that did not come back.

Shorter failures (one SQLite "database is locked" past its busy timeout) cost no
renewal and start no quiet period, so a store that is often briefly busy never
stops the reaper for good. A dispatcher cut off alone (a partition) is not helped:
the others saw no outage and reap its jobs after a lease, as they should; it learns
so at its first write that reaches the store again (StaleLease)."""

from __future__ import annotations

import time
from collections.abc import Callable


class ReapGrace:
    def __init__(
        self,
        lease_seconds: float,
        min_outage_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease_seconds = lease_seconds
        self.min_outage_seconds = min_outage_seconds
        self._clock = clock
        self._failing_since: float | None = None  # the streak of store failures now
        self._quiet_until = float("-inf")

    def store_failed(self) -> None:
        """The loop could not reach the store (loop_errors.store_unreachable)."""
        if self._failing_since is None:
            self._failing_since = self._clock()

    def store_answered(self) -> None:
        """A turn of the loop reached the store; ends a streak of failures."""
        if self._failing_since is None:
            return
        now = self._clock()
        if now - self._failing_since >= self.min_outage_seconds:
            self._quiet_until = now + self.lease_seconds
        self._failing_since = None

    def may_reap(self) -> bool:
        """False during a streak of failures (the turn that first reaches the store
        again is still in it) and for a lease period after an outage."""
        return self._failing_since is None and self._clock() >= self._quiet_until
