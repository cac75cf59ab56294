"""The audit log, for admins."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from service.api.deps import MAX_ID, Limit, Sessions
from service.api.responses import errors
from service.api.user_refs import asked_by, user_namer
from service.auth import AdminUser
from service.schemas.accounts import AuditEventOut, AuditPage
from service.schemas.audit import AuditAction
from service.schemas.common import StorableText
from service.schemas.field_hints import nearest
from service.store.audit import audit_page
from service.store.db import read_transaction

router = APIRouter(prefix="/v1", tags=["audit"])

# What action names are made of (job.cancelled, artifacts.orphans_removed): lower
# case only, as every action is — an upper-case prefix matched on SQLite, whose LIKE
# ignores case, and nothing on PostgreSQL. Any such text with a dot is taken, not
# only an AuditAction or its prefix: rows may hold actions of another server version,
# and the filter has always taken any (one that is no action matches nothing).
_ACTION = re.compile(r"^[a-z._]+$")
_ACTIONS = sorted(action.value for action in AuditAction)
# Every action is `subject.verb`: a bare subject ("user") is never one, and matched
# nothing but an empty page (a walkthrough's `lagtrain audit --action user`).
_SUBJECTS = sorted({action.partition(".")[0] for action in _ACTIONS})


def _action_filter(value: str | None) -> str | None:
    # Checked here rather than by Query(pattern=...), whose 422 would only quote the
    # regular expression.
    if value is None:
        return None
    if not _ACTION.match(value):
        raise PydanticCustomError(  # its own error type, beside FastAPI's
            "action_filter",
            "lower-case letters, dots and underscores only: an action such as job.cancelled, "
            "or a prefix ending in '.' such as job.",
        )
    if "." in value:
        return value
    if value in _SUBJECTS:
        return f"{value}."  # the subject alone stands for its prefix: every action under it
    # An unknown word without a dot can match no action of any version: said, with
    # the actions there are, rather than an empty page. (No brace in the text: pydantic
    # would read one as a placeholder, and the pattern above admits none.)
    close = nearest(value, [*_SUBJECTS, *_ACTIONS])
    guess = f" (did you mean {close!r}?)" if close else ""
    raise PydanticCustomError(
        "action_filter",
        f"{value!r} is no action nor the subject of one{guess}; the actions: "
        f"{', '.join(_ACTIONS)}; a subject alone (job) or a prefix ending in '.' (job.) "
        "selects every action under it",
    )


ActionFilter = Annotated[
    str | None,
    Query(
        max_length=40,  # the column's width: a longer one matches nothing
        json_schema_extra={"pattern": _ACTION.pattern},
        description="an action (job.cancelled), or a prefix ending in '.' (job.) or an "
        "action's subject alone (job) for each action under it",
    ),
    AfterValidator(_action_filter),
]
TargetFilter = Annotated[
    StorableText | None,  # a NUL would reach PostgreSQL as a 500
    Query(min_length=1, max_length=200, description="what was acted on, e.g. job:42, user:7"),
]
ActorFilter = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="the acting user's id (a sweep's trials: its owner's)"),
]


@router.get("/audit", response_model=AuditPage, responses=errors(401, 403))
def get_audit(
    _admin: AdminUser,
    sessions: Sessions,
    after_id: Annotated[int | None, Query(ge=0, le=MAX_ID, description="next_after_id")] = None,
    limit: Limit = 100,
    order: Annotated[
        Literal["oldest", "newest"],
        Query(description="newest: newest first, after_id continuing downwards"),
    ] = "oldest",
    actor_id: ActorFilter = None,
    action: ActionFilter = None,
    target: TargetFilter = None,
) -> AuditPage:
    """Oldest first (or `order=newest`): users created/disabled/enabled, quota and
    share changes, tokens created/revoked, jobs submitted/cancelled/deleted, sweeps
    submitted/cancelled (the actor shows who: a sweep's own trial submits as "sweep:N
    for user:name"), datasets uploaded/deleted, checkpoints deleted, orphan files
    removed (service.schemas.audit.AuditAction lists them). `action`: one action,
    a prefix ending in "." (`job.`), or a subject alone (`job`, the same as `job.`);
    a word without a dot that is no subject is a 422 listing the actions. The filters
    combine with AND; page on with after_id=next_after_id."""
    with read_transaction(sessions) as session:
        events = audit_page(
            session=session,
            after_id=after_id,
            limit=limit,
            newest_first=order == "newest",
            actor_id=actor_id,
            action=action,
            target=target,
        )
        # A cancel's reason names who asked ("sweep 3 cancelled by user:2"): by name,
        # as the actor column does.
        named = user_namer(
            session=session, texts=[asked_by(e.detail.get("reason")) for e in events]
        )
        data = [
            AuditEventOut(
                id=e.id,
                time=e.at,
                actor=e.actor,
                action=e.action,
                target=e.target,
                detail={**e.detail, "reason": named(reason)}
                if (reason := asked_by(e.detail.get("reason")))
                else e.detail,
            )
            for e in events
        ]
    # A tailed log: a full page always names where to continue (docs/decisions.md).
    return AuditPage(data=data, next_after_id=events[-1].id if len(events) == limit else None)
