"""What a dispatcher's resources say of a gang: none live, never fits, waiting for
capacity or for running gangs to end (explain's resource reasons)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from service.schemas.gang import Bundle
from service.schemas.jobs import BlockingReason
from service.schemas.node_counts import counts_memory, from_counted
from service.schemas.node_fit import (
    NodeShape,
    describe,
    misfit,
    most_free,
    never_together,
    packs,
    replicas_beside_coordinator,
)
from service.store.dispatchers import resource_view
from service.store.models import Dispatcher
from service.store.queue_order import exceeds


def _fits(required: dict[str, float], available: dict[str, float]) -> bool:
    return not any(exceeds(v, available.get(k, 0.0)) for k, v in required.items() if v)


def capacity_of(resources: dict[str, Any]) -> dict[str, float]:
    """What a dispatcher judges queued jobs against, from its report: the largest
    CPU/GPU total it saw over its capacity window (or the operator's ceiling); older
    rows report only "total" ({} when the report names neither)."""
    view = resource_view(resources, "capacity") or resource_view(resources, "total") or {}
    return {kind: view[kind] for kind in ("CPU", "GPU") if kind in view}


def never_fits_reason(required: dict[str, float], capacities: list[dict[str, float]]) -> str | None:
    """Why no dispatcher would ever start the gang (each fails such a job once it has
    watched its capacity window), or None when one could. Capacities naming no CPU
    are unknown and left out; with none known, None."""
    known = [capacity for capacity in capacities if "CPU" in capacity]
    if not known or any(_fits(required, capacity) for capacity in known):
        return None
    return (
        f"the gang needs {_describe(required)}; the largest cluster a dispatcher sees has "
        f"{_describe(largest_cluster(required, known))}, so it can never start"
    )


def largest_cluster(
    required: dict[str, float], capacities: list[dict[str, float]]
) -> dict[str, float]:
    """The cluster to name to a gang that fits none: the one nearest to holding it, by
    what it lacks most (GPUs first when it asks for any). One real cluster's figures,
    not each resource's most over several (64 CPU from one, 4 GPU from another read as
    a cluster that would hold it: a review)."""
    known = [capacity for capacity in capacities if "CPU" in capacity]
    gpus = required.get("GPU", 0.0) > 0
    return max(known, key=lambda t: (t.get("GPU", 0.0), t["CPU"]) if gpus else (t["CPU"],))


def nodes_of(reports: list[dict[str, Any]]) -> list[NodeShape]:
    """The node shapes dispatchers' reports name ([] from reports that name none:
    older ones, or a dispatcher given a ceiling, which judges no nodes)."""
    nodes = [r.get("nodes") for r in reports]
    return [NodeShape.from_report(n) for ns in nodes if isinstance(ns, list) for n in ns]


def never_on_a_node(bundles: dict[str, Bundle], reports: list[dict[str, Any]]) -> str | None:
    """Why no live dispatcher's nodes could hold one of `bundles` (node_fit.misfit, the
    first dispatcher's words), or None when one could, or names no nodes (unknown)."""
    whys = [misfit(bundles, nodes_of([report])) for report in reports]
    if not whys or None in whys:
        return None
    return whys[0]


def never_together_on(
    bundles: dict[str, Bundle], workers: int, reports: list[dict[str, Any]]
) -> str | None:
    """Why no live dispatcher's nodes could hold the whole gang at once, though each
    bundle fits some node (node_fit.never_together, the first dispatcher's words),
    or None when one could, or one names no node sets (unknown). Memory is judged
    where a report counts it (node_counts.counted), by CPU and GPU alone where an
    older dispatcher's does not."""
    sets = [s for r in reports if isinstance(s := r.get("node_sets"), list) and s]
    if not sets or len(sets) < len(reports):  # one names none: unknown there
        return None
    whys = [
        never_together(
            bundles if all(map(counts_memory, node_sets)) else without_memory(bundles),
            workers,
            [from_counted(nodes) for nodes in node_sets],
        )
        for node_sets in sets
    ]
    return None if None in whys else whys[0]


def without_memory(bundles: dict[str, Bundle]) -> dict[str, Bundle]:
    """`bundles` judged by CPU and GPU alone."""
    return {
        name: {kind: amount for kind, amount in bundle.items() if kind != "memory"}
        for name, bundle in bundles.items()
    }


# What a job waiting for free room should know of its queue position: the claim
# takes the first job in order that fits what is free, so smaller jobs behind it
# start meanwhile, however it ranks (a review saw 11 start past "position 1").
NO_ROOM_HELD = (
    "; no room is held for a waiting gang: smaller jobs queued behind it start "
    "meanwhile when they fit"
)


