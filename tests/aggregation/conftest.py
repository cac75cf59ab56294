"""Tiny models gain nothing from intra-op threads, and on a loaded 2-core machine
torch's thread pool made an 8-unit LSTM step ~50x slower: run these on one thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
