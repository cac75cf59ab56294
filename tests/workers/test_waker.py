"""The dispatcher's LISTEN connection (workers/waker.py) against the real PostgreSQL
(a database of this test's own, so no other test's NOTIFY reaches it): after an
outage whose first reconnect failed, the waker's own waits reconnect, at a bounded
pace, and a NOTIFY wakes it again; a connect to a server that never answers gives up
within its timeout instead of holding the dispatcher's loop."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.api.feed_listener import CONNECT_TIMEOUT_SECONDS, RECONNECT_SECONDS
from service.store.lifecycle import JOBS_CHANNEL
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.polling import wait_until
from workers.waker import Waker


class FlakyWaker(Waker):
    """The seam: the next `failures` (re)connects fail, as while PostgreSQL is down."""

    def __init__(self, database_url: str) -> None:
        self.failures = 0
        self.attempts: list[float] = []
        super().__init__(database_url)

    def _connect(self) -> psycopg.Connection[Any]:
        self.attempts.append(time.monotonic())
        if self.failures:
            self.failures -= 1
            raise psycopg.OperationalError("connection refused (the test's seam)")
        return super()._connect()


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _waits_in_thread(waker: Waker, timeout: float) -> threading.Thread:
    thread = threading.Thread(target=waker.wait, args=(timeout,), daemon=True)
    thread.start()
    return thread


def test_a_notify_wakes_the_waker_again_after_an_outage_and_a_failed_reconnect(
    pg_url: str,
) -> None:
    waker = FlakyWaker(pg_url)
    try:
        assert waker._conn is not None
        pid = waker._conn.info.backend_pid
        with psycopg.connect(_dsn(pg_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # As in the dispatcher's loop: the wait reads the broken connection and
        # raises; the loop's error handler resets, which fails (still down).
        with pytest.raises(psycopg.OperationalError):
            waker.wait(30)
        waker.failures = 2
        waker.reset()
        assert waker._conn is None
        # The loop's next waits, once nothing fails any more. The first retry fails
        # too (the seam); the second succeeds and ends the wait (a NOTIFY may have
        # been missed meanwhile). Before, it slept the whole wait, every wait.
        first = _waits_in_thread(waker, 60)
        first.join(timeout=RECONNECT_SECONDS * 2 + CONNECT_TIMEOUT_SECONDS + 10)
        assert not first.is_alive(), "the waker did not reconnect within its wait"
        assert waker._conn is not None and waker.failures == 0
        # Retried at a bounded pace, not in a tight loop.
        gaps = [b - a for a, b in zip(waker.attempts[1:], waker.attempts[2:], strict=False)]
        assert len(gaps) == 2 and min(gaps) >= RECONNECT_SECONDS * 0.9, gaps
        # And a job queued by another process wakes it again.
        waits = waker.waits
        second = _waits_in_thread(waker, 60)
        wait_until(lambda: waker.waits > waits, timeout=10, what="the second wait")
        with psycopg.connect(_dsn(pg_url), autocommit=True) as other:
            other.execute(f"NOTIFY {JOBS_CHANNEL}")
        second.join(timeout=10)
        assert not second.is_alive(), "a NOTIFY did not wake the waker"
    finally:
        waker.close()


def test_a_reconnect_to_a_server_that_never_answers_gives_up_in_time(pg_url: str) -> None:
    # A listener whose backlog accepts the TCP connection and then says nothing: libpq
    # waits for the server's first byte, as behind a partition that drops packets.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        waker = Waker(pg_url)
        try:
            waker._dsn = f"postgresql://postgres@127.0.0.1:{port}/lagtrain"
            result: list[bool] = []
            started = time.monotonic()
            thread = threading.Thread(target=lambda: result.append(waker.reset()), daemon=True)
            thread.start()
            thread.join(timeout=CONNECT_TIMEOUT_SECONDS + 10)
            assert not thread.is_alive(), "the reconnect was still waiting"
            assert result == [False] and waker._conn is None
            assert time.monotonic() - started >= CONNECT_TIMEOUT_SECONDS * 0.9
        finally:
            waker.close()
