"""Running one claimed job: start its gang on Ray, stream its events into the store
(metrics batched, checkpoints recorded, lease renewed, cancel noticed), and write
the final status. Every store write presents the attempt's fencing token."""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from service.artifacts import artifact_url, remove_quietly
from service.errors import StaleLease
from service.schemas.node_fit import NodeShape
from service.schemas.resolved import ResolvedSpec
from service.settings import Settings
from service.store import attempts
from service.store.attempts import ClaimedJob
from workers.event_writes import store_events
from workers.final_write import AttemptEnd, FinalWrite
from workers.job_outcome import (
    END,
    Events,
    Progress,
    ReaderOutcome,
    StallWatch,
    drain,
    ended,
    failure_reason,
    read_events,
    run_end,
)
from workers.lease_keeper import LeaseKeeper
from workers.own_gangs import OwnGang, held_by, own_gang
from workers.ray_job import JobEvent, RayJob
from workers.resume import (
    DatasetChanged,
    resume_point,
    start_with_fallback,
    uploaded_datasets,
)
from workers.store_writer import RetryingWriter, StoreUnavailable
from workers.warm_pool import WarmPool

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
# A cancelled job on warm actors is asked to stop at its round's end and is given this
# long to: its actors then go back to the pool, and the next job (a pruned sweep
# trial's successor) starts on them instead of processes that import torch (≈ 4.5 s
# each). A job whose round takes longer has its actors killed, as without the pool.
CANCEL_STOP_SECONDS = 2.0


