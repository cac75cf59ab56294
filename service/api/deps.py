"""Shared request dependencies: the session factory, settings, bounded ids and
cursors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.common import MAX_PAGE as MAX_PAGE
from service.settings import Settings

MAX_ID = 2**63 - 1
MAX_SEQ = 2**31 - 1
DEFAULT_PAGE = 50
# A job's metric records are small and read in bulk (a chart of every round).
MAX_METRICS_PAGE = 10 * MAX_PAGE


# Trivial dependencies are async: FastAPI runs a sync one in its thread pool, a hand-
# off per dependency per request that costs more than the dependency itself.
async def _sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Sessions = Annotated[sessionmaker[Session], Depends(_sessions)]
AppSettings = Annotated[Settings, Depends(_settings)]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="job id")]
DatasetId = Annotated[int, Path(ge=1, le=MAX_ID, description="dataset id")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]
Cursor = Annotated[str | None, Query(max_length=32, description="next_cursor of the previous page")]


def decode_cursor(cursor: str | None) -> int | None:
    """Cursors are the boundary id of the previous page; clients treat them as opaque."""
    if cursor is None:
        return None
    if cursor.isascii() and cursor.isdigit() and 0 < int(cursor) <= MAX_ID:
        return int(cursor)
    raise RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("query", "cursor"),
                "msg": "invalid cursor; pass next_cursor from the previous page",
                "input": cursor,
            }
        ]
    )


def field_error(loc: tuple[str | int, ...], msg: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's list form, for checks the schema alone cannot make."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg, "input": value}])


def spec_errors(problems: Sequence[tuple[str, str]], spec: BaseModel) -> RequestValidationError:
    """A 422 listing (dotted field, message) problems found in the request body's spec."""
    body = spec.model_dump(mode="json")
    errors = []
    for field, message in problems:
        path = field.split(".")
        value: Any = body
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        msg = f"{field}: {message}"
        errors.append({"type": "value_error", "loc": ("body", *path), "msg": msg, "input": value})
    return RequestValidationError(errors)


def next_cursor(ids: list[int], limit: int) -> str | None:
    """The next page's cursor for a page whose store query asked for `limit` + 1 rows
    (`ids`: theirs, in order; the page shows the first `limit`): the last shown row's
    id when a row was left over, else None — a page that is exactly full is the
    last one, not an invitation to fetch an empty page."""
    return str(ids[limit - 1]) if len(ids) > limit else None
