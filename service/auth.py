"""Bearer-token authentication and roles (user, admin) as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import read_transaction, transaction
from service.store.users import Principal, authenticate, touch_token

_bearer = HTTPBearer(auto_error=False, description="an API token: Authorization: Bearer <token>")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token")
    sessions: sessionmaker[Session] = request.app.state.sessions
    # Read-only (no write lock on SQLite); last_used_at is written at most once a
    # minute per token, in its own short transaction.
    with read_transaction(sessions) as session:
        found = authenticate(session=session, token=credentials.credentials)
    if found is None:
        raise _unauthorized("invalid, expired or revoked token, or a disabled user")
    principal, touch_due = found
    if touch_due:
        with transaction(sessions) as session:
            touch_token(session=session, token_id=principal.token_id)
    return principal


async def admin_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="admin role required")
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]
