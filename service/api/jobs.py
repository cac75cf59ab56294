"""Submitting, listing, reading and cancelling jobs (deleting: service.api.removals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.api.deps import Cursor, JobId, Limit, Sessions, next_cursor, spec_errors
from service.api.job_filters import JobFilters, ListingFilters, page_query
from service.api.responses import errors
from service.auth import BearerToken, CurrentUser, TokenCheckedFirst, principal_for, principal_in
from service.schemas.common import Page, request_sha256
from service.schemas.gang import gang_totals, replica_bundle
from service.schemas.jobs import JobOut, Progress
from service.schemas.jobspec import JobSpec
from service.schemas.resolve import SpecError, resolve
from service.schemas.resolved import ResolvedSpec
from service.settings import Settings
from service.store.cluster_capacity import ClusterCapacity
from service.store.db import read_transaction, transaction
from service.store.jobs import (
    JobsQuery,
    enqueue,
    find_by_idempotency_key,
    get_visible_job,
    list_jobs,
    replay,
    request_cancel,
)
from service.store.models import Job
from service.store.quotas import check_can_submit
from service.store.spec_checks import job_cost, spec_problems
from service.store.users import Principal, user_names

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
# The submit alone: it checks its token in its endpoint (issue 13, see post_job).
submit_router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=TokenCheckedFirst)

IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="retrying with the same key and body returns what the first request "
        "created (the same job, or sweep) instead of a second one",
    ),
]


def job_out(job: Job, owner: str) -> JobOut:
    return JobOut(
        id=job.id,
        owner=owner,
        name=job.name,
        status=job.status,
        priority=job.priority,
        sweep_id=job.sweep_id,
        spec=job.spec,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        progress=Progress(round=job.progress_round, rounds=job.progress_rounds),
        summary=job.summary,
        error=job.error,
    )


@submit_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": "replay of an earlier request (Idempotency-Key)"},
        **errors(400, 401, 409, 413, 429),
    },
)
async def post_job(
    spec: JobSpec,
    request: Request,
    token: BearerToken,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # The hot path of a lab's load (issue 13): app state is read here rather than
    # through three more dependencies, the token check and the database work take one
    # thread hop, and the answer is serialised once by pydantic (a returned Response
    # skips FastAPI's re-validation of the response model; the schema still documents
    # JobOut).
    state = request.app.state

    def authenticated_submit() -> tuple[Job, bool, Principal]:
        return submit_job(
            state.sessions,
            state.settings,
            state.on_job_queued,
            state.cluster_capacity,
            token=token,
            spec=spec,
            idempotency_key=idempotency_key,
        )

    job, created, principal = await run_in_threadpool(authenticated_submit)
    return Response(
        job_out(job, principal.name).model_dump_json(),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        media_type="application/json",
    )


def submit_job(
    sessions: sessionmaker[Session],
    settings: Settings,
    on_job_queued: Callable[[], None] | None,
    cluster_capacity: ClusterCapacity,
    *,
    token: str,
    spec: JobSpec,
    idempotency_key: str | None,
) -> tuple[Job, bool, Principal]:
    """The token check, the submit's checks and its one write transaction: (job,
    created, principal); created is False for the replay of an earlier request with
    the same Idempotency-Key. A bad token is answered (401) before a bad spec (422)."""
    # On PostgreSQL the token is checked inside the submit's transaction: one session
    # and one pool checkout a submit, not two (issue 13). On SQLite that transaction
    # holds the write lock from its BEGIN, which authentication never takes: there
    # the token is checked first, read-only. On PostgreSQL the token's statement also
    # takes the user's quota lock (quotas.lock_owner): a round trip less.
    in_transaction = sessions.kw["bind"].dialect.name == "postgresql"
    checked = None if in_transaction else principal_for(sessions, token)
    defaults = settings.quota_defaults()
    # Resolved before the transaction: not under SQLite's write lock, nor under the
    # user's quota lock that PostgreSQL's token check takes (one user's submits wait
    # for each other there). Its 422 is raised once the token has passed. The stored
    # spec shows every default, the server's max_attempts included.
    resolved: ResolvedSpec | SpecError
    try:
        resolved = resolve(spec, default_max_attempts=settings.default_max_attempts)
    except SpecError as exc:
        resolved = exc
    with transaction(sessions) as session:
        principal = checked or principal_in(session, token, lock_owner=True)
        if isinstance(resolved, SpecError):
            raise spec_errors(resolved.problems, spec) from resolved
        existing = (
            None
            if idempotency_key is None
            else find_by_idempotency_key(
                session=session, owner_id=principal.user_id, idempotency_key=idempotency_key
            )
        )
        # A retry of an accepted submit is answered whatever the quota, and whatever
        # became of its upload since (deleted once the job had finished).
        if existing is not None:
            job, created = replay(existing, request_sha256(spec)), False
        else:
            problems = spec_problems(
                session=session,
                spec=resolved,
                owner_id=principal.user_id,
                limits=settings.cost_limits(),
            )
            if problems:
                raise spec_errors(problems, spec)
            cpus, gpus = gang_totals(resolved)
            now = check_can_submit(
                session=session,
                user_id=principal.user_id,
                defaults=defaults,
                cpus=cpus,
                gpus=gpus,
                owner_locked=in_transaction,
            )
            if too_large := cluster_capacity.problems(
                session=session,
                gang={"CPU": cpus, "GPU": gpus},
                replica=replica_bundle(resolved),
                workers=resolved.distributed.workers,
                cost=job_cost(session=session, spec=resolved, owner_id=principal.user_id),
                now=now,
                lease_seconds=settings.lease_seconds,
            ):
                raise spec_errors(too_large, spec)
            job, created = enqueue(
                session=session,
                owner_id=principal.user_id,
                spec=resolved,
                idempotency_key=idempotency_key,
                # Only a retry with the key compares it.
                request_sha256=None if idempotency_key is None else request_sha256(spec),
                key_unused=True,
                now=now,
                audit_actor=principal,
            )
    if created and on_job_queued is not None:
        on_job_queued()  # after the commit: the dispatcher must be able to claim it
    return job, created, principal


def jobs_page(
    sessions: sessionmaker[Session],
    principal: Principal,
    filters: JobFilters,
    *,
    limit: int,
    cursor: str | None,
) -> Page[JobOut]:
    """One page of the jobs `principal` may see, newest first."""
    with read_transaction(sessions) as session:
        query = page_query(principal, filters, limit=limit, cursor=cursor)
        return read_page(session, query, limit)


def read_page(session: Session, query: JobsQuery, limit: int) -> Page[JobOut]:
    """The page `query` (from page_query) selects; also the live feed's."""
    jobs = list_jobs(session=session, **query)
    names = user_names(session=session, user_ids={j.owner_id for j in jobs})
    return Page[JobOut](
        data=[job_out(j, names[j.owner_id]) for j in jobs[:limit]],
        next_cursor=next_cursor([j.id for j in jobs], limit),
    )


