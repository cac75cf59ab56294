"""An admin's change to a user (PATCH /v1/users/{id}) is made under the locks of
both rows, the acting admin's and the user's, and only while the acting admin is
still enabled.

Why: the admin's token is checked in a transaction of its own before the change.
Two admins disabling each other at the same moment each passed that check (the
other had not committed yet) and each disabled the other: no enabled admin was
left, and the way back was `lagtrain admin create-user` on the server (a review).
Now the second waits for the first (PostgreSQL: the rows' locks; SQLite: write
transactions run one at a time) and then finds its own account disabled."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound
from service.store.models import User
from service.store.users import Principal


def lock_for_admin_change(*, session: Session, actor: Principal, user_id: int) -> User:
    """`user_id`'s row, locked with the actor's until the transaction ends (in id
    order: two admins acting on each other wait, never deadlock; FOR NO KEY UPDATE, as
    quotas.lock_owner, so rows that refer to the users are not held up). Raises
    Conflict when the actor was disabled since their token was checked."""
    ids = sorted({actor.user_id, user_id})
    locked = session.scalars(
        select(User)
        .where(User.id.in_(ids))
        .order_by(User.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).all()
    rows = {user.id: user for user in locked}
    if user_id not in rows:
        raise NotFound(f"user {user_id} not found")
    acting = rows.get(actor.user_id)
    if acting is None or acting.disabled_at is not None:
        raise Conflict("your account was disabled meanwhile (by another admin): nothing changed")
    return rows[user_id]
