"""The SSE feeds' LISTEN connection (service/api/feed_listener.py) against a private
PostgreSQL that is restarted: a watched job's notification pokes its feed, another
job's does not, a payload that is no job id is skipped, and after the restart the
listener reconnects by itself and pokes every feed once (a notification may have
gone by unheard)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, text

from service.api.feed_listener import FeedListener
from service.store.notify import FEED_CHANNEL
from tests.private_postgres import PrivatePostgres, postgres_binaries_available

pytestmark = pytest.mark.skipif(
    not postgres_binaries_available(), reason="needs PostgreSQL's server binaries"
)


async def until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def notify(url: str, *payloads: int | str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for payload in payloads:
                conn.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": FEED_CHANNEL, "payload": str(payload)},
                )
    finally:
        engine.dispose()


@pytest.mark.timeout(120)
def test_the_listener_pokes_watched_feeds_and_survives_a_restart() -> None:
    server = PrivatePostgres()
    try:
        server.start()
        url = server.create_database()

        async def scenario() -> None:
            pokes: list[int] = []
            rounds: list[int] = []
            listener = FeedListener(
                url,
                asyncio.get_running_loop(),
                poke=pokes.append,
                poke_all=lambda: rounds.append(1),
                watched=lambda job_id: job_id == 7,
            )
            try:
                await until(lambda: listener.listening, timeout=30, what="LISTEN")
                await until(lambda: len(rounds) == 1, timeout=10, what="the first poke-all")
                await asyncio.to_thread(notify, url, 8, 7)
                await until(lambda: pokes == [7], timeout=10, what="job 7's poke")
                # Anyone may NOTIFY the channel: a payload that is no job id is skipped,
                # the connection kept (it was dropped and made again).
                await asyncio.to_thread(notify, url, "hello", 7)
                await until(lambda: pokes == [7, 7], timeout=10, what="a poke after a stray one")
                assert len(rounds) == 1, "the connection was made again"

                await asyncio.to_thread(server.restart)
                await until(lambda: len(rounds) == 2, timeout=30, what="the reconnect")
                assert listener.listening
                await asyncio.to_thread(notify, url, 7)
                await until(lambda: pokes == [7, 7, 7], timeout=10, what="a poke after restart")
            finally:
                await asyncio.to_thread(listener.close)
            assert not listener.listening

        asyncio.run(scenario())
    finally:
        server.destroy()