@router.get("", response_model=Page[JobOut], responses=errors(401))
def get_jobs(
    principal: CurrentUser,
    sessions: Sessions,
    filters: ListingFilters,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[JobOut]:
    return jobs_page(sessions, principal, filters, limit=limit, cursor=cursor)


@router.get("/{job_id}", response_model=JobOut, responses=errors(401, 404))
def get_job(job_id: JobId, principal: CurrentUser, sessions: Sessions) -> JobOut:
    with read_transaction(sessions) as session:
        job = get_visible_job(session=session, job_id=job_id, viewer=principal)
        names = user_names(session=session, user_ids={job.owner_id})
    return job_out(job, names[job.owner_id])


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(401, 404),
)
def cancel_job(job_id: JobId, principal: CurrentUser, sessions: Sessions) -> JobOut:
    """queued: cancelled at once; running: cancelling until its dispatcher stops it;
    already cancelling or finished: unchanged (repeating a cancel is harmless)."""
    with transaction(sessions) as session:
        job = get_visible_job(session=session, job_id=job_id, viewer=principal)
        job = request_cancel(
            session=session, job=job, actor=f"user:{principal.user_id}", audit_actor=principal
        )
        names = user_names(session=session, user_ids={job.owner_id})
    return job_out(job, names[job.owner_id])
