"""Shared fixtures of the training-core tests."""

from __future__ import annotations

import pytest

from tests.torch_threads import one_thread

one_torch_thread = pytest.fixture(one_thread)
