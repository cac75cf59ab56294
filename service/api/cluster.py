"""The cluster as the store sees it: dispatchers, their Ray resources, the queue."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request

from service.api.deps import AppSettings, Sessions
from service.api.responses import errors
from service.auth import CurrentUser
from service.schemas.cluster import ClusterOut, DispatcherOut, QueuePlace
from service.store.db import db_now, read_transaction
from service.store.dispatchers import (
    cluster_resources,
    dispatcher_state,
    recent_dispatchers,
    reported_resources,
)
from service.store.explain import explain_queue_head
from service.store.job_counts import status_counts
from service.store.models import Dispatcher

router = APIRouter(prefix="/v1", tags=["cluster"])


# /v1/cluster's queue_head: this many queued jobs from the front of the claim order.
QUEUE_HEAD = 50


@router.get("/cluster", response_model=ClusterOut, responses=errors(401, 422))
def get_cluster(
    request: Request, principal: CurrentUser, sessions: Sessions, settings: AppSettings
) -> ClusterOut:
    """``resources`` is the Ray cluster as the most recently seen live dispatcher
    reported it ({"total": {}, "free": {}} with none alive). A dispatcher is alive if
    it was seen within one lease period and has not stopped; ``stopped_at`` says when
    one exited cleanly (null while it runs, or if it died without saying so: then
    ``alive`` turns false once the lease period passes). ``queue_head``: the first 50
    queued jobs in claim order (a user's own only, with their places in the whole
    queue), then up to 50 queued jobs the claim skips (position null: the owner is
    disabled, or a quota forbids the job by itself), each with what explain says
    holds it back. ``queue``: jobs per status, the terminal ones up to 15 s old
    (service.store.job_counts)."""
    with read_transaction(sessions) as session:
        # The database's clock, which dispatchers stamp their last_seen_at by.
        now = db_now(session)
        dispatchers = recent_dispatchers(session=session, now=now)
        counts = status_counts(session=session, terminal=request.app.state.terminal_counts)
        head = [
            QueuePlace(
                job_id=job.id,
                position=why.queue_position,
                name=job.name,
                owner=owner.name,
                priority=job.priority,
                reasons=why.reasons,
            )
            for job, owner, why in explain_queue_head(
                session=session,
                limit=QUEUE_HEAD,
                owner_id=None if principal.is_admin else principal.user_id,
                dispatcher_timeout=timedelta(seconds=settings.lease_seconds),
                quota_defaults=settings.quota_defaults(),
                fair_share_window=settings.fair_share_window(),
                hold_room_after=settings.hold_room_after(),
            )
        ]
    cutoff = now - timedelta(seconds=settings.lease_seconds)
    return ClusterOut(
        dispatchers=[
            _dispatcher_out(d, alive_since=cutoff, admin=principal.is_admin) for d in dispatchers
        ],
        resources=cluster_resources(dispatchers, alive_since=cutoff),
        queue=counts,
        queue_head=head,
    )


def _dispatcher_out(dispatcher: Dispatcher, *, alive_since: datetime, admin: bool) -> DispatcherOut:
    state = dispatcher_state(dispatcher, alive_since=alive_since)
    alive = state == "alive"
    return DispatcherOut(
        id=dispatcher.id,
        hostname=dispatcher.hostname,
        started_at=dispatcher.started_at,
        last_seen_at=dispatcher.last_seen_at,
        stopped_at=dispatcher.stopped_at,
        alive=alive,
        state=state,
        resources=reported_resources(dispatcher, alive=alive, admin=admin),
    )
