"""`lagtrain server` with LAGTRAIN_WEB_WORKERS > 1: N uvicorn processes, each listening
on a socket of its own bound with SO_REUSEPORT to the same address, so that the
kernel spreads new connections over them.

Why not uvicorn's own --workers: its processes share one listening socket, and the
one that wakes first accepts every connection waiting. Ten keep-alive clients that
connect at once all landed on one worker in half of the runs of
benchmarks/submit_load.py, while the other worker idled (≈ 430 submits/s, a single
worker's ceiling, instead of ≈ 570; issue 13). With a socket per process the kernel
hashes each connection to one of them.

The supervisor here is small on purpose: it starts the workers, starts a new one
when one dies (after a pause that doubles while replacements keep dying; and not at
all when a first worker fails at start-up: the app, the settings or the address is
broken and every worker would fail the same way), kills one that is hung (below), and
stops them all on SIGTERM or SIGINT.

Hung: each worker answers the supervisor's ping over a pipe from a thread that first
runs a no-op on the worker's event loop, so the answer proves the loop turns (uvicorn's
own supervisor answers from a thread alone, which a blocked loop does not stop). A
ping left unanswered for LAGTRAIN_WEB_WORKER_TIMEOUT_S gets the worker SIGKILLed, as
does a worker that has not said READY (its loop runs) within the longer of that and
STARTUP_TIMEOUT_S; it is then replaced as a dead one is. A worker stops when the
supervisor dies, even by SIGKILL: an orphan would keep serving old code on the shared
port beside the next server. Each worker builds its app from the environment
(service.app.create_app_from_env) and shuts down as one web worker does; the
worker's side is service/web_worker.py."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType

from service.settings import Settings
from service.web_worker import PING, PONG, READY, STARTUP_FAILURE, listening_socket, run_worker

log = logging.getLogger("lagtrain.web_workers")

# SIGTERM -> SIGKILL for a worker that does not stop: uvicorn's own graceful shutdown
# takes 3 s, and the whole server must be gone within 10 (docs/reliability.md).
STOP_GRACE_S = 5.0
# The first pause before a replacement, and the longest (also how long a worker must
# have been up and answering for its slot's pause to start over).
RESTART_PAUSE_S = (0.5, 30.0)
PING_EVERY_S = 5.0  # at most; a shorter timeout pings at half of it
# The least time a worker is given to say READY: imports, the store's first
# connection and the app's lifespan, on a loaded machine.
STARTUP_TIMEOUT_S = 60.0


@dataclass
class Worker:
    """A worker process and the supervisor's end of its ping pipe."""

    process: BaseProcess
    pipe: Connection
    ready: bool = False  # its event loop runs: pings from now on
    pinged_at: float | None = None  # the unanswered ping, if one is out
    last_ping: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)

    def check(self, now: float, *, every: float, timeout: float) -> str | None:
        """Read its answers and ping it when due; why it is hung (to be killed), or
        None. Hung: a ping out longer than `timeout`, or not READY after the longer of
        `timeout` and STARTUP_TIMEOUT_S (a start-up stuck on, say, an unanswering
        store)."""
        try:
            while self.pipe.poll():
                if self.pipe.recv_bytes() in (READY, PONG):
                    self.ready, self.pinged_at = True, None
            if self.ready and self.pinged_at is None and now - self.last_ping >= every:
                self.pipe.send_bytes(PING)
                self.pinged_at = self.last_ping = now
        except (EOFError, OSError):  # it is exiting: the dead-worker path takes over
            return None
        if not self.ready:
            up, limit = now - self.started, max(timeout, STARTUP_TIMEOUT_S)
            if up > limit:
                return f"was not ready {up:.1f} s after its start (limit {limit:g} s)"
        elif self.pinged_at is not None and now - self.pinged_at > timeout:
            out = now - self.pinged_at
            return f"left a ping unanswered for {out:.1f} s (timeout {timeout:g} s)"
        return None


