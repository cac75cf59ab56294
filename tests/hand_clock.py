"""A clock the test moves by hand, for code that takes `clock=` (a monotonic
clock's stand-in: the capacity window, the stall watch)."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
