"""Users (admin), the caller's own account and tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status
from sqlalchemy.orm import Session

from service.api.deps import (
    MAX_ID,
    AppSettings,
    Cursor,
    Limit,
    Sessions,
    decode_cursor,
    field_error,
    next_cursor,
)
from service.api.responses import errors
from service.auth import AdminUser, CurrentUser, TokenCheckedFirst, require_admin
from service.errors import Conflict
from service.schemas.accounts import (
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
    UserCreate,
    UserCreated,
    UserOut,
    UserPatch,
)
from service.schemas.audit import AuditAction
from service.schemas.common import Page
from service.schemas.quota import QuotaDefaults
from service.store.audit import record, user_created
from service.store.db import read_transaction, transaction
from service.store.models import User, utcnow
from service.store.quotas import quota_in_force, set_quota, usage
from service.store.user_locks import lock_for_admin_change
from service.store.users import (
    create_user,
    get_user,
    issue_token,
    list_users,
    live_tokens,
    set_disabled,
    token_expiry,
)
from service.store.users import revoke_token as store_revoke_token

router = APIRouter(prefix="/v1", tags=["users"], route_class=TokenCheckedFirst)

TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="token id")]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="user id")]


def _user_outs(session: Session, users: list[User], defaults: QuotaDefaults) -> list[UserOut]:
    used = usage(session=session, user_ids=[u.id for u in users])
    outs = []
    for user in users:
        quota = quota_in_force(user, defaults)
        outs.append(
            UserOut(
                id=user.id,
                name=user.name,
                role=user.role,
                max_running_jobs=quota.max_running_jobs,
                share=user.share_weight,
                share_weight=user.share_weight,
                created_at=user.created_at,
                disabled=user.disabled_at is not None,
                quota=quota,
                usage=used[user.id],
            )
        )
    return outs


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserCreated,
    responses=errors(400, 401, 403, 409, 413),
)
def post_user(body: UserCreate, admin: AdminUser, sessions: Sessions) -> UserCreated:
    with transaction(sessions) as session:
        if token_expiry(session=session, token_id=admin.token_id) is not None:
            # The new user's first token never expires: it would outlive this one, and
            # a leaked short-lived admin token would mint a lasting admin (a review).
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail="a token that expires cannot create users (their first token never "
                "expires, and would outlive it): sign in with a token that does not expire",
            )
        user, api_token, plain = create_user(
            session=session, name=body.name, role=body.role, share_weight=body.fair_share()
        )
        set_quota(session=session, user=user, change=body.quota_change())
        user_created(session=session, actor=admin, user=user, token_id=api_token.id)
    return UserCreated(id=user.id, name=user.name, role=body.role, token=plain)


@router.get("/users", response_model=Page[UserOut], responses=errors(401, 403))
def get_users(
    _admin: AdminUser,
    sessions: Sessions,
    settings: AppSettings,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[UserOut]:
    with read_transaction(sessions) as session:
        users = list_users(session=session, limit=limit + 1, after_id=decode_cursor(cursor))
        data = _user_outs(session, users[:limit], settings.quota_defaults())
    return Page[UserOut](data=data, next_cursor=next_cursor([u.id for u in users], limit))


@router.get("/users/me", response_model=UserOut, responses=errors(401, 422))
def get_me(principal: CurrentUser, sessions: Sessions, settings: AppSettings) -> UserOut:
    with read_transaction(sessions) as session:
        user = get_user(session=session, user_id=principal.user_id)
        (out,) = _user_outs(session, [user], settings.quota_defaults())
    return out


@router.patch(
    "/users/{user_id}", response_model=UserOut, responses=errors(400, 401, 403, 404, 409, 413)
)
def patch_user(
    user_id: UserId, body: UserPatch, admin: AdminUser, sessions: Sessions, settings: AppSettings
) -> UserOut:
    """Disable or enable a user (disabling refuses every token of theirs at once and
    closes their open streams), change their quota (null = the server default) or
    their fair-share weight. Every change is in the audit log."""
    with transaction(sessions) as session:
        user = lock_for_admin_change(session=session, actor=admin, user_id=user_id)
        if body.disabled and user.id == admin.user_id:
            # An admin who locks themselves out may leave nobody to undo it.
            raise Conflict("you cannot disable your own account")
        target = f"user:{user.id}"
        if body.disabled is not None and set_disabled(
            session=session, user=user, disabled=body.disabled
        ):
            action = AuditAction.USER_DISABLED if body.disabled else AuditAction.USER_ENABLED
            record(session=session, actor=admin, action=action, target=target)
        if body.quota is not None:
            changed = set_quota(session=session, user=user, change=body.quota)
            if changed:
                record(
                    session=session,
                    actor=admin,
                    action=AuditAction.QUOTA_CHANGED,
                    target=target,
                    detail=changed,
                )
        if body.share is not None and body.share != user.share_weight:
            detail = {"share": [user.share_weight, body.share]}
            user.share_weight = body.share
            session.flush()
            record(
                session=session,
                actor=admin,
                action=AuditAction.SHARE_CHANGED,
                target=target,
                detail=detail,
            )
        (out,) = _user_outs(session, [user], settings.quota_defaults())
    return out


@router.get("/tokens", response_model=TokenList, responses=errors(401, 403, 404))
def get_tokens(
    principal: CurrentUser,
    sessions: Sessions,
    user_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="admins: that user's tokens")
    ] = None,
) -> TokenList:
    """Your active tokens (neither revoked nor expired); never the secret. An admin
    lists a user's with `?user_id=` (to revoke a leaked one)."""
    owner_id = principal.user_id if user_id is None else user_id
    if owner_id != principal.user_id:
        require_admin(principal)
    with read_transaction(sessions) as session:
        get_user(session=session, user_id=owner_id)  # 404 for a user who does not exist
        tokens = live_tokens(session=session, user_id=owner_id)
        data = [
            TokenOut(
                id=t.id,
                created_at=t.created_at,
                expires_at=t.expires_at,
                last_used_at=t.last_used_at,
            )
            for t in tokens
        ]
    return TokenList(data=data)


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
    responses=errors(400, 401, 403, 404, 413, 429),
)
def post_token(
    principal: CurrentUser,
    sessions: Sessions,
    settings: AppSettings,
    body: Annotated[TokenCreate | None, Body()] = None,
) -> TokenCreated:
    """A new token (429 when its user holds max_tokens_per_user active ones). An
    admin issues one for another user with `user_id` (that user's only token revoked
    or lost); the admin hands it over."""
    body = body or TokenCreate()
    owner_id = principal.user_id if body.user_id is None else body.user_id
    for_another = owner_id != principal.user_id
    if for_another:
        require_admin(principal)
    with transaction(sessions) as session:
        if for_another:  # 404 for no such user; the caller's own was found signing in
            get_user(session=session, user_id=owner_id)
        _within_the_issuers_life(session, principal.token_id, body.expires_in_days)
        api_token, plain = issue_token(
            session=session,
            user_id=owner_id,
            expires_in_days=body.expires_in_days,
            max_active=settings.max_tokens_per_user,
        )
        record(
            session=session,
            actor=principal,
            action=AuditAction.TOKEN_CREATED,
            target=f"token:{api_token.id}",
            detail={"user_id": owner_id, "expires_in_days": body.expires_in_days},
        )
    return TokenCreated(id=api_token.id, token=plain, expires_at=api_token.expires_at)


