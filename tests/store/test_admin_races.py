"""Two admins disabling each other at the same moment leave one enabled
(service.store.user_locks): each change is made under both users' locks and only
while the acting admin is still enabled; their tokens were checked before, in
transactions of their own."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict
from service.store.db import transaction
from service.store.user_locks import lock_for_admin_change
from service.store.users import Principal, create_user, get_user, set_disabled
from tests.conftest import on_one_database
from tests.lock_waits import while_open


def _admins(sessions: sessionmaker[Session]) -> tuple[Principal, Principal]:
    with transaction(sessions) as session:
        ann, _, _ = create_user(session=session, name="ann", role="admin")
        bob, _, _ = create_user(session=session, name="bob", role="admin")
        return (
            Principal(user_id=ann.id, name="ann", role="admin", token_id=1),
            Principal(user_id=bob.id, name="bob", role="admin", token_id=2),
        )


def _disable(actor: Principal, target: Principal) -> Callable[[Session], object]:
    def change(session: Session) -> object:
        user = lock_for_admin_change(session=session, actor=actor, user_id=target.user_id)
        return set_disabled(session=session, user=user, disabled=True)

    return change


def _enabled(sessions: sessionmaker[Session], *users: Principal) -> list[bool]:
    with sessions() as session:
        found = [get_user(session=session, user_id=u.user_id) for u in users]
        return [user.disabled_at is None for user in found]


def test_an_admin_disabled_since_their_token_was_checked_changes_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    ann, bob = _admins(session_factory)
    with transaction(session_factory) as session:
        _disable(ann, bob)(session)
    with (
        pytest.raises(Conflict, match="your account was disabled meanwhile"),
        transaction(session_factory) as session,
    ):
        _disable(bob, ann)(session)
    assert _enabled(session_factory, ann, bob) == [True, False]


@on_one_database("postgresql")
def test_two_admins_disabling_each_other_at_once_leave_one_enabled(
    session_factory: sessionmaker[Session],
) -> None:
    """The second waits on the first's locks, then finds its own account disabled."""
    ann, bob = _admins(session_factory)
    raised = while_open(session_factory, _disable(ann, bob), _disable(bob, ann))
    assert isinstance(raised, Conflict), raised
    assert _enabled(session_factory, ann, bob) == [True, False]
