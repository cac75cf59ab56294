"""Shapes shared by every API response: UTC timestamps and cursor pages; and the
canonical digest of a request body that an Idempotency-Key is held to."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, Field

from service.schemas.field_hints import choice_hint


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; the store only
    # ever writes UTC, so naive means UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

# What pydantic writes before the message of a ValueError raised by a validator: it
# says nothing the error's `type` does not, and reads as noise beside the field.
VALUE_ERROR_PREFIX = "Value error, "


# A user's name: ASCII letters, digits and a few marks (the store folds its case).
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
# Patterns said in words: pydantic's "String should match pattern '^[A-Za-z0-9]…$'"
# read as a regular expression to whoever mistyped a name (a walkthrough).
_PATTERN_WORDS = {
    USER_NAME_PATTERN: "a user name is letters, digits and _ . @ - (no spaces), "
    "starting with a letter or digit",
}


def error_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message as people read it: a validator's own words without
    pydantic's "Value error, " before them (the 422s, a sweep's corner checks, the
    settings' start-up errors), a known pattern in words, and the nearest choice to a
    misspelt one (both a job's 422 and a sweep's corner checks read it here)."""
    message = str(error.get("msg", ""))
    if error.get("type") in ("literal_error", "enum"):  # enum: a query's ?status=runing
        return message + choice_hint(error)
    if error.get("type") == "value_error":
        return message.removeprefix(VALUE_ERROR_PREFIX)
    if error.get("type") == "string_pattern_mismatch":
        pattern = str((error.get("ctx") or {}).get("pattern", ""))
        return _PATTERN_WORDS.get(pattern, message)
    return message


# The most rows one page of a listing holds (its `limit`): the routes' bound, and what
# the CLI, the client and the dashboard ask for when they read every page.
MAX_PAGE = 500


def storable(value: str) -> str:
    # PostgreSQL's text refuses NUL, and an unpaired UTF-16 surrogate (JSON
    # "\ud800") is not UTF-8 at all: such a name would pass validation and fail in
    # the store or the response, as a 500 (SQLite keeps the NUL: the stores differ).
    if "\x00" in value:
        raise ValueError("text must not contain a NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must not contain an unpaired UTF-16 surrogate") from None
    return value


def storable_input(value: object) -> object:
    """`storable` for a value before its type is checked (anything not text is left
    to the type's own error)."""
    return storable(value) if isinstance(value, str) else value


# Free text a user names things with (job and sweep names, categorical choices).
StorableText = Annotated[str, AfterValidator(storable)]

# C0 and C1 control characters but tab and newline, and the bidirectional controls
# (marks, embeddings, overrides, isolates: U+061C, U+200E-F, U+202A-E, U+2066-9).
CONTROL_CHARACTERS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def printable(value: str) -> str:
    # A name is shown to others (an admin's job list, the audit log, the dashboard):
    # an ESC in it could retitle or clear their terminal, and a right-to-left override
    # makes "evil\u202etxt.exe" read as "evilexe.txt" and reverses what follows it on
    # the line. Tab and newline are plain text.
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise ValueError(
            f"names must not contain control characters (U+{ord(found.group()):04X} "
            f"at position {found.start()})"
        )
    return value


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        default=None, description="pass as ?cursor= for the next page; null on the last page"
    )


def request_sha256(body: BaseModel) -> str:
    """The digest an Idempotency-Key's retry must match: the fields the request set,
    keys sorted, sections left empty dropped. Set, not "different from the default":
    resolve treats a field given (even as its default or null) differently from one
    left out in places (lag_paper_linreg's optimizer and rounds), so those are
    different requests. A field added to the schema later, or a default moved, leaves
    the digest of a request that did not set it unchanged: a retry that spans a server
    upgrade is still the same request."""
    canonical = json.dumps(
        _without_empty(body.model_dump(mode="json", exclude_unset=True)),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _without_empty(value: Any) -> Any:
    # `"aggregation": {}` asks for nothing: the same request as no section at all.
    if isinstance(value, dict):
        kept = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v != {}}
    return value
