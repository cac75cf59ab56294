"""Users and API tokens. Tokens are random (>= 32 bytes) and only their SHA-256 is
stored; the plain token leaves the store exactly once, when it is issued."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound, QuotaExceeded
from service.schemas.accounts import folded_user_name
from service.store.models import ApiToken, Job, User, table_of, utcnow
from service.store.quotas import lock_owner

TOKEN_BYTES = 32
# Recording every use would turn each read into a write; minute resolution is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: int
    name: str
    role: str
    token_id: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def generate_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def count_users(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def create_user(
    *,
    session: Session,
    name: str,
    role: str,
    token: str | None = None,
    share_weight: float = 1.0,
) -> tuple[User, ApiToken, str]:
    """Create a user with a first token (``token`` if given, else a fresh one)."""
    taken = session.scalar(select(User.name).where(_named(name)))
    if taken is not None:
        also = "" if taken == name else f" (as {taken!r}: names are the same in any case)"
        raise Conflict(f"user {name!r} already exists{also}")
    user = User(
        name=name,
        role=role,
        share_weight=share_weight,
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError as exc:  # a concurrent create won the unique name
        raise Conflict(f"user {name!r} already exists") from exc
    api_token, plain = issue_token(session=session, user_id=user.id, token=token)
    return user, api_token, plain


def token_expiry(*, session: Session, token_id: int) -> datetime | None:
    """When the token expires; None when it never does (the bootstrap admin's never
    does), or when no stored token has that id."""
    return session.scalar(select(ApiToken.expires_at).where(ApiToken.id == token_id))


def issue_token(
    *,
    session: Session,
    user_id: int,
    token: str | None = None,
    expires_in_days: int | None = None,
    max_active: int | None = None,
) -> tuple[ApiToken, str]:
    """A new token for the user; QuotaExceeded when the user already holds
    `max_active` live tokens (a leaked token cannot mint tokens without end)."""
    now = utcnow()
    if max_active is not None:
        # Two concurrent issues for one user must not both count the other's absent.
        lock_owner(session=session, user_id=user_id)
        active = len(live_tokens(session=session, user_id=user_id, now=now))
        if active >= max_active:
            raise QuotaExceeded(
                # Neutral: an admin may be issuing it for someone else.
                f"max_tokens_per_user: user {user_id} holds {active} active tokens, the "
                f"limit is {max_active}; revoke one first (DELETE /v1/tokens/{{id}})"
            )
    plain = token if token is not None else generate_token()
    expires = None if expires_in_days is None else now + timedelta(days=expires_in_days)
    api_token = ApiToken(
        user_id=user_id, token_sha256=hash_token(plain), created_at=now, expires_at=expires
    )
    session.add(api_token)
    session.flush()
    return api_token, plain


def live_tokens(*, session: Session, user_id: int, now: datetime | None = None) -> list[ApiToken]:
    """The user's tokens that are neither revoked nor expired, oldest first."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(ApiToken)
            .where(
                ApiToken.user_id == user_id,
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
            )
            .order_by(ApiToken.id)
        )
    )


def set_disabled(*, session: Session, user: User, disabled: bool) -> bool:
    """Disable (every token refused at once) or enable a user; True if it changed."""
    if disabled == (user.disabled_at is not None):
        return False
    user.disabled_at = utcnow() if disabled else None
    session.flush()
    return True


# The token, its user and every field the check needs, as one row (no ORM objects:
# this runs on every request). Built once.
_TOKEN_ROW = select(
    ApiToken.id,
    ApiToken.revoked_at,
    ApiToken.expires_at,
    ApiToken.last_used_at,
    User.id.label("user_id"),
    User.name,
    User.role,
    User.disabled_at,
).join(User, User.id == ApiToken.user_id)
_BY_HASH = _TOKEN_ROW.where(ApiToken.token_sha256 == bindparam("token_sha256"))
# The same, holding the user's quota lock (service.store.quotas.lock_owner: FOR NO KEY
# UPDATE of the user's row) to the end of the transaction.
_BY_HASH_LOCKING_OWNER = _BY_HASH.with_for_update(of=User, key_share=True)
_BY_ID = _TOKEN_ROW.where(ApiToken.id == bindparam("token_id"))


