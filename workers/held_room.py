"""The room a dispatcher's claims hold for a job that has waited (service.store.
claim_candidate), with the jobs named that cannot hold it: those its claims passed
over on the free nodes when the room is those nodes (node_fit.unplaceable_in), and
those whose gangs pack on no set of its nodes (held_packing.holds_that_cannot_pack,
asked at each maintenance)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from sqlalchemy.orm import Session, sessionmaker

from service.schemas.node_fit import ClusterRoom, NodeShape, unplaceable_in
from service.settings import Settings
from service.store.db import read_transaction
from service.store.held_packing import holds_that_cannot_pack
from workers.capacity import CapacityWindow
from workers.loop_errors import store_unreachable
from workers.own_gangs import OwnGang
from workers.passed_over import PassedOverJobs

log = logging.getLogger(__name__)


def room_now(
    capacity: CapacityWindow,
    free: tuple[float, float],
    running: list[OwnGang],
    free_nodes: Mapping[str, NodeShape] | None,
    passed_over: PassedOverJobs,
) -> ClusterRoom | None:
    """capacity.room, naming the jobs passed over on these free nodes that cannot
    hold it (as the claim judges them)."""
    room = capacity.room(free, running, free_nodes)
    if room is None:
        return None
    shapes = None if free_nodes is None else tuple(free_nodes.values())
    unfit = unplaceable_in(room, shapes, passed_over.peek(shapes))
    return dataclasses.replace(room, unplaceable=unfit)


def name_unpackable(
    sessions: sessionmaker[Session],
    room: ClusterRoom | None,
    settings: Settings,
    known: tuple[int, ...],
) -> tuple[ClusterRoom | None, tuple[int, ...]]:
    """`room` naming also the jobs that would hold it but pack on none of its node
    sets, and those jobs (the claims until the next maintenance name them too;
    `known`: the last turn's, tested again). Read in a transaction of its own: on
    SQLite the maintenance's write transaction holds the database's write lock."""
    if room is None:
        return None, known
    try:
        with read_transaction(sessions) as session:
            unpackable = holds_that_cannot_pack(
                session=session,
                room=room,
                hold_room_after=settings.hold_room_after(),
                quota_defaults=settings.quota_defaults(),
                fair_share_window=settings.fair_share_window(),
                known=known,
            )
    except Exception as exc:
        if store_unreachable(exc):
            raise  # the dispatcher's loop rides a store outage (and counts it: reap_grace)
        # Advice to the claim: the maintenance goes on with the names it had.
        log.warning("could not test the jobs that would hold the room (kept as named): %s", exc)
        unpackable = known
    return with_unplaceable(room, unpackable), unpackable


def with_unplaceable(room: ClusterRoom | None, jobs: tuple[int, ...]) -> ClusterRoom | None:
    if room is None or not jobs:
        return room
    named = tuple(dict.fromkeys((*room.unplaceable, *jobs)))  # each once, in order
    return dataclasses.replace(room, unplaceable=named)
