"""The write that ends an attempt (service.store.attempts: succeeded or cancelled,
handed back, failed — retried or final), built once the run knows how it ended and
carried out by the caller through its retrying writer; and why it ended, for the
dispatcher's log. Each write presents the attempt's fencing token and the run's
summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from service.store import attempts
from service.store.attempts import ClaimedJob
from workers.job_outcome import Progress, summary

FinalWrite = Callable[[Session], Any]


class AttemptEnd:
    def __init__(self, claimed: ClaimedJob, *, rounds: int, progress: Progress) -> None:
        self.claimed, self.rounds, self.progress = claimed, rounds, progress
        self.started = time.monotonic()
        self.reason: str | None = None  # why it ended, for the log (a retry has no error)
        self.failed = False  # it ended in an error (retried or final): logged as a warning

    def close(self, write: Callable[..., Any]) -> FinalWrite:
        """The final write of an attempt that finished or was cancelled."""
        job_id, token = self.claimed.job_id, self.claimed.fencing_token
        return lambda s: write(session=s, job_id=job_id, token=token, summary=self._summary(s))

    def release(self, reason: str) -> FinalWrite:
        return self._end(attempts.release, reason)

    def failure(self, reason: str, retryable: bool) -> FinalWrite:
        self.failed = True
        return self._end(attempts.fail, reason, retryable=retryable)

    def _end(self, write: Callable[..., Any], reason: str, **more: Any) -> FinalWrite:
        """The final write ending this attempt for `reason` (logged when it ends)."""
        self.reason = reason
        fields = dict(
            job_id=self.claimed.job_id, token=self.claimed.fencing_token, reason=reason, **more
        )
        return lambda s: write(session=s, summary=self._summary(s), **fields)

    def _summary(self, session: Session) -> dict[str, Any] | None:
        # Given with every end; the store keeps it only when the job ends (a retry or
        # a hand-back leaves the job's summary to the attempt that ends it).
        return summary(
            session,
            job_id=self.claimed.job_id,
            rounds=self.rounds,
            progress=self.progress,
            attempt=self.claimed.attempt,
            wall_s=time.monotonic() - self.started,
        )