def authenticate(
    *, session: Session, token: str, lock_owner: bool = False
) -> tuple[Principal, bool] | None:
    """The principal a live token belongs to and whether its last_used_at is due for
    an update (`touch_token`, in a write transaction); None for unknown, revoked or
    expired tokens and for disabled users. Reads only: one statement, which with
    `lock_owner` (PostgreSQL, in a write transaction) also takes the user's quota
    lock: the submit's checks then need no statement for it."""
    # On the session's connection: a Core row needs none of the ORM's execution layer
    # (a tenth of a millisecond of CPU on every authenticated request).
    query = _BY_HASH_LOCKING_OWNER if lock_owner else _BY_HASH
    row = session.connection().execute(query, {"token_sha256": hash_token(token)}).first()
    if row is None:
        return None
    now = utcnow()
    if not _row_is_live(row, now):
        return None
    last = row.last_used_at
    due = last is None or now - last > LAST_USED_RESOLUTION
    principal = Principal(user_id=row.user_id, name=row.name, role=row.role, token_id=row.id)
    return principal, due


def touch_token(*, session: Session, token_id: int) -> None:
    """Record a use of the token (to LAST_USED_RESOLUTION)."""
    tokens = table_of(ApiToken)
    session.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=utcnow()))


def _row_is_live(row: Row[*tuple[Any, ...]], now: datetime) -> bool:
    """Not revoked, not expired, and its user not disabled."""
    return (
        row.revoked_at is None
        and row.disabled_at is None
        and (row.expires_at is None or row.expires_at > now)
    )


def token_still_live(*, session: Session, token_id: int) -> bool:
    """For open streams: is the token that opened it still accepted?"""
    row = session.connection().execute(_BY_ID, {"token_id": token_id}).first()
    return row is not None and _row_is_live(row, utcnow())


def revoke_token(*, session: Session, token_id: int, actor: Principal) -> tuple[ApiToken, bool]:
    """Revoke one of the actor's tokens (admins: anyone's); returns (token, True if it
    was live until now). Revoking twice is a no-op that returns False, so the caller
    audits only a real change."""
    found = session.get(ApiToken, token_id)
    if found is None or (found.user_id != actor.user_id and not actor.is_admin):
        raise NotFound(f"token {token_id} not found")
    # The owner's lock first, then the token's, as a submit takes them (the owner's
    # quota lock, then its token's last use): two concurrent revokes of an admin's
    # last two tokens must not each count the other's live (PostgreSQL; SQLite's
    # writes are serial), and of two revokes of one token exactly one sees it live.
    lock_owner(session=session, user_id=found.user_id)
    api_token = session.get(ApiToken, token_id, with_for_update=True, populate_existing=True)
    assert api_token is not None  # tokens are never deleted
    if api_token.revoked_at is not None:
        return api_token, False
    if (
        actor.is_admin
        and api_token.user_id == actor.user_id
        and [t.id for t in live_tokens(session=session, user_id=actor.user_id)] == [token_id]
    ):
        # As with disabling oneself: an admin with no token may leave nobody to issue
        # one over HTTP (the way back is `lagtrain admin create-user` on the server).
        raise Conflict(
            f"token {token_id} is your last active token: issue another (POST /v1/tokens, or "
            "`lagtrain token-new`) "
            "before revoking it"
        )
    api_token.revoked_at = utcnow()
    session.flush()
    return api_token, True


def get_user(*, session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def acting_for(*, session: Session, user_id: int) -> Principal:
    """The user as the principal of work done for them without a request of theirs
    (a sweep's trials, for the audit log); token_id 0: no token was presented."""
    user = get_user(session=session, user_id=user_id)
    return Principal(user_id=user.id, name=user.name, role=user.role, token_id=0)


def find_user_id(*, session: Session, name: str) -> int | None:
    return session.scalar(select(User.id).where(_named(name)))


def _named(name: str) -> ColumnElement[bool]:
    """The user called `name` in any case (the unique index of migration 0009)."""
    return func.lower(User.name) == folded_user_name(name)


def list_users(*, session: Session, limit: int, after_id: int | None) -> list[User]:
    query = select(User).order_by(User.id).limit(limit)
    if after_id is not None:
        query = query.where(User.id > after_id)
    return list(session.scalars(query))


def job_counts(*, session: Session, user_ids: list[int]) -> dict[int, dict[str, int]]:
    """Jobs per status for each user (users without jobs map to {})."""
    counts: dict[int, dict[str, int]] = {uid: {} for uid in user_ids}
    if not user_ids:
        return counts
    rows = session.execute(
        select(Job.owner_id, Job.status, func.count())
        .where(Job.owner_id.in_(user_ids))
        .group_by(Job.owner_id, Job.status)
    )
    for owner_id, status, n in rows:
        counts[owner_id][status] = n
    return counts


def user_names(*, session: Session, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.name).where(User.id.in_(user_ids)))
    return {key: value for key, value in rows}