def none_live(dispatcher_timeout: timedelta) -> str:
    return (
        f"no dispatcher was seen in the last {dispatcher_timeout.total_seconds():g} s, "
        "or every one seen has stopped since"
    )


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in resources.items() if v) or "nothing"


def resource_reasons(
    required: dict[str, float],
    bundles: dict[str, Bundle],
    workers: int | None,  # None: a stored spec without them (judged per bundle)
    dispatchers: list[Dispatcher],
    live: list[Dispatcher],
    dispatcher_timeout: timedelta,
    wait_note: str = NO_ROOM_HELD,  # what a wait for free room adds (`room_wait_note`)
) -> list[BlockingReason]:
    if not dispatchers:
        return [
            BlockingReason(
                kind="no_dispatcher",
                message="no dispatcher has registered: start `lagtrain worker` "
                "(or `lagtrain server --embedded`)",
            )
        ]
    reasons: list[BlockingReason] = []
    if not live:
        reasons.append(
            BlockingReason(
                kind="no_dispatcher",
                message=none_live(dispatcher_timeout),
            )
        )
    # Judge by the live dispatchers' reports: every dispatcher that ever ran stays
    # registered, and a dead one's last "free" (e.g. from before a restart) would
    # hide the wait. With none live, their last totals are the best there is (free
    # resources are a live dispatcher's word only: below).
    dispatchers = live or dispatchers
    totals = [resource_view(d.resources, "total") or {} for d in dispatchers]
    capacities = [capacity_of(d.resources) for d in dispatchers]
    never = never_fits_reason(required, capacities)
    reports = [d.resources for d in dispatchers]
    if (
        never
        or (never := never_on_a_node(bundles, reports))
        or (workers is not None and (never := never_together_on(bundles, workers, reports)))
    ):
        reasons.append(BlockingReason(kind="resources", message=never))
        return reasons
    if not any(_fits(required, total) for total in totals):
        now = max(totals, key=lambda t: (t.get("GPU", 0.0), t.get("CPU", 0.0)))
        largest = max(capacities, key=lambda t: (t.get("GPU", 0.0), t.get("CPU", 0.0)))
        reasons.append(
            BlockingReason(
                kind="resources",
                message=f"waiting for capacity: the gang needs {_describe(required)}; the "
                f"cluster has {_describe(now)} now but recently had {_describe(largest)}",
            )
        )
        return reasons
    # Free resources are a live dispatcher's word only: one stopped or gone reported
    # the gangs it ran then, and no job waits for those to end.
    frees = [f for d in live if (f := resource_view(d.resources, "free")) is not None]
    if frees and not any(_fits(required, free) for free in frees):
        reasons.append(
            BlockingReason(
                kind="resources",
                message=f"waiting for {_describe(required)} to become free{wait_note}",
            )
        )
    elif crowded := _no_room_free(bundles, workers, live):
        reasons.append(BlockingReason(kind="resources", message=crowded + wait_note))
    return reasons


def _no_room_free(
    bundles: dict[str, Bundle], workers: int | None, live: list[Dispatcher]
) -> str | None:
    """Why the claim passes over a job whose gang fits the free resources summed: on
    no live dispatcher's free nodes (its report's "free_nodes") a bundle fits any one
    node, or the bundles fit no set of them at once (node_fit.packs)."""
    frees = [d.resources.get("free_nodes") for d in live]
    nodes = [[NodeShape.from_report(n) for n in f] for f in frees if isinstance(f, list)]
    if not nodes or len(nodes) < len(live):  # a report without them: not judged there
        return None
    if workers is not None and any(packs(bundles, workers, free) for free in nodes):
        return None
    most = [most_free(free) for free in nodes]
    if any(all(node.holds(b) for b in bundles.values()) for node in most):
        if workers is None:
            return None
        room = max(replicas_beside_coordinator(bundles, workers, free) for free in nodes)
        return (
            f"waiting for room for the whole gang at once: the free nodes hold {room} of "
            f"its {workers} replicas of {describe(bundles['replica'])} beside the "
            "coordinator now (Ray places each bundle on one node)"
        )
    name, bundle = next((n, b) for n, b in bundles.items() if not most[0].holds(b))
    return (
        f"waiting for a node with {describe(bundle)} free for a {name}'s bundle "
        f"(Ray places each on one node; the most free on one now: {describe(most[0].report())})"
    )
