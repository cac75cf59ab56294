"""The sweep controller's memory of sweeps that had nothing to act on: a step whose
inputs (service.store.sweep_idle) are what the last full step of the sweep saw, and
that could only watch, is skipped — one narrow read a poll instead of the step's
five write transactions. The inputs are read *before* a step: a change made during
or after it differs from them, so the next poll steps again."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable

from sqlalchemy.orm import Session, sessionmaker

from service.store.db import read_transaction
from service.store.sweep_idle import watch_only_inputs

# A full step at least this often all the same (a change no input shows).
FULL_STEP_SECONDS = 30.0


class IdleSweeps:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        full_step_seconds: float = FULL_STEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.full_step_seconds = full_step_seconds
        self.clock = clock
        self._stepped: dict[int, tuple[Hashable, float]] = {}  # inputs, when stepped
        self._reading: dict[int, Hashable | None] = {}  # inputs of the step under way

    def unchanged(self, sweep_id: int) -> bool:
        """True: skip this poll's step of the sweep. Otherwise its inputs are kept for
        `stepped`, once the step has run."""
        with read_transaction(self.sessions) as session:
            inputs = watch_only_inputs(session=session, sweep_id=sweep_id)
        last = self._stepped.get(sweep_id)
        if (
            inputs is not None
            and last is not None
            and last[0] == inputs
            and self.clock() - last[1] < self.full_step_seconds
        ):
            return True
        self._reading[sweep_id] = inputs
        return False

    def stepped(self, sweep_id: int) -> None:
        """The sweep's step ran whole, on the inputs `unchanged` read before it."""
        inputs = self._reading.pop(sweep_id, None)
        if inputs is None:
            self._stepped.pop(sweep_id, None)
        else:
            self._stepped[sweep_id] = (inputs, self.clock())

    def not_stepped(self, sweep_id: int) -> None:
        """No step ran (its lease held elsewhere, or it failed): nothing is known."""
        self._reading.pop(sweep_id, None)
        self._stepped.pop(sweep_id, None)

    def keep_only(self, sweep_ids: Iterable[int]) -> None:
        active = set(sweep_ids)
        for gone in set(self._stepped) - active:
            del self._stepped[gone]
