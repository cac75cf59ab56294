"""The dispatcher's loop, and the sweep controller's, through a hiccup of its store or
Ray: it keeps going, and its log carries the traceback once per outage, then one line
per retry and one when it recovers (an operator's log showed 18 tracebacks in 16 s of
store outage)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.exc

from service.settings import Settings
from service.store.db import make_engine, make_sessionmaker
from service.store.migrate import upgrade
from tests.polling import wait_until
from workers.dispatcher import Dispatcher
from workers.loop_errors import LoopErrors, store_unreachable
from workers.sweeps.controller import SweepController


class Hiccup(Dispatcher):
    """The seam: maintenance (the store's reaper, Ray's resources) fails `failures`
    times with the same error, then works; nothing is claimed."""

    failures = 3

    def _maintain(self) -> None:
        self._last_maintenance = 0.0  # every turn
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is locked\nmore detail")

    def _claim_and_start(self) -> bool:
        return False


def test_a_streak_of_loop_errors_logs_one_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, state_dir=tmp_path, poll_seconds=0.05)
    dispatcher = Hiccup(settings, make_sessionmaker(engine), dispatcher_id="d1")
    caplog.set_level(logging.INFO, logger="workers.dispatcher")
    thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
    thread.start()
    try:
        wait_until(lambda: "recovered" in caplog.text, timeout=30, what="the loop to recover")
    finally:
        dispatcher.stop()
        thread.join(timeout=30)
        engine.dispose()
    mine = [r for r in caplog.records if r.name == "workers.dispatcher"]
    assert [r.getMessage() for r in mine if r.exc_info] == ["dispatcher d1: loop error; retrying"]
    assert [r.getMessage() for r in mine if "again" in r.getMessage()] == [
        "dispatcher d1: loop error again (2 in a row): database is locked",
        "dispatcher d1: loop error again (3 in a row): database is locked",
    ]
    assert "dispatcher d1: loop recovered after 3 errors" in caplog.text


def test_a_broken_wake_up_connection_is_a_loop_error_not_the_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL the idle wait reads the LISTEN connection, which an outage breaks
    like any statement ("server closed the connection unexpectedly"): the dispatcher
    thread died of it, and its jobs' writers were abandoned with it."""
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, state_dir=tmp_path, poll_seconds=0.05)
    dispatcher = Hiccup(settings, make_sessionmaker(engine), dispatcher_id="d2")
    dispatcher.failures = 0
    waits = {"broken": 2}
    real_wait = dispatcher._waker.wait

    def breaking_wait(timeout: float) -> None:
        if waits["broken"]:
            waits["broken"] -= 1
            raise ConnectionError("consuming input failed: server closed the connection")
        real_wait(timeout)

    dispatcher._waker.wait = breaking_wait  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="workers.dispatcher")
    thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
    thread.start()
    try:
        wait_until(lambda: "recovered" in caplog.text, timeout=30, what="the loop to recover")
        assert thread.is_alive()
    finally:
        dispatcher.stop()
        thread.join(timeout=30)
        engine.dispose()
    assert "dispatcher d2: loop recovered after 2 errors" in caplog.text


class HiccupSweeps(SweepController):
    """The seam: a poll fails `failures` times (the database down), then works."""

    failures = 3

    def poll(self) -> int:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("connection refused\nIs the server running?")
        return 0


def test_the_sweep_controller_logs_an_outage_as_the_dispatcher_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It logged a 110-line traceback every poll: 17 of them for a 17 s outage."""
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, state_dir=tmp_path, sweep_poll_seconds=0.05)
    controller = HiccupSweeps(settings, make_sessionmaker(engine), controller_id="s1")
    caplog.set_level(logging.INFO, logger="workers.sweeps.controller")
    thread = threading.Thread(target=controller.run_forever, daemon=True)
    thread.start()
    try:
        wait_until(lambda: "recovered" in caplog.text, timeout=30, what="the poll to recover")
    finally:
        controller.stop()
        thread.join(timeout=30)
        engine.dispose()
    mine = [r for r in caplog.records if r.name == "workers.sweeps.controller"]
    assert [r.getMessage() for r in mine if r.exc_info] == [
        "sweep controller s1: poll error; retrying"
    ]
    assert [r.getMessage() for r in mine if "again" in r.getMessage()] == [
        "sweep controller s1: poll error again (2 in a row): connection refused",
        "sweep controller s1: poll error again (3 in a row): connection refused",
    ]
    assert "sweep controller s1: poll recovered after 3 errors" in caplog.text


def test_a_lost_store_is_a_warning_until_it_lasts() -> None:
    """An operator's walkthrough: each PostgreSQL restart logged an ERROR with its
    traceback from every loop, though the loops ride through it by design. A lost
    connection is a WARNING (traceback kept); another failure stays an ERROR; a
    streak past `escalate_after` is one ERROR, once."""
    log = logging.getLogger("tests.loop_errors")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    lost = sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, psycopg.OperationalError("server closed the connection unexpectedly")
    )
    try:
        errors = LoopErrors(log, "loop", escalate_after=3600)
        errors.failed(lost)
        errors.failed(lost)
        errors.succeeded()
        errors.failed(RuntimeError("a bug"))
        errors.succeeded()
        assert [(r.levelno, r.exc_info is not None) for r in records[:2]] == [
            (logging.WARNING, True),
            (logging.WARNING, False),
        ]
        assert (records[3].levelno, records[3].getMessage()) == (
            logging.ERROR,
            "loop error; retrying",
        )
        records.clear()
        lasting = LoopErrors(log, "loop", escalate_after=0)
        for _ in range(3):
            lasting.failed(ConnectionError("refused"))
        assert [r.levelno for r in records] == [logging.WARNING, logging.ERROR, logging.WARNING]
        assert records[1].getMessage().startswith("loop has failed for "), records[1].getMessage()
    finally:
        log.removeHandler(handler)


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), False),
        (psycopg.errors.DiskFull("could not extend file"), False),
        (psycopg.errors.TooManyConnections("too many clients already"), False),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("no such column: jobs.stopped_at"), False),
        (ConnectionRefusedError("refused"), True),
        (RuntimeError("a bug"), False),
    ],
)
def test_only_a_lost_store_counts_as_unreachable(error: Exception, unreachable: bool) -> None:
    """A review: every OperationalError was taken for a lost connection, so a
    deadlock, a full disk or a schema mismatch logged as a WARNING. Checked bare and
    as SQLAlchemy wraps it."""
    assert store_unreachable(error) is unreachable
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, error)
    assert store_unreachable(wrapped) is unreachable
