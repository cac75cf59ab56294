"""The web-worker supervisor's hung-worker check (service/web_workers.py): a worker
answers a ping only once its event loop has turned, and the supervisor's side
measures how long a ping has been out. The end-to-end kill and replacement of a
stopped worker: tests/e2e/test_web_workers.py."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Iterator

import pytest

from service.web_worker import PING, PONG, READY, answer_pings
from service.web_workers import RESTART_PAUSE_S, STARTUP_TIMEOUT_S, Restarts, Worker


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(timeout=10)
    running.close()


def test_a_blocked_event_loop_leaves_the_ping_unanswered(loop: asyncio.AbstractEventLoop) -> None:
    ours, theirs = multiprocessing.Pipe()
    threading.Thread(target=answer_pings, args=(theirs, loop), daemon=True).start()
    assert ours.poll(10) and ours.recv_bytes() == READY
    ours.send_bytes(PING)
    assert ours.poll(10) and ours.recv_bytes() == PONG

    release = threading.Event()
    loop.call_soon_threadsafe(release.wait)  # a blocking call on the loop
    try:
        ours.send_bytes(PING)
        # A thread that answered by itself (uvicorn's supervisor) would answer at once.
        assert not ours.poll(1.0)
    finally:
        release.set()  # the fixture can stop the loop whatever happened
    assert ours.poll(10) and ours.recv_bytes() == PONG
    ours.close()


def test_the_supervisor_pings_a_ready_worker_and_times_its_answer() -> None:
    ours, theirs = multiprocessing.Pipe()
    worker = Worker(process=multiprocessing.Process(), pipe=ours, last_ping=990.0, started=990.0)
    # Not ready (its loop is not running yet): no ping.
    assert worker.check(1000.0, every=5.0, timeout=2.0) is None and not theirs.poll()
    theirs.send_bytes(READY)
    assert worker.check(1000.0, every=5.0, timeout=2.0) is None
    assert theirs.poll() and theirs.recv_bytes() == PING
    assert worker.check(1002.0, every=5.0, timeout=2.0) is None  # out 2 s: not over
    hung = worker.check(1003.0, every=5.0, timeout=2.0)
    assert hung == "left a ping unanswered for 3.0 s (timeout 2 s)"
    assert not theirs.poll()  # none sent while one is out
    theirs.send_bytes(PONG)
    assert worker.check(1004.0, every=5.0, timeout=2.0) is None  # answered; next at 1005
    assert not theirs.poll()
    assert worker.check(1005.0, every=5.0, timeout=2.0) is None
    assert theirs.recv_bytes() == PING
    theirs.close()
    # Gone: the dead-worker path decides, however long the ping has been out.
    assert worker.check(1100.0, every=5.0, timeout=2.0) is None


def test_a_worker_that_never_says_ready_is_hung_after_the_startup_limit() -> None:
    ours, theirs = multiprocessing.Pipe()
    worker = Worker(process=multiprocessing.Process(), pipe=ours, started=0.0)
    # A short ping timeout does not cut the start-up short: the limit is the longer.
    assert worker.check(STARTUP_TIMEOUT_S, every=1.0, timeout=2.0) is None
    late = STARTUP_TIMEOUT_S + 1
    assert worker.check(late, every=1.0, timeout=2.0) == (
        f"was not ready {late:.1f} s after its start (limit {STARTUP_TIMEOUT_S:g} s)"
    )
    # A longer ping timeout is a longer start-up limit too.
    assert worker.check(late, every=1.0, timeout=2 * STARTUP_TIMEOUT_S) is None
    assert not theirs.poll()  # never pinged before READY
    theirs.close()


def test_a_slots_restart_pause_doubles_and_starts_over_after_a_healthy_while() -> None:
    first, longest = RESTART_PAUSE_S
    restarts = Restarts()
    waits = []
    now = 0.0
    for _ in range(8):  # replacements that keep dying at once
        wait = restarts.died(now)
        assert wait is not None
        assert restarts.died(now) is None  # found dead again: still the same wait
        assert not restarts.may_replace(now + wait - 0.01)
        assert restarts.may_replace(now + wait)
        assert not restarts.may_replace(now + wait)  # one replacement per death
        waits.append(wait)
        now += wait
    assert waits == [min(first * 2**n, longest) for n in range(8)]
    assert waits[-1] == longest

    worker = Worker(process=multiprocessing.Process(), pipe=multiprocessing.Pipe()[0], started=now)
    restarts.watch(worker, now + longest + 1)  # up, but never ready: no credit
    assert restarts.died(now + longest + 1) == longest
    assert restarts.may_replace(now + 2 * longest + 1)
    worker.ready = True
    restarts.watch(worker, now + longest)  # ready, but not up long enough yet
    assert restarts.pause == longest
    restarts.watch(worker, now + longest + 1)
    assert restarts.died(now + longest + 1) == first