@dataclass
class Restarts:
    """One worker slot's replacement pause: it doubles (to RESTART_PAUSE_S[1]) while
    replacements keep dying, and starts over once a worker has been up and ready for
    RESTART_PAUSE_S[1]."""

    pause: float = RESTART_PAUSE_S[0]
    due: float | None = None  # when the dead worker's replacement may start

    def watch(self, worker: Worker, now: float) -> None:
        if worker.ready and now - worker.started > RESTART_PAUSE_S[1]:
            self.pause = RESTART_PAUSE_S[0]

    def died(self, now: float) -> float | None:
        """Called on each look at a dead worker: the pause its replacement waits when
        just found dead, else None."""
        if self.due is not None:
            return None
        wait, self.due = self.pause, now + self.pause
        self.pause = min(2 * self.pause, RESTART_PAUSE_S[1])
        return wait

    def may_replace(self, now: float) -> bool:
        if self.due is None or now < self.due:
            return False
        self.due = None
        return True


def serve(settings: Settings) -> int:
    """Run settings.web_workers worker processes until SIGTERM/SIGINT; the exit status
    (non-zero when a worker could not start)."""
    # Bound (never listening: it takes no connections) for as long as the workers run:
    # it turns port 0 into the port every worker binds, and a taken address into one
    # error here instead of one per worker.
    try:
        reserved = listening_socket(settings.host, settings.port)
    except OSError as exc:
        log.error("cannot bind %s:%s: %s", settings.host, settings.port, exc)
        return STARTUP_FAILURE
    port = reserved.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    status = 0

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("web workers: %s, stopping", signal.Signals(signum).name)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    timeout = settings.web_worker_timeout_s
    every = min(PING_EVERY_S, timeout / 2)

    def start() -> Worker:
        ours, theirs = context.Pipe()
        process = context.Process(
            target=run_worker,
            args=(settings.host, port, settings.access_log, os.getpid(), theirs),
            daemon=False,
        )
        process.start()
        theirs.close()
        return Worker(process, ours)

    workers: list[Worker] = []
    first: set[int | None] = set()  # the first workers: their start-up failure is fatal
    restarts = [Restarts() for _ in range(settings.web_workers)]
    try:
        for _ in range(settings.web_workers):
            workers.append(start())
        first = {w.process.pid for w in workers}
        log.info(
            "web workers: %d processes on %s:%d, a listening socket each (SO_REUSEPORT): %s",
            len(workers),
            settings.host,
            port,
            [w.process.pid for w in workers],
        )
        while not stopping.wait(0.5):
            for i, worker in enumerate(workers):
                process, now = worker.process, time.monotonic()
                if process.is_alive():
                    hung = worker.check(now, every=every, timeout=timeout)
                    if hung:
                        log.warning("web worker %s %s; killing it", process.pid, hung)
                        process.kill()  # SIGKILL (a stopped process too); then replaced
                        process.join(STOP_GRACE_S)  # as a dead one, from the next look
                    restarts[i].watch(worker, now)
                    continue
                if process.exitcode == STARTUP_FAILURE and process.pid in first:
                    log.error("web worker %s could not start; stopping", process.pid)
                    status = STARTUP_FAILURE
                    stopping.set()
                    break
                wait = restarts[i].died(now)
                if wait is not None:
                    log.warning(
                        "web worker %s exited (%s); starting another in %.1f s",
                        process.pid,
                        process.exitcode,
                        wait,
                    )
                elif restarts[i].may_replace(now):
                    worker.pipe.close()
                    workers[i] = start()
    finally:
        _stop_all([w.process for w in workers])
        for worker in workers:
            worker.pipe.close()
        reserved.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _stop_all(workers: list[BaseProcess]) -> None:
    for process in workers:
        if process.is_alive() and process.pid is not None:
            process.terminate()  # SIGTERM: uvicorn's graceful shutdown (3 s for streams)
    for process in workers:
        process.join(STOP_GRACE_S)
        if process.is_alive():
            log.warning(
                "web worker %s did not stop in %.0f s; killing it", process.pid, STOP_GRACE_S
            )
            process.kill()
            process.join()
