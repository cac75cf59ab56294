"""Shared fixtures of the training-core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Small models gain nothing from intra-op threads, and one thread is not slowed
    down by other processes competing for the two cores (or, in the trajectory
    tests, made to differ from a replica actor, which runs on one thread)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
