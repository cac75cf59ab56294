"""One real local Ray per test session (starting one costs ~5-10 s here). Tests and
subprocesses (dispatchers started by end-to-end tests) share it via its address."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from workers.ray_runtime import connect

RAY_TEST_CPUS = 6


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    connect(None, num_cpus=RAY_TEST_CPUS)
    yield str(ray.get_runtime_context().gcs_address)
    ray.shutdown()
