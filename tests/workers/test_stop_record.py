"""A dispatcher that exits cleanly records that it stopped; a store outage at exit
neither holds the exit (a locked SQLite would wait out its 30 s busy timeout) nor
raises over the exit: a warning says so and the dispatcher goes on exiting. No Ray:
a dispatcher stopped before its loop runs only shuts down."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.dispatchers import upsert_dispatcher
from service.store.migrate import upgrade
from service.store.models import Dispatcher as DispatcherRow
from tests.polling import wait_until
from tests.workers.test_store_outage import _locked_sqlite
from workers.dispatcher import Dispatcher
from workers.stop_record import RECORD_STOPPED_SECONDS, record_stopped


def _store(tmp_path: Path) -> tuple[Settings, sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'lagtrain.db'}"
    upgrade(url)
    settings = Settings(
        database_url=url, artifacts_url=str(tmp_path / "artifacts"), state_dir=tmp_path / "s"
    )
    sessions = make_sessionmaker(make_engine(url))
    with transaction(sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="h", resources={})
    return settings, sessions


def _stopped_at(sessions: sessionmaker[Session]) -> object:
    with sessions() as session:
        row = session.get(DispatcherRow, "d1")
        assert row is not None
        return row.stopped_at


def test_a_clean_exit_records_that_the_dispatcher_stopped(tmp_path: Path) -> None:
    settings, sessions = _store(tmp_path)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    dispatcher.stop()
    dispatcher.run_forever()
    assert _stopped_at(sessions) is not None


def test_an_exit_by_an_exception_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a clean exit says so: a dispatcher whose loop an exception (here an
    interrupt) leaves, like one that exits at once on a second SIGTERM, leaves its row
    to age into "lost" by its lease."""
    settings, sessions = _store(tmp_path)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")

    def interrupted() -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(dispatcher, "_drain_over", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dispatcher.run_forever()
    assert _stopped_at(sessions) is None


def test_a_locked_store_at_exit_does_not_hold_the_exit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, sessions = _store(tmp_path)
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
