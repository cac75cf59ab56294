"""Connecting a process to Ray: a real cluster at RAY_ADDRESS, or a local one.

Ray 2.60 turns token authentication on by default. We keep it on: a local Ray
writes its token to ~/.ray/auth_token and every Python client on the machine finds
it; on a cluster the same token must reach every node (docs/cluster.md).
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import ray
from ray._private.state import state as ray_state
from ray.util.placement_group import (
    PlacementGroup,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

from service.schemas.gang import Bundle
from service.schemas.node_fit import NodeShape, placement

log = logging.getLogger(__name__)


def connect(
    address: str | None,
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    retry_seconds: float = 0.0,
) -> None:
    """Join the cluster at `address`, or start a local Ray when it is None.

    Joining is retried with backoff for up to `retry_seconds`: a worker restarted
    while the Ray head restarts waits for it instead of exiting. (A Ray client does
    not survive its head: Ray aborts the process, and the worker's supervisor starts
    it again; docs/reliability.md.)

    Ray installs its own SIGTERM handler, which stops uvicorn from shutting down
    cleanly; we restore the process's previous handler afterwards.
    """
    if ray.is_initialized():
        return
    previous = signal.getsignal(signal.SIGTERM)
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address:
        _join(address, retry_seconds, kwargs)
    else:
        # "local": always a new Ray of our own, never one that `ray start` left
        # registered in /tmp/ray/ray_current_cluster.
        ray.init(
            address="local",
            num_cpus=None if num_cpus is None else int(num_cpus),
            num_gpus=None if num_gpus is None else int(num_gpus),
            include_dashboard=False,
            **kwargs,
        )
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
    log.info("connected to Ray at %s", ray.get_runtime_context().gcs_address)


class RayUnreachable(ConnectionError):
    """No Ray to join at the address within the connect deadline; the message says
    what was tried and what to check."""


def _join(address: str, retry_seconds: float, kwargs: dict[str, Any]) -> None:
    deadline = time.monotonic() + retry_seconds
    backoff = 1.0
    endpoint = gcs_endpoint(address)
    while True:
        # A TCP probe first: `ray.init` to an address where nothing listens does not
        # fail, it retries inside Ray for minutes, past our deadline and deaf to it.
        # (Something that accepts TCP but is not Ray's GCS still hangs `ray.init`.)
        timeout = max(1.0, min(5.0, deadline - time.monotonic()))
        reason = None if endpoint is None else _unreachable(endpoint, timeout)
        if reason is None:
            try:
                ray.init(address=address, **kwargs)
                return
            except ConnectionError as exc:
                reason = str(exc) or type(exc).__name__
        if time.monotonic() + backoff > deadline:
            raise RayUnreachable(
                f"cannot join Ray at {address} within {retry_seconds:g} s "
                f"(LAGTRAIN_RAY_CONNECT_SECONDS): {reason}. Check RAY_ADDRESS (the head's "
                "GCS port, 6379 by default) and that this process's RAY_AUTH_MODE and "
                "token (RAY_AUTH_TOKEN, else ~/.ray/auth_token) match the cluster's: a wrong "
                "token fails the same way (docs/cluster.md)"
            )
        log.warning("Ray at %s is not reachable (%s); retrying in %g s", address, reason, backoff)
        time.sleep(backoff)  # nothing else to do until Ray answers
        backoff = min(backoff * 2, 15.0)


def gcs_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) of `host:port`, `[v6]:port` or `ray://host:port`; None for what
    Ray resolves itself ("auto") or cannot be read as one (a bare IPv6 address): no
    probe then, `ray.init` alone."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1], int(port)
    return None if ":" in host else (host, int(port))


def _unreachable(endpoint: tuple[str, int], timeout: float) -> str | None:
    """Why nothing accepts a TCP connection at `endpoint`, or None if something does."""
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            return None
    except OSError as exc:
        return f"{endpoint[0]}:{endpoint[1]}: {exc.strerror or exc}"


def free_resources() -> tuple[float, float]:
    """(CPU, GPU) logical resources free now, cluster-wide."""
    available = ray.available_resources()
    return float(available.get("CPU", 0.0)), float(available.get("GPU", 0.0))


def total_resources() -> tuple[float, float]:
    total = ray.cluster_resources()
    return float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0))


# Each live node's resources by its Ray node id, in id order.
NodeTable = dict[str, NodeShape]


def cluster_totals() -> tuple[tuple[float, float], NodeTable | None]:
    """The cluster's (CPU, GPU) totals and each live node's totals, from one read."""
    return _summed(ray_state.total_resources_per_node, total_resources)


def cluster_free() -> tuple[tuple[float, float], NodeTable | None]:
    """The (CPU, GPU) free cluster-wide and on each live node, from one read."""
    return _summed(ray_state.available_resources_per_node, free_resources)


def _summed(
    per_node: Callable[[], Mapping[str, Mapping[str, float]]],
    sums: Callable[[], tuple[float, float]],
) -> tuple[tuple[float, float], NodeTable | None]:
    """Ray's public sums add up the same per-node tables, so one read of a table gives
    both. Ray has no public per-node call without its dashboard (ray.util.state needs
    it; we start Ray without), so the tables are read through `ray._private.state`: a
    private module a Ray release may change. Where it raises, the public sum alone,
    nodes None (logged once): gangs are then judged by the sums, as before."""
    global _node_reads_failed
    try:
        nodes = dict(sorted(_per_node(per_node).items()))
    except Exception as exc:  # a private API: whatever it raises, the sums still work
        if not _node_reads_failed:
            log.warning("Ray's per-node resources are unavailable (%r): judging by sums", exc)
        _node_reads_failed = True
        return sums(), None
    _node_reads_failed = False
    shapes = nodes.values()
    return (sum(n.cpus for n in shapes), sum(n.gpus for n in shapes)), nodes


_node_reads_failed = False  # logged once per streak of failures


def _per_node(read: Callable[[], Mapping[str, Mapping[str, float]]]) -> dict[str, NodeShape]:
    """{node id: its resources} from one of `ray._private.state`'s per-node tables."""
    return {node_id: NodeShape.from_report(resources) for node_id, resources in read().items()}


