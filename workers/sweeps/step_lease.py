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


def asking(
    sessions: sessionmaker[Session],
    sweep_id: int,
    token: str,
    *,
    lease_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], bool]:
    """study.ask's `go_on`, between two asks of a step: the lease renewed once a
    quarter of it has passed, and no more asked after a third of it — the rest are
    asked at the next step, so one sweep's long decide holds up the others' steps
    (one controller steps them in turn) for seconds, not minutes."""
    began = renewed = clock()

    def go_on() -> bool:
        nonlocal renewed
        now = clock()
        if now - renewed > lease_seconds / 4:
            with transaction(sessions) as session:
                sweep_steps.renew_step(
                    session=session, sweep_id=sweep_id, token=token, lease_seconds=lease_seconds
                )
            renewed = now
        return now - began < lease_seconds / 3

    return go_on
