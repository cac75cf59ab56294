"""Tiny models gain nothing from intra-op threads, and on a loaded 2-core machine
torch's thread pool made an 8-unit LSTM step ~50x slower: run these on one thread."""

from __future__ import annotations

import pytest

from tests.torch_threads import one_thread

one_torch_thread = pytest.fixture(autouse=True)(one_thread)
