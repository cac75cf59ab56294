"""A dispatcher that exits cleanly records that it stopped; a store outage at exit
neither holds the exit (a locked SQLite would wait out its 30 s busy timeout) nor
raises over the exit: a warning says so and the dispatcher goes on exiting. No Ray:
a dispatcher stopped before its loop runs only shuts down."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import NoReturn, cast

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import make_engine, make_sessionmaker
from service.store.models import Dispatcher as DispatcherRow
from tests.polling import wait_until
from tests.workers.dispatcher_seams import dispatcher_store, idle_node_at_seam
from tests.workers.test_store_outage import _locked_sqlite
from workers import embedded
from workers.dispatcher import Dispatcher
from workers.stop_record import RECORD_STOPPED_SECONDS, record_stopped


def _stopped_at(sessions: sessionmaker[Session]) -> object:
    with sessions() as session:
        row = session.get(DispatcherRow, "d1")
        assert row is not None
        return row.stopped_at


def test_a_clean_exit_records_that_the_dispatcher_stopped(tmp_path: Path) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    dispatcher.stop()
    dispatcher.run_forever()
    assert _stopped_at(sessions) is not None


def test_an_exit_by_an_exception_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a clean exit says so: a dispatcher whose loop an exception (here an
    interrupt) leaves runs its shutdown but records nothing, and its row ages into
    "lost" by its lease."""
    settings, sessions = dispatcher_store(tmp_path)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")

    def interrupted() -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(dispatcher, "_drain_over", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dispatcher.run_forever()
    assert _stopped_at(sessions) is None


def test_a_second_signal_exits_at_once_past_the_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    """`lagtrain worker`'s handlers: the first SIGTERM drains (the shutdown, and its
    stop record, follow once the jobs are back); a second exits the process at once
    (os._exit: no shutdown, no record), with the signal's exit status."""
    drains: list[float] = []
    exits: list[int] = []

    class Draining:
        def request_drain(self, timeout_s: float) -> None:
            drains.append(timeout_s)

    def exit_now(status: int) -> NoReturn:  # os._exit never returns
        exits.append(status)
        raise SystemExit(status)

    monkeypatch.setattr(os, "_exit", exit_now)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        embedded.install_drain_handlers(cast(Dispatcher, Draining()), drain_seconds=20)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)
        assert (len(drains), exits) == (1, [])
        with pytest.raises(SystemExit):
            handler(signal.SIGTERM, None)
        assert (len(drains), exits) == (1, [128 + signal.SIGTERM])
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def test_a_signal_that_lands_inside_the_loops_lock_still_drains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal handler runs on the loop's own thread, between two of its steps: one
    landing while the loop holds its lock (a claim being recorded) must not wait on
    that lock (it would wait forever: no drain, and the jobs' attempts lost at the
    SIGKILL that follows). The loop drains at its next turn and, with no job, exits."""
    settings, sessions = dispatcher_store(tmp_path)
    idle_node_at_seam(monkeypatch, 4.0)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        embedded.install_drain_handlers(dispatcher, drain_seconds=20)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handled = threading.Event()

        def signal_inside_the_lock() -> None:
            with dispatcher._lock:  # as the loop's thread holds it while it claims
                handler(signal.SIGTERM, None)
                handled.set()

        thread = threading.Thread(target=signal_inside_the_lock, daemon=True)
        thread.start()
        assert handled.wait(10), "the handler waited on the lock its own thread holds"
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    dispatcher.run_forever()  # returns: drained, with nothing to hand back
    assert _stopped_at(sessions) is not None


def test_a_locked_store_at_exit_does_not_hold_the_exit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    dispatcher.stop()
    holder = _locked_sqlite(tmp_path / "lagtrain.db")
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="workers.stop_record"):
            dispatcher.run_forever()  # returns: no exception over the exit
        elapsed = time.monotonic() - started
        assert elapsed < RECORD_STOPPED_SECONDS + 2, elapsed
        assert "did not record that it stopped within" in caplog.text
    finally:
        holder.close()
    # The write went on waiting on its own thread, and lands once the lock is gone.
    wait_until(lambda: _stopped_at(sessions), timeout=30, what="the late stopped mark")


def test_an_unreachable_store_at_exit_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with caplog.at_level(logging.WARNING, logger="workers.stop_record"):
            assert not record_stopped(make_sessionmaker(unreachable), "d1")
        assert "d1: could not record that it stopped" in caplog.text
    finally:
        unreachable.dispose()