class JobRun:
    def __init__(
        self,
        claimed: ClaimedJob,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        on_exit: Callable[[], None] = lambda: None,
        on_reserved: Callable[[], None] = lambda: None,
        warm_pool: WarmPool | None = None,
    ) -> None:
        self.claimed, self.warm_pool, self.settings = claimed, warm_pool, settings
        self.sessions, self.on_exit, self.on_reserved = sessions, on_exit, on_reserved
        self.spec = ResolvedSpec.model_validate(claimed.spec)
        self.progress = Progress()
        self.stop_requested = threading.Event()  # a stopping dispatcher: hand back now
        # Set by a draining dispatcher: end after the current round, with a checkpoint,
        # and hand the job back without using an attempt.
        self.drain_requested = threading.Event()
        # Set once the gang's placement group holds its resources (or the start
        # failed), before its actors start; `on_reserved` is called then too.
        self.gang_reserved = threading.Event()
        self._placed_on: dict[str, NodeShape] = {}  # what it holds on each node, once placed
        self._end = AttemptEnd(claimed, rounds=self.spec.schedule.rounds, progress=self.progress)
        # Store writes retry through short outages (workers.store_writer); the events
        # that arrive meanwhile wait, in order, in the reader's queue (the buffer).
        self._writer = RetryingWriter(
            sessions, give_up_seconds=settings.store_outage_seconds, name=f"job {claimed.job_id}"
        )
        self._lease = LeaseKeeper(
            sessions,
            job_id=claimed.job_id,
            token=claimed.fencing_token,
            lease_seconds=settings.lease_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
            default_max_job_hours=settings.default_max_job_hours,
        )

    @property
    def store_retries(self) -> int:
        """Store writes retried after a transient failure (an outage was ridden out)."""
        return self._writer.retries + self._lease.writer.retries

    @property
    def job_id(self) -> int:
        return self.claimed.job_id

    def run(self) -> None:
        try:
            self._run()
        except StaleLease as exc:
            # Not always a takeover: the reaper may have ended the job, or its owner
            # deleted it once finished. The store's message says which (it names the
            # job); this attempt stops.
            log.warning("lease lost, this attempt stops: %s", exc)
        except DatasetChanged as exc:  # the data it was checked against is gone
            self._fail(str(exc), retryable=False)
        except StoreUnavailable as exc:
            # Nothing more can be written: the lease runs out and the reaper requeues
            # the job, which resumes from its newest recorded checkpoint.
            log.error("job %s: attempt abandoned: %s", self.job_id, exc)
        except Exception:
            log.exception("job %s: dispatcher error", self.job_id)
            self._fail("dispatcher error (see the dispatcher's log)", retryable=True)
        finally:
            self._reserved()
            self.on_exit()

    def _run(self) -> None:
        claimed = self.claimed
        events: Events = queue.Queue()
        outcome = ReaderOutcome()
        # Renewed from the claim on: a gang start (torch imports) can outlast a lease,
        # and so can the start's reads while the store is away.
        self._lease.start()
        gang: RayJob | None = None
        start_read = functools.partial(self._writer.write, abort=self._abort_reason)
        try:
            try:
                # The start's reads ride a store outage as the writes do, and a file
                # that cannot be read (a permission, an NFS blip) is the start's error,
                # retried: both failed the attempt "dispatcher error" (reviews).
                datasets = uploaded_datasets(self.spec, run=start_read)
                gang = RayJob(
                    self.spec,
                    job_key=f"{claimed.job_id}",
                    artifacts_url=artifact_url(self.settings.artifacts_url, ""),
                    datasets=datasets,
                    attempt=claimed.attempt,
                    pool=self.warm_pool,
                    memory=claimed.memory,
                    artifacts_outage_seconds=self.settings.store_outage_seconds,
                )
                resume = resume_point(self.claimed, run=start_read, write=self._writer.write)
                start_with_fallback(
                    gang,
                    claimed,
                    resume,
                    ready_timeout_s=self.settings.gang_ready_seconds,
                    on_placed=functools.partial(self._placed, gang),
                    run=start_read,
                    write=self._writer.write,
                )
                started = True
            except (StoreUnavailable, StaleLease, DatasetChanged):
                raise  # the store's own ends and a changed dataset: run() handles them
            except Exception as exc:  # placement timeout, actor start failure, bad checkpoint
                started = False
                reason = failure_reason(exc)
                final_write = self._end.failure(f"could not start the gang: {reason}", True)
            finally:
                self._reserved()
            if started:
                assert gang is not None
                reader = threading.Thread(
                    target=read_events, args=(gang, events, outcome), daemon=True
                )
                reader.start()
                final_write = self._supervise(gang, events, outcome)
            # The final status is written once the gang's actors and placement group
            # are gone, so "cancelled" / "failed" / "succeeded" means the resources are
            # free. The lease is kept until then: the final write may wait out an outage.
            # Pooled actors hold no resources: they are reset and handed back after it.
            if gang is not None:  # None: the start failed before there was one
                gang.free_resources()
            status, error = self._writer.write(
                lambda s: ended(final_write(s)), abort=self._abort_reason
            )
            # The dispatcher's log says how each attempt ended and why (queued = a
            # retry or handed back), so an operator reading it needs no query.
            how = f"{status} ({error or self._end.reason})" if error or self._end.reason else status
            level = logging.WARNING if self._end.failed else logging.INFO
            log.log(level, "job %s: attempt %s ended: %s", self.job_id, claimed.attempt, how)
        finally:
            # Even when the gang's stop raises (Ray's GCS away): a keeper left running
            # renewed the lease of a job with nothing behind it for good (a review).
            try:
                if gang is not None:
                    gang.stop()
            finally:
                self._lease.stop()

    def gang(self) -> OwnGang:
        """What this job's gang holds, and where once placed (the dispatcher's room)."""
        return own_gang(self.spec, self.claimed.memory, self._placed_on)

    def _placed(self, gang: RayJob) -> None:
        self._placed_on = {node: held_by(bundles) for node, bundles in gang.placed_on.items()}
        self._reserved()

    def _reserved(self) -> None:  # twice is harmless: a poke of the dispatcher's loop
        self.gang_reserved.set()
        self.on_reserved()

    def _abort_reason(self) -> str | None:
        """Why buffered writes should stop being retried, or None to keep trying."""
        if self._lease.lost.is_set():
            return "the lease was lost while the store was unreachable"
        if self.stop_requested.is_set():
            return "the dispatcher is shutting down while the store is unreachable"
        return None

    def _supervise(self, gang: RayJob, events: Events, outcome: ReaderOutcome) -> FinalWrite:
        """Stream events into the store until the run ends; returns the final write."""
        draining = False
        cancel_by: float | None = None  # a cancelled job's stop is waited for until then
        watch = StallWatch(self.settings.stall_seconds, self.settings.gang_ready_seconds)
        while True:
            if self.drain_requested.is_set() and not draining:
                draining = True
                gang.request_stop(checkpoint=cancel_by is None)  # a cancelled job needs none
            finished = outcome.done or outcome.error is not None
            batch = drain(events, timeout=0.0 if finished else FLUSH_SECONDS)
            if batch:
                watch.heard()
            # Checked before the flush (waiting out a store outage is not the gang's
            # silence), and only while the gang still runs.
            stalled = watch.stalled(last_round=self.progress.last_round)
            if stalled and not (outcome.done or outcome.error or events.qsize()):
                return self._end.failure(stalled, True)
            self._flush(
                [event for event in batch if event is not END],
                abort=lambda: self._buffer_full(events),
            )
            if self._lease.lost.is_set():
                raise StaleLease(self._lease.lost_reason)
            if finished and events.empty():
                break
            if self.stop_requested.is_set():
                return self._end.release("the dispatcher shut down")
            if self._lease.cancel_requested.is_set():
                if cancel_by is None and gang.hands_back and not draining:
                    gang.request_stop(checkpoint=False)
                    cancel_by = time.monotonic() + CANCEL_STOP_SECONDS
                if cancel_by is None or time.monotonic() >= cancel_by:
                    return self._end.close(attempts.acknowledge_cancel)
        end = run_end(
            outcome,
            self.progress,
            self.spec.schedule.rounds,
            cancelled=cancel_by is not None,
            draining=draining,
        )
        if end.closing_error is not None:
            log.warning("job %s: the gang failed as it closed: %s", self.job_id, end.closing_error)
        if end.write == "fail":
            return self._end.failure(end.reason, end.retryable)
        if end.write == "release":
            return self._end.release(end.reason)
        return self._end.close(getattr(attempts, end.write))

    def _buffer_full(self, events: Events) -> str | None:
        waiting, bound = events.qsize(), self.settings.store_buffer_events
        if waiting > bound:
            return f"{waiting} events waited for the store (the buffer holds {bound})"
        return self._abort_reason()

    def _flush(
        self, batch: list[JobEvent], *, abort: Callable[[], str | None] = lambda: None
    ) -> None:
        if not batch:
            return
        for event in batch:
            self.progress.record(event)
        token, attempt = self.claimed.fencing_token, self.claimed.attempt
        keep = self.settings.checkpoints_keep
        pruned = self._writer.write(
            lambda session: store_events(
                session=session,
                job_id=self.job_id,
                token=token,
                attempt=attempt,
                batch=batch,
                checkpoints_keep=keep,
            ),
            abort=abort,
        )
        for uri in pruned:  # retention: only after the rows are gone
            remove_quietly(uri, location=self.settings.artifacts_url)

    def _fail(self, reason: str, *, retryable: bool) -> None:
        try:
            self._writer.write(self._end.failure(reason, retryable), abort=self._abort_reason)
        except StoreUnavailable as exc:
            log.error("job %s: could not record failure %r: %s", self.job_id, reason, exc)
        except StaleLease:
            log.warning("job %s: lease lost before recording failure: %s", self.job_id, reason)
