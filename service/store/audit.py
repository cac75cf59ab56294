"""The audit log: who did what to users, tokens, quotas, jobs, sweeps and datasets.
One row per action, written in the same transaction as the action itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from service.schemas.audit import AuditAction
from service.schemas.quota import QUOTA_FIELDS
from service.store.models import AuditEvent, User, json_safe, table_of, utcnow
from service.store.users import Principal

# Built once: a statement built per call costs its cache key on every write.
_INSERT = insert(table_of(AuditEvent))


def record(
    *,
    session: Session,
    actor: Principal | str | None,
    action: AuditAction,
    target: str,
    detail: dict[str, Any] | None = None,
    via: str | None = None,
) -> None:
    """`actor`: the signed-in user, shown as `role:name`; a string names an actor that
    is no user (`cli:<login>`: `lagtrain admin create-user` on the server's machine);
    None is the server itself (bootstrap). `via`: what acted on the user's behalf,
    e.g. "sweep:12" for the trials a sweep submits for its owner (shown as "sweep:12
    for user:alice"; actor_id stays the owner's). One INSERT on the session's
    connection, no ORM object or execution layer (a submit writes one of these)."""
    user = actor if isinstance(actor, Principal) else None
    who = f"{user.role}:{user.name}" if user else (actor or "server")
    session.connection().execute(
        _INSERT,
        {
            "at": utcnow(),
            "actor_id": None if user is None else user.user_id,
            "actor": who if via is None else f"{via} for {who}",
            "action": action.value,  # the plain text, whatever the driver makes of an enum
            "target": target,
            "detail": json_safe(detail or {}),
        },
    )


def user_created(
    *, session: Session, actor: Principal | str | None, user: User, token_id: int
) -> None:
    """The `user.created` row, the same wherever a user is made: POST /v1/users (the
    admin), `lagtrain admin create-user` (cli:<login>) and the first start (server).
    It names the user's first token (no `token.created` row is written for it: an
    admin revoking a leaked first token finds its id here) and the quotas and share
    set at creation."""
    detail: dict[str, Any] = {"name": user.name, "role": user.role, "token_id": token_id}
    for quota in QUOTA_FIELDS:  # the user's own quotas; the others are the server's default
        if getattr(user, quota) is not None:
            detail[quota] = getattr(user, quota)
    if user.share_weight != 1.0:
        detail["share"] = user.share_weight
    record(
        session=session,
        actor=actor,
        action=AuditAction.USER_CREATED,
        target=f"user:{user.id}",
        detail=detail,
    )


def audit_page(
    *,
    session: Session,
    after_id: int | None,
    limit: int,
    newest_first: bool = False,
    actor_id: int | None = None,
    action: str | None = None,
    target: str | None = None,
) -> list[AuditEvent]:
    """Up to `limit` events after `after_id` in the listing's order: ascending ids,
    or with `newest_first` descending ones (so "after" is below `after_id`). The
    filters combine with AND: `actor_id` (the user who acted: a sweep's trial submits
    carry their owner's), `action` (exact, or every action under a prefix ending in
    "." such as "job."), `target` (exact, e.g. "job:42")."""
    query = select(AuditEvent).limit(limit)
    if newest_first:
        query = query.order_by(AuditEvent.id.desc())
        if after_id is not None:
            query = query.where(AuditEvent.id < after_id)
    else:
        query = query.order_by(AuditEvent.id)
        if after_id is not None:
            query = query.where(AuditEvent.id > after_id)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if action is not None and action.endswith("."):
        # autoescape: "_" is a LIKE wildcard, and action names hold underscores.
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    elif action is not None:
        query = query.where(AuditEvent.action == action)
    if target is not None:
        query = query.where(AuditEvent.target == target)
    return list(session.scalars(query))