# Ray labels each node with its id; a bundle's label selector pins it to one node.
NODE_ID_LABEL = "ray.io/node-id"
# How long Ray's own PACK search gets before the gang is pinned (place_gang): a group
# that fits now is placed in milliseconds.
PIN_AFTER_SECONDS = 2.0


def place_gang(bundles: list[Bundle]) -> PlacementGroup:
    """A placement group for a gang's bundles (`[coordinator, replica, ...]`,
    gang.gang_bundles), as Ray's PACK strategy places it; not placed after
    PIN_AFTER_SECONDS, replaced by one with each bundle pinned to the node
    node_fit.placement chooses on what the nodes have free then. Ray's search can
    miss a placement that exists — nodes of 4 and 3 CPUs, three replicas of 2: it
    puts the coordinator on the 4-CPU node — and the gang then waited
    `gang_ready_seconds` and failed, attempt after attempt (docs/decisions.md).
    Where no placement fits then, or the per-node read fails, Ray's group stays."""
    group: PlacementGroup = placement_group(bundles, strategy="PACK")
    try:
        if group.wait(PIN_AFTER_SECONDS) or (pins := pinned_to_nodes(bundles)) is None:
            return group
    except BaseException:  # not the caller's yet: it could not remove it
        remove_placement_group(group)
        raise
    remove_placement_group(group)
    log.info("Ray's PACK search did not place the gang %s: pinned to nodes %s", bundles, pins)
    pinned: PlacementGroup = placement_group(bundles, strategy="PACK", bundle_label_selector=pins)
    return pinned


def bundle_nodes(group: PlacementGroup, bundles: list[Bundle]) -> dict[str, list[Bundle]]:
    """A placed group's bundles on each node, by node id (what the dispatcher could
    free there: capacity.room); empty where Ray's table does not say (the room then
    counts the gang on every node)."""
    try:
        nodes = placement_group_table(group)["bundles_to_node_id"]
        held: dict[str, list[Bundle]] = {}
        for index, bundle in enumerate(bundles):
            held.setdefault(nodes[index], []).append(bundle)
        return held
    except Exception as exc:  # whatever its table lacks: the room is bounded without it
        log.debug("the placement group's nodes are unknown: %r", exc)
        return {}


def pinned_to_nodes(bundles: list[Bundle]) -> list[dict[str, str]] | None:
    """A label selector per bundle, pinning each to the node node_fit.placement
    chooses on what the nodes have free now; None when no placement fits now or
    the per-node read fails."""
    try:
        free = _per_node(ray_state.available_resources_per_node)
    except Exception:  # a private API (see _summed, which logs it): not pinned
        return None
    ids = list(free)
    nodes = [free[node_id] for node_id in ids]
    gang = {"coordinator": bundles[0], "replica": bundles[-1]}  # the replicas are alike
    chosen = placement(gang, len(bundles) - 1, nodes)
    return None if chosen is None else [{NODE_ID_LABEL: ids[index]} for index in chosen]
