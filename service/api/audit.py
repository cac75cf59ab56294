"""The audit log, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import MAX_ID, Limit, Sessions
from service.api.responses import errors
from service.auth import AdminUser
from service.schemas.accounts import AuditEventOut, AuditPage
from service.store.audit import audit_page
from service.store.db import read_transaction

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit", response_model=AuditPage, responses=errors(401, 403))
def get_audit(
    _admin: AdminUser,
    sessions: Sessions,
    after_id: Annotated[int | None, Query(ge=0, le=MAX_ID, description="next_after_id")] = None,
    limit: Limit = 100,
) -> AuditPage:
    """Oldest first: users created/disabled, tokens created/revoked, quota changes,
    jobs and sweeps submitted/cancelled (the actor shows who: a sweep's own trial
    submits as "sweep:N for user:name"), datasets uploaded."""
    with read_transaction(sessions) as session:
        events = audit_page(session=session, after_id=after_id, limit=limit)
        data = [
            AuditEventOut(
                id=e.id,
                time=e.at,
                actor=e.actor,
                action=e.action,
                target=e.target,
                detail=e.detail,
            )
            for e in events
        ]
    return AuditPage(data=data, next_after_id=events[-1].id if len(events) == limit else None)
