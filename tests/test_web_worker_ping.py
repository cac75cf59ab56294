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

from service.web_workers import PING, PONG, READY, Worker, answer_pings


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
    worker = Worker(process=multiprocessing.Process(), pipe=ours, last_ping=100.0)
    # Not ready (its loop is not running yet): no ping, however long it takes.
    assert worker.check(1000.0, every=5.0) == 0.0 and not theirs.poll()
    theirs.send_bytes(READY)
    assert worker.check(1000.0, every=5.0) == 0.0
    assert theirs.poll() and theirs.recv_bytes() == PING
    assert worker.check(1003.0, every=5.0) == 3.0  # out 3 s, none sent meanwhile
    assert not theirs.poll()
    theirs.send_bytes(PONG)
    assert worker.check(1004.0, every=5.0) == 0.0  # answered; next ping at 1005
    assert not theirs.poll()
    assert worker.check(1005.0, every=5.0) == 0.0 and theirs.recv_bytes() == PING
    theirs.close()
    assert worker.check(1100.0, every=5.0) == 0.0  # gone: the dead-worker path decides
