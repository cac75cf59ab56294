"""Seeds, validation hold-out and the iid / non_iid split of training samples over
the M replicas. Everything is a pure function of the job's seed, so every process
that builds the same task sees the same shards."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from service.schemas.data_limits import validation_samples

Split = Literal["iid", "non_iid"]

# Independent random streams derived from one job seed.
STREAM_DATA = 1
STREAM_HOLDOUT = 2
STREAM_SHARDS = 3
STREAM_MODEL = 4
STREAM_BATCH = 5


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed that depends on `seed` and every key (e.g. stream, rank, round)."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint64)
    return int(state[0]) & (2**63 - 1)


def numpy_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def torch_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator of its own: the global torch RNG is never touched."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))


def holdout_split(num_samples: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (train, validation) index arrays; validation takes
    data_limits.validation_samples(num_samples) of them."""
    order = numpy_rng(seed, STREAM_HOLDOUT).permutation(num_samples)
    num_val = validation_samples(num_samples)
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def shard_indices(
    num_samples: int,
    num_workers: int,
    split: Split,
    *,
    seed: int,
    sort_keys: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Positions 0..num_samples-1 of the training samples, split over the workers.

    `iid`: a seeded random permutation cut into near-equal parts. `non_iid`: the
    samples ordered by `sort_keys` (label or target; stable, so ties keep their
    order) or, without keys, in their natural order (text position), cut into
    contiguous blocks - the heterogeneous setting LAG is designed for.
    """
    if num_samples < num_workers:
        raise ValueError(
            f"distributed.workers: {num_workers} workers but only {num_samples} training "
            "samples; every worker needs at least one"
        )
    if split == "iid":
        order = numpy_rng(seed, STREAM_SHARDS).permutation(num_samples)
    elif sort_keys is not None:
        if len(sort_keys) != num_samples:
            raise ValueError("sort_keys must have one key per training sample")
        order = np.argsort(sort_keys, kind="stable")
    else:
        order = np.arange(num_samples)
    return [np.asarray(part, dtype=np.int64) for part in np.array_split(order, num_workers)]


def chance_accuracy(val_labels: np.ndarray) -> float:
    """The best accuracy on `val_labels` of a model that ignores its inputs, so a
    model that scores no more has learned nothing from them (a task's baseline).
    One label a sample (samples,): it can only answer the most frequent one. One a
    step (samples, steps): it still knows the step, and answers each step's most
    frequent label."""
    steps = val_labels.reshape(len(val_labels), -1)
    best = [np.unique(column, return_counts=True)[1].max() for column in steps.T]
    return float(sum(best) / steps.size)
