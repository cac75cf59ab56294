"""What the in-process reference runner records for a spec: the trajectory the Ray
path (object store or warm pool, any rule) must reproduce."""

from __future__ import annotations

import torch

from service.schemas.resolved import ResolvedSpec
from workers.training.runner import run_reference


def reference_records(spec: ResolvedSpec) -> list[dict[str, float]]:
    records: list[dict[str, float]] = []
    run_reference(spec, on_record=lambda _r, v: records.append(v), dtype=torch.float64)
    return records
