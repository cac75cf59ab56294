"""One torch thread for the length of a test. Small models gain nothing from
intra-op threads, and on a loaded 2-core machine torch's thread pool made an 8-unit
LSTM step ~50x slower; one thread is also what a replica actor runs on, so the
trajectory tests compare like with like. Made a fixture where it is used (autouse
in some folders, asked for by name in others)."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
