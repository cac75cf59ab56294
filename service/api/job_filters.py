"""The jobs listing's filters, read by GET /v1/jobs and by its live feed
(/v1/feeds/jobs) through one dependency: both take the same query parameters by the
same rules, and a new filter is added here once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.api.deps import MAX_ID, Sessions, decode_cursor, field_error
from service.api.user_refs import owner_filter_id
from service.auth import CurrentUser
from service.schemas.common import USER_NAME_PATTERN
from service.schemas.jobs import JobStatus
from service.store.db import read_transaction
from service.store.jobs import JobsQuery
from service.store.users import Principal

JobStatusFilter = Annotated[JobStatus | None, Query(alias="status")]
# A user name's own pattern (schemas.accounts): anything else names nobody, and a NUL
# would reach PostgreSQL as a 500.
OwnerFilter = Annotated[
    str | None,
    Query(
        max_length=100,
        pattern=USER_NAME_PATTERN,
        description="owner's name (admins; others see own)",
    ),
]
# Bounded like an id in a path (deps.JobId): a larger one would be a 500 on PostgreSQL.
SweepIdFilter = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="only this sweep's trial jobs")
]


async def _finished_before(
    finished_before: Annotated[
        datetime | None,
        Query(description="only those finished before this time (ISO 8601; no offset: UTC)"),
    ] = None,
) -> datetime | None:
    """The time as an aware UTC datetime, what the store compares finished_at with.
    A value with an offset whose UTC falls outside the years 1 to 9999 (Python's
    datetime) is a 422 naming the field rather than an OverflowError (a 500)."""
    if finished_before is None:
        return None
    if finished_before.tzinfo is None:  # UTC, as every time the API answers is
        return finished_before.replace(tzinfo=UTC)
    try:
        return finished_before.astimezone(UTC)
    except OverflowError:
        raise field_error(
            ("query", "finished_before"),
            "outside the years 1 to 9999 in UTC",
            finished_before.isoformat(),
        ) from None


# Shared with GET /v1/sweeps: both listings read it by the same rule.
FinishedBeforeFilter = Annotated[datetime | None, Depends(_finished_before)]


@dataclass(frozen=True)
class JobFilters:
    status: JobStatus | None = None
    owner_id: int | None = None  # ?owner= read by owner_filter_id (0: nobody's)
    sweep_id: int | None = None
    finished_before: datetime | None = None  # aware UTC


def _owner_id(sessions: sessionmaker[Session], viewer: Principal, name: str) -> int | None:
    with read_transaction(sessions) as session:
        return owner_filter_id(session=session, viewer=viewer, name=name)


async def _job_filters(
    principal: CurrentUser,
    sessions: Sessions,
    finished_before: FinishedBeforeFilter,
    status_filter: JobStatusFilter = None,
    owner: OwnerFilter = None,
    sweep_id: SweepIdFilter = None,
) -> JobFilters:
    # The owner is read here, before the route answers: an admin's unknown name is a
    # 422 from the live feed too, not a stream that breaks at its first page. Read
    # once, a feed's polls do not look the name up again. (No name: no thread hop.)
    owner_id = (
        None if owner is None else await run_in_threadpool(_owner_id, sessions, principal, owner)
    )
    return JobFilters(
        status=status_filter,
        owner_id=owner_id,
        sweep_id=sweep_id,
        finished_before=finished_before,
    )


ListingFilters = Annotated[JobFilters, Depends(_job_filters)]


def page_query(
    principal: Principal,
    filters: JobFilters,
    *,
    limit: int,
    cursor: str | None,
) -> JobsQuery:
    """A page's rows for list_jobs (or jobs_fingerprint): one more than `limit`, for
    the next cursor. A filter that matches nothing lists nothing, not a 404:
    `?sweep_id=` a sweep that does not exist, or another user's (to a non-admin),
    lists no job; `?finished_before=` never lists an unfinished job. (`?owner=` a
    name no user has is an admin's 422, a non-admin's empty page: owner_filter_id.)"""
    return JobsQuery(
        viewer=principal,
        owner_id=filters.owner_id,
        status=filters.status,
        sweep_id=filters.sweep_id,
        finished_before=filters.finished_before,
        limit=limit + 1,
        before_id=decode_cursor(cursor),
    )
