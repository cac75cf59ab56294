"""Token rules hold under concurrent requests (PostgreSQL; SQLite's write transactions
are serial already): `max_tokens_per_user` (a leaked token cannot mint tokens without
end) and an admin's last live token (revoking it leaves nobody to issue one over
HTTP). Each check counts the user's live tokens under the user's lock: without it,
a second transaction counted while the first had not committed, and both passed."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict, QuotaExceeded
from service.store.db import transaction
from service.store.users import (
    Principal,
    create_user,
    get_user,
    issue_token,
    live_tokens,
    revoke_token,
)
from tests.conftest import on_one_database
from tests.lock_waits import while_open

pytestmark = on_one_database("postgresql")


def test_concurrent_issues_never_pass_max_tokens_per_user(
    session_factory: sessionmaker[Session],
) -> None:
    with transaction(session_factory) as session:
        user, _, _ = create_user(session=session, name="leaky", role="user")

    def issue(session: Session) -> object:
        return issue_token(session=session, user_id=user.id, max_active=2)

    raised = while_open(session_factory, issue, issue)
    assert isinstance(raised, QuotaExceeded), raised
    with session_factory() as session:
        assert len(live_tokens(session=session, user_id=user.id)) == 2


def test_concurrent_revokes_leave_an_admin_a_live_token(
    session_factory: sessionmaker[Session],
) -> None:
    with transaction(session_factory) as session:
        admin, first, _ = create_user(session=session, name="root", role="admin")
        second, _ = issue_token(session=session, user_id=admin.id)
        principal = acting_as(session, admin.id)

    def revoke(token_id: int) -> Callable[[Session], object]:
        return lambda session: revoke_token(session=session, token_id=token_id, actor=principal)

    raised = while_open(session_factory, revoke(first.id), revoke(second.id))
    assert isinstance(raised, Conflict), raised
    with session_factory() as session:
        assert [t.id for t in live_tokens(session=session, user_id=admin.id)] == [second.id]


def acting_as(session: Session, user_id: int) -> Principal:
    user = get_user(session=session, user_id=user_id)
    return Principal(user_id=user.id, name=user.name, role=user.role, token_id=1)
