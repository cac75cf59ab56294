"""A running attempt's lease: renewed every heartbeat_seconds on its own thread from
the claim until the final status is written. The reply says whether a cancel was
asked for, so a cancel is noticed at the next beat. While the store is unreachable
the beat is retried with backoff (workers.store_writer), so the lease is renewed as
soon as the store answers again; only the fencing check (StaleLease) ends it."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from service.errors import StaleLease
from service.store import attempts
from workers.store_writer import RetryingWriter, StoreUnavailable

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        job_id: int,
        token: str,
        lease_seconds: float,
        heartbeat_seconds: float,
        default_max_job_hours: float,
    ) -> None:
        self.job_id = job_id
        self.token = token
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.default_max_job_hours = default_max_job_hours  # the time limit is store-side
        self.lost = threading.Event()  # this attempt's lease ended (`lost_reason` says how)
        self.lost_reason = ""
        self.cancel_requested = threading.Event()
        self._ended = threading.Event()
        self._wake = threading.Event()
        self.writer = RetryingWriter(
            sessions, give_up_seconds=float("inf"), name=f"job {job_id} heartbeat", wake=self._wake
        )
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the final status was written, or the run gave up)."""
        self._ended.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._ended.wait(self.heartbeat_seconds):
            try:
                reply = self.writer.write(
                    lambda s: attempts.heartbeat(
                        session=s,
                        job_id=self.job_id,
                        token=self.token,
                        lease_seconds=self.lease_seconds,
                        default_max_job_hours=self.default_max_job_hours,
                    ),
                    abort=lambda: "the run ended" if self._ended.is_set() else None,
                )
            except StaleLease as exc:
                # The store says why: another attempt holds it, the reaper ended it, or
                # it was deleted (the run raises with it, and the worker logs it).
                self.lost_reason = str(exc)
                self.lost.set()
                return
            except StoreUnavailable:
                return  # the run ended while the store was away
            except Exception:
                log.exception("job %s: heartbeat failed", self.job_id)
                continue
            if reply.cancel_requested:
                self.cancel_requested.set()
