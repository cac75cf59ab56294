"""Who acted, as people read it. Job events and audit details store a user as
`user:<id>` (ids never change); what the API shows names them, `user:alice`, as the
audit log's actor column does."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from service.store.users import user_names

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
