from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.polling import wait_until
from tests.ray_cluster import ray_address
from workers.dispatcher import Dispatcher
from workers.warm_pool import WarmPool

__all__ = ["ray_address"]


@dataclass
class PooledDispatcher:
    """A dispatcher running in a thread of the test, with its warm pool."""

    dispatcher: Dispatcher
    pool: WarmPool
    thread: threading.Thread

    def stop(self) -> None:
        """Stop it and wait for its loop to end (closing its pool); safe twice."""
        self.dispatcher.stop()
        self.thread.join(timeout=60)


@pytest.fixture
def pooled_dispatcher(
    settings: Any, session_factory: Any, clean_db: None, ray_address: str
) -> Iterator[PooledDispatcher]:
    """A running dispatcher with a pool of 3 started warm actors (a gang of 2 replicas
    and its driver)."""
    pooled = settings.model_copy(update={"warm_pool_size": 3, "heartbeat_seconds": 0.5})
    dispatcher = Dispatcher(pooled, session_factory)
    pool = dispatcher.warm_pool  # set once, in Dispatcher.__init__
    assert pool is not None
    running = PooledDispatcher(
        dispatcher, pool, threading.Thread(target=dispatcher.run_forever, daemon=True)
    )
    running.thread.start()
    try:
        wait_until(lambda: pool.started_count() == 3, timeout=300, what="a started pool")
        yield running
    finally:
        running.stop()
