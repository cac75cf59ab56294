"""Starting a gang's own actors inside its placement group, and the bounded wait every
gang step uses (workers.ray_job holds the gang; this is the Ray plumbing it calls)."""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from service.schemas.resolved import ResolvedSpec
from workers.ray_actors import JobDriver, ReplicaHost


def device_for(gpus_per_worker: float) -> str:
    return "cuda" if gpus_per_worker > 0 else "cpu"


def get_within(refs: Any, timeout_s: float, what: str) -> Any:
    """ray.get with a bound; past it a TimeoutError that says which step hung (the
    attempt fails with it and is retried; the caller's stop kills the actors)."""
    try:
        return ray.get(refs, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError as exc:
        raise TimeoutError(
            f"{what} within {timeout_s:.0f} s (LAGTRAIN_GANG_READY_SECONDS)"
        ) from exc


def start_own_actors(
    pg: Any,
    spec: ResolvedSpec,
    bundles: list[dict[str, float]],
    *,
    name: str,
    replica_args: list[dict[str, Any]],
    driver_args: dict[str, Any],
    started: list[Any],
) -> tuple[list[Any], Any]:
    """The job's own replicas (bundles 1..M) and driver (bundle 0), each pinned to its
    bundle of `pg` and named `name`-replicaR / `name`-driver, so an operator or a test
    can find them; returns (replicas, driver). `replica_args[r]` and `driver_args` are
    the keyword arguments of ReplicaHost and JobDriver (the driver also gets the
    replicas). Each actor is appended to `started` as it is made: one raising part way
    leaves the caller every actor to kill."""
    replica_cls = ray.remote(ReplicaHost)
    replicas = []
    for rank, bundle in enumerate(bundles[1:]):
        replica = replica_cls.options(
            name=f"{name}-replica{rank}",
            max_concurrency=2,  # state_dict() while serve() runs the rounds
            num_cpus=bundle["CPU"],
            num_gpus=bundle.get("GPU", 0.0),
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                pg, placement_group_bundle_index=rank + 1
            ),
        ).remote(spec, rank, **replica_args[rank])
        started.append(replica)
        replicas.append(replica)
    driver = (
        ray.remote(JobDriver)
        .options(
            name=f"{name}-driver",
            num_cpus=bundles[0]["CPU"],
            max_concurrency=2,  # request_stop() while run() streams
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                pg, placement_group_bundle_index=0
            ),
        )
        .remote(spec, replicas=list(replicas), **driver_args)
    )
    started.append(driver)
    return replicas, driver
