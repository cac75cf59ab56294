"""Keeping a sweep step's lease while Optuna is asked for points (a GP's asks grow
with the trials: 100 of them took 100 s here, past the 60 s lease). Before, another
controller took the expired lease, the first then lost its writes, and each took it
from the other in turn for ever, no trial recorded (a review)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from service.store import sweep_steps
from service.store.db import transaction


class StepLease:
    """One step's lease, taken at `taken_at` (the clock's reading when take_step
    returned): renewed once a quarter of it has passed since it was taken or last
    renewed, and asking stopped after a third of it — the rest are asked at the next
    step, so one sweep's long decide holds up the others' steps (one controller steps
    them in turn) for seconds, not minutes."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sweep_id: int,
        token: str,
        *,
        lease_seconds: float,
        taken_at: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.sweep_id = sweep_id
        self.token = token
        self.lease_seconds = lease_seconds
        self.taken_at = self.renewed_at = taken_at
        self.clock = clock

    def renew_if_due(self) -> None:
        """StaleLease if another controller holds the lease now."""
        now = self.clock()
        if now - self.renewed_at > self.lease_seconds / 4:
            with transaction(self.sessions) as session:
                sweep_steps.renew_step(
                    session=session,
                    sweep_id=self.sweep_id,
                    token=self.token,
                    lease_seconds=self.lease_seconds,
                )
            self.renewed_at = now

    def go_on(self) -> bool:
        """study.ask's `go_on`, between two asks: renewed if due; False past a third
        of the lease since it was taken (at least one point is asked a step)."""
        self.renew_if_due()
        return self.clock() - self.taken_at < self.lease_seconds / 3
