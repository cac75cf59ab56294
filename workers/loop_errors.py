"""A long-running loop's failures (the dispatcher's, the sweep controller's), logged
so that an outage reads as one story: the traceback once, then a line per retry, then
one line when the loop recovers — not a 110-line traceback every poll of a
17-second database outage."""

from __future__ import annotations

import logging


class LoopErrors:
    def __init__(self, log: logging.Logger, loop: str) -> None:
        self.log = log
        self.loop = loop  # e.g. "dispatcher d1: loop"
        self.in_a_row = 0

    def failed(self, exc: BaseException) -> None:
        self.in_a_row += 1
        if self.in_a_row == 1:
            self.log.error("%s error; retrying", self.loop, exc_info=exc)
            return
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        self.log.warning("%s error again (%d in a row): %s", self.loop, self.in_a_row, first_line)

    def succeeded(self) -> None:
        if self.in_a_row:
            self.log.info("%s recovered after %d errors", self.loop, self.in_a_row)
            self.in_a_row = 0
