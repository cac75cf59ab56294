"""The gang shape: the Ray resources a job's gang reserves, written once. The
placement group is exactly these bundles (workers.ray_job), and the queue's fit test
and explain use their sum (stored on the job at submit), so what the claim counts
is what Ray reserves.

The coordinator's bundle holds the aggregated gradient and steps the optimizer: one
CPU, no GPU. Each replica gets `cpus_per_worker` CPUs and `gpus_per_worker` GPUs.
"""

from __future__ import annotations

from service.schemas.resolved import ResolvedSpec

Bundle = dict[str, float]

COORDINATOR_BUNDLE: Bundle = {"CPU": 1.0}


def gang_bundles(spec: ResolvedSpec) -> list[Bundle]:
    """[coordinator, replica 0, …, replica M-1], Ray's resource names."""
    dist = spec.distributed
    replica: Bundle = {"CPU": dist.cpus_per_worker}
    if dist.gpus_per_worker > 0:
        replica["GPU"] = dist.gpus_per_worker
    return [dict(COORDINATOR_BUNDLE)] + [dict(replica) for _ in range(dist.workers)]


def gang_totals(spec: ResolvedSpec) -> tuple[float, float]:
    """(CPUs, GPUs) the whole gang reserves: the sum of its bundles."""
    bundles = gang_bundles(spec)
    return (
        sum(b.get("CPU", 0.0) for b in bundles),
        sum(b.get("GPU", 0.0) for b in bundles),
    )
