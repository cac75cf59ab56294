"""The dispatcher loop (`lagtrain worker`): reap expired leases, fail jobs that can
never fit the cluster, claim the next job whose gang fits the free Ray resources
(or hold them for a job that has waited long: service.store.claim_candidate), and
run it in its own thread. Wakes on PostgreSQL NOTIFY, on SQLite when another
connection committed (PRAGMA data_version), and polls (<= 1 s) besides."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid

import ray
from sqlalchemy.orm import Session, sessionmaker

from service.errors import NotFound
from service.settings import Settings
from service.store.attempts import claim_next, fail, requeue_expired
from service.store.db import transaction
from service.store.dispatchers import upsert_dispatcher
from service.store.jobs import fail_queued
from workers.capacity import CapacityWindow
from workers.held_room import name_unpackable, room_now, with_unplaceable
from workers.job_run import JobRun
from workers.loop_errors import LoopErrors
from workers.own_gangs import OwnGang, OwnGangs
from workers.passed_over import PassedOverJobs
from workers.ray_runtime import cluster_free, cluster_totals
from workers.reap_grace import ReapGrace
from workers.stop_record import hand_back, record_stopped
from workers.too_large import too_large_jobs
from workers.waker import Waker
from workers.warm_pool import WarmPool

log = logging.getLogger(__name__)

MAINTENANCE_SECONDS = 2.0
# How long a stopping dispatcher waits for its jobs to be handed back.
SHUTDOWN_JOIN_SECONDS = 5.0


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        dispatcher_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.id = dispatcher_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.actor = f"dispatcher:{self.id}"  # in the job events it writes
        self.stop_event = threading.Event()
        # By (job, attempt): a job whose lease was lost can be claimed again here while
        # the old attempt's thread still stops; each thread removes only its own.
        self.runs: dict[tuple[int, int], tuple[JobRun, threading.Thread]] = {}
        self._lock = threading.Lock()
        self._waker = Waker(settings.database_url)
        self._last_maintenance = 0.0
        self._drain_deadline: float | None = None  # set once drain() was asked for
        self._drain_signalled: float | None = None  # request_drain()'s deadline, monotonic
        # The last claimed run until its gang holds its resources, and how long the
        # next claim waits for that at most (see _reserving).
        self._starting: tuple[JobRun, float] | None = None
        self.maintenance_runs = 0  # rounds of reaping/failing/registering so far
        # Jobs the claims passed over, their gangs not fitting the free nodes at once.
        self.passed_over = PassedOverJobs()
        self.own_gangs = OwnGangs()  # what the room may count on (capacity.room)
        self._unfit: tuple[int, ...] = ()  # jobs that cannot hold it (held_room)
        # No reaping for a lease after an outage: the heartbeats renew (reap_grace).
        self.reap_grace = ReapGrace(settings.lease_seconds)
        self.capacity = CapacityWindow(
            settings.capacity_window_seconds,
            ceiling_cpus=settings.capacity_ceiling_cpus,
            ceiling_gpus=settings.capacity_ceiling_gpus,
        )
        self.warm_pool = (
            WarmPool(size=settings.warm_pool_size, idle_seconds=settings.warm_pool_idle_seconds)
            if settings.warm_pool_size > 0
            else None
        )

    def run_forever(self) -> None:
        log.info("dispatcher %s started", self.id)
        if self.warm_pool is not None:
            self.warm_pool.prewarm(ray.get_runtime_context().get_node_id())
        errors = LoopErrors(log, f"dispatcher {self.id}: loop")
        exited_cleanly = False  # an exception out of the loop is no clean exit
        try:
            while not self.stop_event.is_set():
                try:
                    if self._drain_signalled is not None and self._drain_deadline is None:
                        self.drain(max(0.0, self._drain_signalled - time.monotonic()))
                    if time.monotonic() - self._last_maintenance >= MAINTENANCE_SECONDS:
                        self._maintain()
                    if self._drain_over():
                        break
                    claimed = (
                        self._drain_deadline is None
                        and not self._reserving()
                        and self._claim_and_start()
                    )
                    if not claimed:
                        # Inside the try: on PostgreSQL the wait reads its LISTEN
                        # connection, which an outage breaks like any statement.
                        self._waker.wait(self.settings.poll_seconds)
                except Exception as exc:
                    # A database or Ray hiccup must not kill the dispatcher: running
                    # jobs keep their own threads; try again after the poll interval.
                    errors.failed(exc)
                    self.reap_grace.loop_failed(exc)
                    self._waker.reset()
                    self.stop_event.wait(self.settings.poll_seconds)
                    continue
                errors.succeeded()
            exited_cleanly = True
        finally:
            self._shutdown(exited_cleanly)

    def stop(self) -> None:
        """Stop now: running jobs go back to the queue at once (no attempt used); the
        rounds since their last checkpoint are trained again."""
        self.stop_event.set()
        self._waker.poke()

    def wake(self) -> None:
        """A job was queued in this process (`server --embedded`): claim now instead
        of at the next poll. Thread-safe and cheap; the submit route calls it."""
        self._waker.poke()

    def _maintain(self) -> None:
        self._last_maintenance = time.monotonic()
        self.maintenance_runs += 1
        if self.warm_pool is not None:
            self.warm_pool.release_idle()
        (total_cpus, total_gpus), node_totals = cluster_totals()  # nodes None: unknown
        (free_cpus, free_gpus), node_frees = cluster_free()
        self.capacity.observe(total_cpus, total_gpus, node_totals or {})
        limit = self.capacity.largest()
        free, gangs = (free_cpus, free_gpus), self._running_gangs()
        room = room_now(self.capacity, free, gangs, node_frees, self.passed_over)
        room, self._unfit = name_unpackable(self.sessions, room, self.settings, self._unfit)
        with transaction(self.sessions) as session:
            requeued = (
                requeue_expired(session=session, actor=f"reaper:{self.id}")
                if self.reap_grace.may_reap()
                else []
            )
            unschedulable = too_large_jobs(
                session=session, window=self.capacity, passed_over=self.passed_over
            )
            for job_id, reason in unschedulable.items():
                with contextlib.suppress(NotFound):  # passed over, then cancelled and deleted
                    fail_queued(session=session, job_id=job_id, actor=self.actor, reason=reason)
            upsert_dispatcher(
                session=session,
                dispatcher_id=self.id,
                hostname=socket.gethostname(),
                resources={
                    "total": {"CPU": total_cpus, "GPU": total_gpus},
                    # What queued jobs are judged against (explain: waits for capacity).
                    "capacity": {"CPU": limit.cpus, "GPU": limit.gpus},
                    **self.capacity.node_report(node_frees),
                    **({"room": room.report()} if room else {}),  # explain's hold
                    "free": {"CPU": free_cpus, "GPU": free_gpus},
                    "running_jobs": len(self.runs),
                    **({"warm_pool": self.warm_pool.report()} if self.warm_pool else {}),
                },
            )
        self.reap_grace.store_answered()  # committed: the store answered this turn
        self.passed_over.judged()  # committed: else judged again at the next turn
        if requeued:
            # Requeued, failed (attempts used up) or cancelled (it was cancelling).
            log.info("reaped jobs with expired leases (see each job's history): %s", requeued)
        for job_id, reason in unschedulable.items():  # committed: in the operator's log too
            log.warning("job %s failed, too large for the cluster: %s", job_id, reason)

    def _claim_and_start(self) -> bool:
        (free_cpus, free_gpus), node_frees = cluster_free()
        judged = node_frees is not None and self.capacity.judges_nodes()
        by_id = node_frees if judged else None
        free_nodes = None if by_id is None else tuple(by_id.values())
        room = self.capacity.room((free_cpus, free_gpus), self._running_gangs(), by_id)
        with transaction(self.sessions) as session:
            claimed = claim_next(
                session=session,
                dispatcher_id=self.id,
                lease_seconds=self.settings.lease_seconds,
                free_cpus=free_cpus,
                free_gpus=free_gpus,
                free_nodes=free_nodes,
                known_unfit=self.passed_over.known_for(free_nodes),
                passed_over=self.passed_over.add,
                quota_defaults=self.settings.quota_defaults(),
                fair_share_window=self.settings.fair_share_window(),
                hold_room_after=self.settings.hold_room_after(),
                room=with_unplaceable(room, self._unfit),
            )
        if claimed is None:
            return False
        log.info("claimed job %s attempt %s", claimed.job_id, claimed.attempt)
        try:
            run = JobRun(
                claimed,
                settings=self.settings,
                sessions=self.sessions,
                on_exit=lambda: self._finished(claimed.job_id, claimed.attempt),
                on_reserved=self._waker.poke,  # the next claim need not wait a poll
                warm_pool=self.warm_pool,
            )
        except ValueError as exc:  # a stored spec this version cannot read
            with transaction(self.sessions) as session:
                fail(
                    session=session,
                    job_id=claimed.job_id,
                    token=claimed.fencing_token,
                    reason=f"the stored spec is not valid for this dispatcher: {exc}"[:500],
                    retryable=False,
                )
            return True
        thread = threading.Thread(target=run.run, name=f"job-{claimed.job_id}", daemon=True)
        with self._lock:
            self.runs[(claimed.job_id, claimed.attempt)] = (run, thread)
            if self._drain_deadline is not None:  # drain() ran while we claimed
                run.drain_requested.set()
        self._starting = (run, time.monotonic() + self.settings.gang_ready_seconds)
        thread.start()
        return True

    def _reserving(self) -> bool:
        """Whether the last claimed gang may still be reserving its resources. Ray's
        free resources only drop once its placement group is ready: claiming before
        that would count the same CPUs twice. The loop goes on meanwhile (heartbeat,
        reaping, drain and stop) — a blocking wait here, up to gang_ready_seconds,
        made the only dispatcher look dead and a drain overrun its bound."""
        if self._starting is None:
            return False
        run, deadline = self._starting
        if run.gang_reserved.is_set() or time.monotonic() >= deadline:
            self._starting = None
            return False
        return True

    def _running_gangs(self) -> list[OwnGang]:
        with self._lock:  # what the room may count on (capacity.room)
            return self.own_gangs.held([run.gang() for run, _ in self.runs.values()])

    def _finished(self, job_id: int, attempt: int) -> None:
        with self._lock:
            if ended := self.runs.pop((job_id, attempt), None):
                self.own_gangs.ended(ended[0].gang())
        self._waker.poke()

    def drain(self, timeout_s: float) -> None:
        """Stop claiming; each running job ends after its current round with a
        checkpoint and goes back to the queue without using an attempt. The loop ends
        when none is left, or after `timeout_s` (then as `stop`)."""
        with self._lock:
            runs = [run for run, _ in self.runs.values()]
            self._drain_deadline = time.monotonic() + timeout_s
        log.info("dispatcher %s: draining %d job(s) (at most %g s)", self.id, len(runs), timeout_s)
        for run in runs:
            run.drain_requested.set()
        self._waker.poke()

    def request_drain(self, timeout_s: float) -> None:
        """drain(timeout_s) from now, started by the loop at its next turn: for a signal
        handler, which runs on the loop's own thread between two of its steps (taking
        the lock there would wait forever on a lock that thread holds)."""
        self._drain_signalled = time.monotonic() + timeout_s

    def _drain_over(self) -> bool:
        if self._drain_deadline is None:
            return False
        with self._lock:
            idle = not self.runs
        return idle or time.monotonic() >= self._drain_deadline

    def _shutdown(self, exited_cleanly: bool) -> None:
        with self._lock:
            runs = list(self.runs.values())
        for run, _ in runs:
            run.stop_requested.set()
        deadline = time.monotonic() + SHUTDOWN_JOIN_SECONDS
        for _, thread in runs:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        for run, thread in runs:
            if thread.is_alive():
                hand_back(self.sessions, run.job_id, run.claimed.fencing_token)
        if exited_cleanly:  # after the hand-back: its jobs are back in the queue
            record_stopped(self.sessions, self.id)
        self._waker.close()
        if self.warm_pool is not None:
            self.warm_pool.close()
        log.info("dispatcher %s stopped", self.id)
