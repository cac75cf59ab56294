"""The gang shape: the Ray resources a job's gang reserves, written once. The
placement group is exactly these bundles (workers.ray_job), and the queue's fit test
and explain use their sum (stored on the job at submit), so what the claim counts
is what Ray reserves.

The coordinator's bundle holds the aggregated gradient and steps the optimizer: one
CPU, no GPU. Each replica gets `cpus_per_worker` CPUs and `gpus_per_worker` GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.schemas.resolved import ResolvedSpec

Bundle = dict[str, float]

COORDINATOR_BUNDLE: Bundle = {"CPU": 1.0}

# What each of a gang's processes holds before any of its job's tensors: the
# interpreter, torch and Ray's worker runtime (measured: docs/operations.md, "Limits
# per job"). The cost model leaves it out (its estimate is what a job adds, compared
# with measured peaks above this); the reservation adds it to every bundle, so that a
# gang of many tiny replicas (256 x 0.01 CPU passes any CPU quota) reserves the memory
# its processes take, and the claim and the capacity window judge it.
PROCESS_BASE_BYTES = 256 << 20


@dataclass(frozen=True)
class GangMemory:
    """The cost model's estimate (service.schemas.cost), stored on the job at submit:
    Ray reserves it, with PROCESS_BASE_BYTES, as each bundle's `memory`, so it never
    over-packs a node."""

    replica_bytes: int
    coordinator_bytes: int


def reserved_bytes(estimate: float) -> float:
    """A bundle's `memory` reservation for a process whose job adds `estimate` bytes.
    (node_fit_sql.bundle_columns writes the same sum in SQL.)"""
    return float(estimate) + PROCESS_BASE_BYTES


def gang_bundles(spec: ResolvedSpec, memory: GangMemory | None = None) -> list[Bundle]:
    """[coordinator, replica 0, …, replica M-1], Ray's resource names. Without
    `memory` (jobs submitted before the estimate was stored) no memory is reserved."""
    coordinator: Bundle = dict(COORDINATOR_BUNDLE)
    replica = replica_bundle(spec)
    if memory is not None:
        coordinator["memory"] = reserved_bytes(memory.coordinator_bytes)
        replica["memory"] = reserved_bytes(memory.replica_bytes)
    return [coordinator] + [dict(replica) for _ in range(spec.distributed.workers)]


def replica_bundle(spec: ResolvedSpec) -> Bundle:
    """One replica's CPUs and GPUs (no memory: gang_bundles adds the estimate)."""
    dist = spec.distributed
    replica: Bundle = {"CPU": dist.cpus_per_worker}
    if dist.gpus_per_worker > 0:
        replica["GPU"] = dist.gpus_per_worker
    return replica


def gang_totals(spec: ResolvedSpec) -> tuple[float, float]:
    """(CPUs, GPUs) the whole gang reserves: the sum of its bundles."""
    bundles = gang_bundles(spec)
    return (
        sum(b.get("CPU", 0.0) for b in bundles),
        sum(b.get("GPU", 0.0) for b in bundles),
    )
