"""A job's story: its status timeline — every transition with its attempt, actor and
reason (the SSE stream only sends the current status and later changes) — and why
it waits (explain)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from service.api.deps import AppSettings, JobId, Sessions
from service.api.responses import errors
from service.api.user_refs import asked_by, user_namer
from service.auth import CurrentUser
from service.schemas.jobs import Explanation, JobHistory, StatusChange
from service.store.db import read_transaction
from service.store.explain import explain_job
from service.store.jobs import events_after, get_visible_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}/history", response_model=JobHistory, responses=errors(401, 404))
def get_history(job_id: JobId, principal: CurrentUser, sessions: Sessions) -> JobHistory:
    with read_transaction(sessions) as session:
        get_visible_job(session=session, job_id=job_id, viewer=principal)
        events = events_after(session=session, job_id=job_id, after_id=0)
        named = user_namer(
            session=session, texts=[f"{e.actor} {asked_by(e.reason)}" for e in events]
        )
        return JobHistory(
            data=[
                StatusChange(
                    time=e.at,
                    from_status=e.from_status,
                    to_status=e.to_status,
                    attempt=e.attempt,
                    actor=named(e.actor),
                    reason=named(by) if (by := asked_by(e.reason)) else e.reason,
                )
                for e in events
            ]
        )


@router.get("/{job_id}/explain", response_model=Explanation, responses=errors(401, 404))
def get_explain(
    job_id: JobId, principal: CurrentUser, sessions: Sessions, settings: AppSettings
) -> Explanation:
    with read_transaction(sessions) as session:
        job = get_visible_job(session=session, job_id=job_id, viewer=principal)
        return explain_job(
            session=session,
            job=job,
            dispatcher_timeout=timedelta(seconds=settings.lease_seconds),
            quota_defaults=settings.quota_defaults(),
            fair_share_window=settings.fair_share_window(),
            hold_room_after=settings.hold_room_after(),
            viewer_is_admin=principal.is_admin,
        )
