"""A live jobs list for the dashboard: one SSE stream per open list page instead of
one per job (a browser holds at most six connections per server over HTTP/1.1).

It sends the page (GET /v1/jobs's shape, each row without its spec) at once, then
whenever it changes — a status, progress or summary, a new or removed job — only the
rows that changed, and the page's ids when they changed (service.api.feed_page)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from service.api.deps import AppSettings, Cursor, Limit, Sessions, decode_cursor
from service.api.event_stream import EventStream
from service.api.feed_page import FeedPage
from service.api.job_filters import JobFilters, ListingFilters, page_query
from service.api.jobs import read_page
from service.api.responses import errors
from service.api.stream_guard import StreamSlots, TokenRecheck
from service.auth import CurrentUser
from service.schemas.common import Page
from service.schemas.jobs import JobOut
from service.store.db import read_transaction
from service.store.jobs import jobs_fingerprint
from service.store.users import Principal

router = APIRouter(prefix="/v1/feeds", tags=["jobs"])

POLL_SECONDS = 0.5
# A feed ends after this long and the page reconnects (its token is also re-checked
# every stream_auth_recheck_seconds while it runs, service.api.stream_guard).
FEED_SECONDS = 300.0


def _poll(
    sessions: sessionmaker[Session],
    principal: Principal,
    seen: list[tuple[Any, ...]] | None,
    filters: JobFilters,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[tuple[Any, ...]], Page[JobOut] | None]:
    """The page's rows without their specs, and the page itself only when they differ
    from `seen`: an idle list costs one narrow query a poll (the page was rebuilt —
    specs read, models built — every poll). One transaction, one thread hop."""
    with read_transaction(sessions) as session:
        query = page_query(principal, filters, limit=limit, cursor=cursor)
        now = jobs_fingerprint(session=session, **query)
        return now, None if now == seen else read_page(session, query, limit)


async def _pages(
    sessions: sessionmaker[Session],
    principal: Principal,
    filters: JobFilters,
    *,
    limit: int,
    cursor: str | None,
    still_allowed: TokenRecheck | None = None,
) -> AsyncIterator[dict[str, str]]:
    sent = FeedPage()
    seen: list[tuple[Any, ...]] | None = None
    deadline = time.monotonic() + FEED_SECONDS
    while True:
        seen, page = await run_in_threadpool(
            _poll,
            sessions,
            principal,
            seen,
            filters,
            limit=limit,
            cursor=cursor,
        )
        event = None if page is None else sent.event(page)
        if event is not None:
            yield event
        if time.monotonic() >= deadline:
            return
        if still_allowed is not None and not await still_allowed():
            return
        await anyio.sleep(POLL_SECONDS)


@router.get(
    "/jobs",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "SSE stream"},
        **errors(401, 422, 429),
    },
)
def jobs_feed(
    request: Request,
    principal: CurrentUser,
    sessions: Sessions,
    settings: AppSettings,
    filters: ListingFilters,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EventSourceResponse:
    """The jobs list as GET /v1/jobs pages it with these filters, live. Each row is a
    job as GET /v1/jobs lists it without `spec` (GET /v1/jobs/{id} has it).

    First a `jobs` event: the page, `{"data": [rows], "next_cursor": ...}`. Then, at
    each change, a `changes` event: `{"data": [the rows that are new or changed],
    "ids": [the page's job ids, in order], "next_cursor": ...}`, `ids` only when they
    changed (a row whose id is not in them left the page; without them, the page's
    order and rows are as they were). A reconnection starts again with `jobs`.
    Counts against max_streams_per_user; closes once its token stops being valid."""
    decode_cursor(cursor)  # a bad cursor is a 422 now, not a broken stream later
    # The same per-user stream cap and token re-check as a job's stream.
    slots: StreamSlots = request.app.state.stream_slots
    slots.acquire(principal.user_id, settings.max_streams_per_user)
    recheck = TokenRecheck(sessions, principal.token_id, settings.stream_auth_recheck_seconds)
    pages = _pages(
        sessions,
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        still_allowed=recheck,
    )
    return EventStream(pages, on_close=lambda: slots.release(principal.user_id))
