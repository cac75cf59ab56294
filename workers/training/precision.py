"""Precision (`model.dtype`, DESIGN §11): the dtype parameters, gradients, the lazy
test and the optimizer state are held in, and the autocast context a forward pass
runs under. float64 and float32 are storage dtypes; bfloat16 is autocast only: the
parameters, the gradients the skip test compares and the optimizer state stay
float32, and only the matrix products inside the forward pass run in bfloat16, on a
device that supports it (the API refuses bfloat16 without a GPU)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from service.schemas.resolved import ResolvedSpec


def storage_dtype(spec: ResolvedSpec) -> torch.dtype:
    return torch.float64 if spec.model.dtype == "float64" else torch.float32


def check_device(spec: ResolvedSpec, device: str) -> None:
    """A bfloat16 job placed where autocast to bfloat16 is unsupported is an error
    (not a silent float32 run)."""
    if spec.model.dtype != "bfloat16":
        return
    kind = torch.device(device).type
    if kind != "cuda" or not torch.cuda.is_bf16_supported():
        raise ValueError(f"model.dtype: bfloat16 autocast is not supported on {device!r}")


@contextlib.contextmanager
def forward_precision(spec: ResolvedSpec, device: str) -> Iterator[None]:
    # A coordinator placed on a CPU evaluates a bfloat16 job in float32.
    if spec.model.dtype != "bfloat16" or torch.device(device).type != "cuda":
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
        yield
