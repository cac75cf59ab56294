"""A job's status timeline: every transition with its attempt, actor and reason
(the SSE stream only sends the current status and later changes)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import JobId, Sessions
from service.api.responses import errors
from service.auth import CurrentUser
from service.schemas.jobs import JobHistory, StatusChange
from service.store.db import transaction
from service.store.jobs import events_after, get_visible_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}/history", response_model=JobHistory, responses=errors(401, 404))
def get_history(job_id: JobId, principal: CurrentUser, sessions: Sessions) -> JobHistory:
    with transaction(sessions) as session:
        get_visible_job(session=session, job_id=job_id, viewer=principal)
        events = events_after(session=session, job_id=job_id, after_id=0)
        return JobHistory(
            data=[
                StatusChange(
                    time=e.at,
                    from_status=e.from_status,
                    to_status=e.to_status,
                    attempt=e.attempt,
                    actor=e.actor,
                    reason=e.reason,
                )
                for e in events
            ]
        )
