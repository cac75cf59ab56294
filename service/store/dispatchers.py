"""Dispatchers: the registry each dispatcher refreshes, and the Ray resources they
report, as /v1/cluster and explain read them.

A dispatcher is *alive* when it was seen within one lease period and has not stopped
(is_alive: the one rule /v1/cluster, its resources and explain judge by). One that
exited cleanly stamps stopped_at (mark_dispatcher_stopped) and is *stopped* at once;
one not seen within the lease period without saying so is *lost* (killed, crashed,
partitioned: it may still come back).

Dispatcher rows carry Ray's logical resources, either flat (``{"CPU": 8, "GPU": 1}``,
the totals) or as ``{"total": {...}, "free": {...}}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.store.db import db_now
from service.store.models import Dispatcher, table_of

# The most recently seen dispatchers /v1/cluster and explain read: every dispatcher
# that ever started stays registered, one row per worker start.
RECENT_DISPATCHERS = 200
# /v1/cluster and /metrics show dispatchers seen within this long (at most
# RECENT_DISPATCHERS, the most recently seen); older ones are stale and left out.
STALE_DISPATCHER = timedelta(hours=1)


def upsert_dispatcher(
    *,
    session: Session,
    dispatcher_id: str,
    hostname: str,
    resources: dict[str, Any],
    now: datetime | None = None,
) -> Dispatcher:
    """Register a dispatcher or refresh its hostname, resources and last_seen_at, by
    the database's clock (db_now), which the API judges it by. A dispatcher that
    registers again under the id of a stopped one (ids are the caller's to choose)
    runs again: its stopped_at is cleared."""
    now = now or db_now(session)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = table_of(Dispatcher)
    stmt = insert(table).values(
        id=dispatcher_id, hostname=hostname, resources=resources, started_at=now, last_seen_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={
                "hostname": stmt.excluded.hostname,
                "resources": stmt.excluded.resources,
                "last_seen_at": stmt.excluded.last_seen_at,
                "stopped_at": None,
            },
        )
    )
    dispatcher = session.get(Dispatcher, dispatcher_id, populate_existing=True)
    assert dispatcher is not None  # just written
    return dispatcher


def mark_dispatcher_stopped(
    *, session: Session, dispatcher_id: str, now: datetime | None = None
) -> Dispatcher | None:
    """Record that the dispatcher exited cleanly, by the database's clock: it is not
    alive from now on, whatever its last_seen_at says. A second mark keeps the first
    time; None if no such dispatcher ever registered."""
    dispatcher = session.get(Dispatcher, dispatcher_id, populate_existing=True)
    if dispatcher is None:
        return None
    if dispatcher.stopped_at is None:
        dispatcher.stopped_at = now or db_now(session)
        session.flush()
    return dispatcher


class Stamped(Protocol):
    """What liveness reads of a dispatcher: its row, or a copy kept past its session."""

    @property
    def last_seen_at(self) -> datetime: ...

    @property
    def stopped_at(self) -> datetime | None: ...


def is_alive(dispatcher: Stamped, *, alive_since: datetime) -> bool:
    """The one rule for a live dispatcher: seen at or after `alive_since` (the
    database's now less one lease period) and not stopped."""
    return dispatcher.stopped_at is None and dispatcher.last_seen_at >= alive_since


def dispatcher_state(dispatcher: Dispatcher, *, alive_since: datetime) -> str:
    """ "alive", "stopped" (it exited cleanly) or "lost" (not seen for a lease period,
    without saying it stopped): as the Lab names them."""
    if dispatcher.stopped_at is not None:
        return "stopped"
    return "alive" if is_alive(dispatcher, alive_since=alive_since) else "lost"


def live_dispatchers(
    dispatchers: Sequence[Dispatcher], *, alive_since: datetime
) -> list[Dispatcher]:
    return [d for d in dispatchers if is_alive(d, alive_since=alive_since)]


def list_dispatchers(
    *, session: Session, seen_since: datetime | None = None, limit: int | None = None
) -> list[Dispatcher]:
    """Registered dispatchers, most recently seen first; `seen_since` drops the stale
    ones (every dispatcher that ever ran stays registered)."""
    query = select(Dispatcher).order_by(Dispatcher.last_seen_at.desc(), Dispatcher.id)
    if seen_since is not None:
        query = query.where(Dispatcher.last_seen_at >= seen_since)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def recent_dispatchers(*, session: Session, now: datetime) -> list[Dispatcher]:
    """The dispatchers /v1/cluster, /metrics and the submit's capacity check read:
    seen within STALE_DISPATCHER of `now` (the database's clock), at most
    RECENT_DISPATCHERS, the most recently seen first."""
    return list_dispatchers(
        session=session, seen_since=now - STALE_DISPATCHER, limit=RECENT_DISPATCHERS
    )


def resource_view(resources: dict[str, Any], part: str) -> dict[str, float] | None:
    """`part` ("total" or "free") of a dispatcher's resources; None when it did not
    report free resources (the flat form)."""
    nested = resources.get(part)
    if isinstance(nested, dict):
        return {k: float(v) for k, v in nested.items() if isinstance(v, int | float)}
    if part == "total":
        return {k: float(v) for k, v in resources.items() if isinstance(v, int | float)}
    return None


def reported_resources(dispatcher: Dispatcher, *, alive: bool, admin: bool) -> dict[str, Any]:
    """The dispatcher's last report, as /v1/cluster shows it: one that stopped or was
    lost runs nothing any more (a clean stop handed its jobs back; a lost one's are
    the reapers' to requeue), whatever count it last reported. The room's
    "unplaceable" job ids (explain's) are shown to admins only: another user's job is
    a 404 on every route, so its id is no one else's to read."""
    report = dict(dispatcher.resources)
    if not alive and "running_jobs" in report:
        report["running_jobs"] = 0
    room = report.get("room")
    if not admin and isinstance(room, dict) and "unplaceable" in room:
        report["room"] = {key: value for key, value in room.items() if key != "unplaceable"}
    return report


def cluster_resources(
    dispatchers: Sequence[Dispatcher], *, alive_since: datetime
) -> dict[str, dict[str, float]]:
    """The Ray cluster as the most recently seen live dispatcher reported it
    ({"total": {}, "free": {}} with none alive): every dispatcher of a cluster sees
    the same Ray, and the freshest report is the least stale."""
    live = live_dispatchers(dispatchers, alive_since=alive_since)
    if not live:
        return {"total": {}, "free": {}}
    freshest = max(live, key=lambda d: d.last_seen_at)
    return {
        "total": resource_view(freshest.resources, "total") or {},
        "free": resource_view(freshest.resources, "free") or {},
    }
