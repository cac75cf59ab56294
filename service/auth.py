"""Bearer-token authentication and roles (user, admin) as FastAPI dependencies."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.json_body import UniqueKeysRoute
from service.store.db import read_transaction, write_if_free
from service.store.users import Principal, authenticate, touch_token

logger = logging.getLogger(__name__)
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
    return principal_for(request.app.state.sessions, _present(credentials))


def principal_for(sessions: sessionmaker[Session], token: str) -> Principal:
    """The principal `token` belongs to, else 401 (blocking: a worker thread's)."""
    # Read-only (no write lock on SQLite); last_used_at is written at most once a
    # minute per token, in its own short transaction, skipped while another holds
    # SQLite's write lock (a later request writes it).
    with read_transaction(sessions) as session:
        principal, touch_due = _accepted(authenticate(session=session, token=token))
    if touch_due:
        try:
            with write_if_free(sessions) as free:
                if free is not None:
                    touch_token(session=free, token_id=principal.token_id)
        except OperationalError as exc:
            # Bookkeeping a later request redoes: the request it rides on was
            # authenticated already and must not fail for it (a full disk, a
            # read-only file; an outage fails the request's own reads anyway).
            logger.warning("token %s: last use not recorded: %s", principal.token_id, exc)
    return principal


def principal_in(session: Session, token: str, *, lock_owner: bool = False) -> Principal:
    """principal_for inside the caller's write transaction (its last_used_at written
    there too): for a route that writes anyway, one session and one pool checkout.
    `lock_owner`: also take the user's quota lock (users.authenticate)."""
    principal, touch_due = _accepted(
        authenticate(session=session, token=token, lock_owner=lock_owner)
    )
    if touch_due:
        touch_token(session=session, token_id=principal.token_id)
    return principal


def _accepted(found: tuple[Principal, bool] | None) -> tuple[Principal, bool]:
    if found is None:
        raise _unauthorized(
            "invalid, expired or revoked token, or a disabled user: ask your lab's admin "
            "for a new token (`lagtrain token-new --user NAME`)"
        )
    return found


def _present(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise _unauthorized('missing bearer token (the header "Authorization: Bearer <token>")')
    return credentials.credentials


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The request's bearer token, present but not checked yet: for a route that
    checks it with principal_for in the thread hop it makes anyway (one hop, not
    two), declared with route_class_override=TokenCheckedFirst."""
    return _present(credentials)


class TokenCheckedFirst(UniqueKeysRoute):
    """Keeps the answer every route gives (401 before 422) for routes that check the
    token in their endpoint (BearerToken): when the body or a parameter is invalid,
    the token is checked before the 422 is raised."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def token_first(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:
                await check_token(request)
                raise

        return token_first


async def check_token(request: Request) -> None:
    """The 401 a request without a good bearer token gets, for a 422 found before its
    route's own check of the token: every route answers 401 before 422."""
    token = _present(await _bearer(request))
    await run_in_threadpool(principal_for, request.app.state.sessions, token)


def require_admin(principal: Principal) -> None:
    """403 unless `principal` is an admin (routes that serve users and, for some
    arguments, admins only call it themselves)."""
    if not principal.is_admin:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="admin role required")


async def admin_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    require_admin(principal)
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]
BearerToken = Annotated[str, Depends(bearer_token)]
AdminUser = Annotated[Principal, Depends(admin_principal)]
