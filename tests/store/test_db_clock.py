"""The SQLite clock is read under the write lock, so an event's time never precedes a
commit its transaction saw (on PostgreSQL the clock is the server's clock_timestamp())."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import db_now, is_sqlite, transaction


def test_sqlite_reads_the_clock_only_once_it_holds_the_write_lock(
    db_url: str, session_factory: sessionmaker[Session]
) -> None:
    # Without it a dispatcher read the time, waited for the lock while the sweep
    # controller queued a job, then claimed that job: its `running` event came out
    # 60 ms before its `queued` one (tests/e2e/test_sweeps_e2e.py saw 3 trial jobs
    # "at once" with parallel 2).
    if not is_sqlite(db_url):
        pytest.skip("PostgreSQL stamps with clock_timestamp(); there is no database lock")
    with transaction(session_factory) as session:
        db_now(session=session)
        other = sqlite3.connect(str(make_url(db_url).database), timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # no commit can come in between
        finally:
            other.close()
