"""A model's parameters and gradients as one flat vector, and the numpy form in
which vectors cross the replica/coordinator boundary (what the Ray layer ships)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()


def load_flat(model: nn.Module, vector: torch.Tensor) -> None:
    """Copy into the existing parameter storage (vector_to_parameters would
    re-point the parameters at slices of `vector`: aliasing it, and breaking
    cuDNN's flattened RNN weights, which then get compacted at every call)."""
    offset = 0
    with torch.no_grad():
        for param in model.parameters():
            count = param.numel()
            param.copy_(vector[offset : offset + count].view_as(param))
            offset += count
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} values, the model {offset} parameters")


def flat_grad(model: nn.Module) -> torch.Tensor:
    """Gradients in parameter order; a parameter the loss did not touch gives zeros."""
    parts = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
        for p in model.parameters()
    ]
    return torch.cat(parts).detach()


def to_numpy(vector: torch.Tensor) -> np.ndarray:
    return vector.detach().cpu().numpy().copy()


def read_only_view(vector: torch.Tensor) -> np.ndarray:
    """`vector` as numpy without a copy (for a CPU tensor), marked read-only: for a
    tensor its owner replaces rather than modifies (the coordinator's θ)."""
    array = vector.detach().cpu().numpy()
    array.flags.writeable = False
    return array


def from_numpy(array: np.ndarray, *, dtype: torch.dtype, device: str) -> torch.Tensor:
    # Arrays out of Ray's object store are read-only: copy before torch wraps them.
    return torch.from_numpy(np.array(array, copy=True)).to(dtype=dtype, device=device)


def seed_for(*keys: int) -> int:
    """A 63-bit seed from integer keys (job seed, rank, round, …), the same in
    every process."""
    state = np.random.SeedSequence(list(keys)).generate_state(2, dtype=np.uint64)
    return int(state[0]) & (2**63 - 1)


def all_finite(vector: torch.Tensor) -> bool:
    """Whether every value is finite. A finite sum proves it without the p-element
    mask that isfinite() allocates (a NaN or inf anywhere makes the sum non-finite);
    only a non-finite sum (a divergence, or finite values overflowing it) pays for the
    exact check."""
    return math.isfinite(float(vector.sum())) or bool(torch.isfinite(vector).all())
