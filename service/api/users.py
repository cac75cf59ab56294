"""Users (admin) and the caller's own account and tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from service.api.deps import MAX_ID, Cursor, Limit, Sessions, decode_cursor, next_cursor
from service.auth import AdminUser, CurrentUser
from service.schemas.accounts import TokenCreated, Usage, UserCreate, UserCreated, UserOut
from service.schemas.common import Page
from service.store.db import transaction
from service.store.models import User
from service.store.users import create_user, get_user, issue_token, job_counts, list_users
from service.store.users import revoke_token as store_revoke_token

router = APIRouter(prefix="/v1", tags=["users"])

TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="token id")]


def _user_out(user: User, counts: dict[str, int]) -> UserOut:
    return UserOut(
        id=user.id,
        name=user.name,
        role=user.role,
        max_running_jobs=user.max_running_jobs,
        share_weight=user.share_weight,
        created_at=user.created_at,
        usage=Usage(jobs_total=sum(counts.values()), jobs_by_status=counts),
    )


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserCreated)
def post_user(body: UserCreate, _admin: AdminUser, sessions: Sessions) -> UserCreated:
    with transaction(sessions) as session:
        user, _token, plain = create_user(
            session=session,
            name=body.name,
            role=body.role,
            max_running_jobs=body.max_running_jobs,
            share_weight=body.share_weight,
        )
    return UserCreated(id=user.id, name=user.name, role=body.role, token=plain)


@router.get("/users", response_model=Page[UserOut])
def get_users(
    _admin: AdminUser, sessions: Sessions, limit: Limit = 50, cursor: Cursor = None
) -> Page[UserOut]:
    with transaction(sessions) as session:
        users = list_users(session=session, limit=limit, after_id=decode_cursor(cursor))
        counts = job_counts(session=session, user_ids=[u.id for u in users])
    return Page[UserOut](
        data=[_user_out(u, counts[u.id]) for u in users],
        next_cursor=next_cursor([u.id for u in users], limit),
    )


@router.get("/users/me", response_model=UserOut)
def get_me(principal: CurrentUser, sessions: Sessions) -> UserOut:
    with transaction(sessions) as session:
        user = get_user(session=session, user_id=principal.user_id)
        counts = job_counts(session=session, user_ids=[user.id])
    return _user_out(user, counts[user.id])


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def post_token(principal: CurrentUser, sessions: Sessions) -> TokenCreated:
    with transaction(sessions) as session:
        api_token, plain = issue_token(session=session, user_id=principal.user_id)
    return TokenCreated(id=api_token.id, token=plain)


@router.delete(
    "/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_token(token_id: TokenId, principal: CurrentUser, sessions: Sessions) -> Response:
    with transaction(sessions) as session:
        store_revoke_token(session=session, token_id=token_id, actor=principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
