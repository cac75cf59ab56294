"""Users by name and by id, as people read and type them. Job events and audit
details store a user as `user:<id>` (ids never change); what the API shows names
them, `user:alice`, as the audit log's actor column does. A listing's `?owner=` is
a name: owner_filter_id reads it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import field_error
from service.schemas.accounts import folded_user_name
from service.schemas.field_hints import nearest
from service.store.models import User
from service.store.users import Principal, find_user_id, user_names

USER_REF = re.compile(r"\buser:(\d+)\b")
# The reasons the server writes that name who asked: "cancelled by user:3", "cancel by
# user:3" (a running job), "sweep 2 cancelled by user:3" (its trials). Any other
# reason (a worker's error text) is shown as it is.
_ASKED_BY = re.compile(r"\bcancel(?:led)? by user:\d+\b")


def asked_by(reason: object) -> str:
    """`reason` if it is one the server wrote naming who asked, else ""."""
    return reason if isinstance(reason, str) and _ASKED_BY.search(reason) else ""


def user_namer(*, session: Session, texts: Iterable[str]) -> Callable[[str], str]:
    """A function that writes each `user:<id>` of a text as `user:<name>`, knowing the
    users named in `texts` (one query for all of them; an unknown id stays a number)."""
    ids = {int(found) for text in texts for found in USER_REF.findall(text)}
    names = user_names(session=session, user_ids=ids)

    def named(text: str) -> str:
        return USER_REF.sub(lambda m: f"user:{names.get(int(m[1]), m[1])}", text)

    return named


def owner_filter_id(*, session: Session, viewer: Principal, name: str | None) -> int | None:
    """The user id a listing's `?owner=` names (GET /v1/jobs, its feed, GET /v1/sweeps),
    None for no filter. A name no user has is an admin's typo: a 422 at
    ["query", "owner"], "no user named 'bbo'; did you mean 'bob'?", where it listed
    nothing, read as "no jobs" (a walkthrough). The name is matched as every name is,
    whatever its case (the CLI's `prune --owner`, `audit --user` too). A non-admin
    only ever lists their own: to them an unknown name lists nothing, as another
    user's does, so the answer does not say which names exist."""
    if name is None:
        return None
    found = find_user_id(session=session, name=name)
    if found is not None:
        return found
    if not viewer.is_admin:
        return 0  # nobody's id: lists nothing
    folded = {folded_user_name(known): known for known in session.scalars(select(User.name))}
    close = nearest(folded_user_name(name), folded)
    guess = f"; did you mean {folded[close]!r}?" if close is not None else ""
    raise field_error(("query", "owner"), f"no user named {name!r}{guess}", name)