def _within_the_issuers_life(session: Session, token_id: int, days: int | None) -> None:
    """A token may not issue one that outlives it: a leaked 1-day token minted a token
    that never expires (a review). A 422 at `expires_in_days` saying how long may be
    asked for."""
    ends = token_expiry(session=session, token_id=token_id)
    if ends is None:
        return
    now = utcnow()
    if days is not None and now + timedelta(days=days) <= ends:
        return
    most = int((ends - now).total_seconds() // 86_400)
    ask = (
        f"ask for at most {most} day{'s' if most != 1 else ''}"
        if most >= 1
        else "it expires within a day, so it can issue none"
    )
    raise field_error(
        ("body", "expires_in_days"),
        f"the token signing this request expires at {ends:%Y-%m-%d %H:%M} UTC, and a "
        f"token may not issue one that outlives it: {ask}, or sign in with a token that "
        "does not expire",
        days,
    )


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 404, 409),
)
def delete_token(token_id: TokenId, principal: CurrentUser, sessions: Sessions) -> Response:
    """Revoke a token (admins: anyone's). Revoking a revoked token is a 204 too. An
    admin's own last active token is kept (409): issue another first."""
    with transaction(sessions) as session:
        api_token, revoked = store_revoke_token(session=session, token_id=token_id, actor=principal)
        if revoked:  # a repeated DELETE answers 204 again but did nothing to audit
            record(
                session=session,
                actor=principal,
                action=AuditAction.TOKEN_REVOKED,
                target=f"token:{token_id}",
                detail={"user_id": api_token.user_id},
            )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
