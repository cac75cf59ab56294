"""A live jobs list for the dashboard: one SSE stream per open list page instead of
one per job (a browser holds at most six connections per server over HTTP/1.1).

It sends the page (the same shape as GET /v1/jobs) at once and again whenever it
changes — a status, progress or summary, a new or removed job."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from service.api.deps import Cursor, Limit, Sessions, decode_cursor
from service.api.jobs import JobStatusFilter, OwnerFilter, jobs_page
from service.api.responses import errors
from service.auth import CurrentUser
from service.schemas.jobs import JobStatus
from service.store.users import Principal

router = APIRouter(prefix="/v1/feeds", tags=["jobs"])

POLL_SECONDS = 0.5
# A feed ends after this long and the page reconnects: the token is checked again
# then, so a revoked token does not keep a list streaming for hours.
FEED_SECONDS = 300.0


async def _pages(
    sessions: sessionmaker[Session],
    principal: Principal,
    *,
    status_filter: JobStatus | None,
    owner: str | None,
    limit: int,
    cursor: str | None,
) -> AsyncIterator[dict[str, str]]:
    last = ""
    deadline = time.monotonic() + FEED_SECONDS
    while True:
        page = await run_in_threadpool(
            jobs_page,
            sessions,
            principal,
            status_filter=status_filter,
            owner=owner,
            limit=limit,
            cursor=cursor,
        )
        data = page.model_dump_json()
        if data != last:
            last = data
            yield {"event": "jobs", "data": data}
        if time.monotonic() >= deadline:
            return
        await anyio.sleep(POLL_SECONDS)


@router.get(
    "/jobs",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "SSE stream"},
        **errors(401),
    },
)
def jobs_feed(
    principal: CurrentUser,
    sessions: Sessions,
    status_filter: JobStatusFilter = None,
    owner: OwnerFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EventSourceResponse:
    """SSE `jobs` events, each a page as GET /v1/jobs answers it with these filters."""
    decode_cursor(cursor)  # a bad cursor is a 422 now, not a broken stream later
    return EventSourceResponse(
        _pages(
            sessions,
            principal,
            status_filter=status_filter,
            owner=owner,
            limit=limit,
            cursor=cursor,
        )
    )
