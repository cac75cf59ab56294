"""The audit log: who did what to users, tokens, quotas, jobs, sweeps and datasets.
One row per action, written in the same transaction as the action itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from service.store.models import AuditEvent, json_safe, table_of, utcnow
from service.store.users import Principal


def record(
    *,
    session: Session,
    actor: Principal | None,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    via: str | None = None,
) -> None:
    """`actor` None: the server itself (bootstrap). `via`: what acted on the actor's
    behalf, e.g. "sweep:12" for the trials a sweep submits for its owner (shown as
    "sweep:12 for user:alice"; actor_id stays the owner's). One INSERT on the
    session's connection, no ORM object or execution layer (a submit writes one)."""
    who = "server" if actor is None else f"{actor.role}:{actor.name}"
    session.connection().execute(
        insert(table_of(AuditEvent)),
        {
            "at": utcnow(),
            "actor_id": None if actor is None else actor.user_id,
            "actor": who if via is None else f"{via} for {who}",
            "action": action,
            "target": target,
            "detail": json_safe(detail or {}),
        },
    )


def audit_page(*, session: Session, after_id: int | None, limit: int) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id).limit(limit)
    if after_id is not None:
        query = query.where(AuditEvent.id > after_id)
    return list(session.scalars(query))
