"""When a dispatcher may reap expired leases: not for a lease period after it has
come back from a store outage.

During an outage every lease's heartbeat fails too, so leases run out in the
database's eyes while their jobs train on, riding the outage out (their writes wait
in order: workers.store_writer). When the store answers again, the heartbeats
renew those leases within a backoff (≤ 2 s) — but every dispatcher's maintenance
reaps every 2 s, so each healthy job was requeued or not by a race, and lost one of
its attempts and the rounds since its checkpoint when the reaper won (a review,
2026-12-06: a PostgreSQL failover of 30 to 60 s would requeue healthy jobs). A
dispatcher whose maintenance could not reach the store for half a lease or more
reaps nothing until a lease period after the store answered it again: the leases
still expired then belong to dispatchers that did not come back.

Shorter failures (one SQLite "database is locked" past its busy timeout) expired no
lease and start no quiet period, so a store that is often briefly busy never stops
the reaper for good. A dispatcher cut off alone (a partition) is not helped:
the others saw no outage and reap its jobs after a lease, as they should; it learns
so at its first write that reaches the store again (StaleLease)."""

from __future__ import annotations

import time
from collections.abc import Callable

from workers.loop_errors import store_unreachable
from workers.store_writer import is_transient


def store_outage(exc: BaseException) -> bool:
    """Whether a failed turn of the loop counts as the store away: any failure the
    heartbeat's writer retries (store_writer.is_transient: while it lasts no lease
    is renewed), or a lost connection the loop saw raw (its LISTEN wait's). Before,
    the loop's narrower rule for its log's level (loop_errors.store_unreachable)
    decided, so an outage of too many connections, a full disk or a lock wait let
    the reaper requeue healthy jobs whose heartbeats were still retrying (a review)."""
    return is_transient(exc) or store_unreachable(exc)


class ReapGrace:
    def __init__(
        self,
        lease_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease_seconds = lease_seconds
        # An outage shorter than half a lease expired no lease: each is renewed every
        # heartbeat, and a heartbeat is at most half a lease (Settings checks it).
        self.min_outage_seconds = lease_seconds / 2
        self._clock = clock
        self._reached = clock()  # the store last answered a maintenance then
        self._failing_since: float | None = None  # the outage now, from `_reached`
        self._quiet_until = float("-inf")

    def loop_failed(self, exc: BaseException) -> None:
        """A turn of the loop raised `exc`: an outage of the store if `store_outage`."""
        if store_outage(exc):
            self.store_failed()

    def store_failed(self) -> None:
        """The loop could not reach the store (`store_outage`). The
        outage is counted from the last maintenance that reached it, not from this
        report: a statement to a host gone silent fails only after its timeouts
        (≈ 30 s), when the outage may be nearly over (a review)."""
        if self._failing_since is None:
            self._failing_since = self._reached

    def store_answered(self) -> None:
        """A maintenance reached the store (its transaction committed). Only such
        turns end an outage: a turn that did not touch the store (an idle wait
        whose listener is down, a claim held back while a gang starts) says nothing
        of it (a review)."""
        now = self._clock()
        if self._failing_since is not None and now - self._failing_since >= self.min_outage_seconds:
            self._quiet_until = now + self.lease_seconds
        self._failing_since = None
        self._reached = now

    def may_reap(self) -> bool:
        """False during an outage (the maintenance that first reaches the store again
        is still in it) and for a lease period after one of half a lease or more."""
        return self._failing_since is None and self._clock() >= self._quiet_until
