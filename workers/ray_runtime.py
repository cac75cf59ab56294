"""Connecting a process to Ray: a real cluster at RAY_ADDRESS, or a local one.

Ray 2.60 turns token authentication on by default. We keep it on: a local Ray
writes its token to ~/.ray/auth_token and every Python client on the machine finds
it; on a cluster the same token must reach every node (docs/cluster.md).
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import ray

log = logging.getLogger(__name__)


def connect(
    address: str | None,
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
) -> None:
    """Join the cluster at `address`, or start a local Ray when it is None.

    Ray installs its own SIGTERM handler, which stops uvicorn from shutting down
    cleanly; we restore the process's previous handler afterwards.
    """
    if ray.is_initialized():
        return
    previous = signal.getsignal(signal.SIGTERM)
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(
            num_cpus=None if num_cpus is None else int(num_cpus),
            num_gpus=None if num_gpus is None else int(num_gpus),
            include_dashboard=False,
            **kwargs,
        )
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
    log.info("connected to Ray at %s", ray.get_runtime_context().gcs_address)


def free_resources() -> tuple[float, float]:
    """(CPU, GPU) logical resources free now, cluster-wide."""
    available = ray.available_resources()
    return float(available.get("CPU", 0.0)), float(available.get("GPU", 0.0))


def total_resources() -> tuple[float, float]:
    total = ray.cluster_resources()
    return float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0))
