"""The one place where domain errors become HTTP answers. Every error body is
{"detail": ...}; unexpected exceptions become a 500 without internals."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from service.api.query_check import query_names
from service.errors import ArtifactsUnavailable, Conflict, NotFound, QuotaExceeded
from service.json_body import is_json_content_type
from service.schemas.common import error_message
from service.schemas.field_hints import model_of, names_hint, unknown_field_hint

log = logging.getLogger(__name__)

DOMAIN_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),  # includes IdempotencyConflict, InvalidTransition, StaleLease
    (QuotaExceeded, 429),
    (ArtifactsUnavailable, 503),
)


def _domain_handler(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=code, content={"detail": str(exc) or None})

    return handle


# How long a client should wait before trying again when the store does not answer.
STORE_RETRY_AFTER_SECONDS = 5


# SQLite's result codes for a store that may answer later; SQLite also reports a
# missing table or a syntax error as an OperationalError, which is a bug, not an outage.
# (Extended codes, e.g. SQLITE_IOERR_WRITE, start with their primary code's name.)
_SQLITE_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
)


def _transient(exc: OperationalError) -> bool:
    """Whether the database refused or dropped the statement for a while (locked past
    the busy timeout, read-only, unreachable, a lost connection): psycopg's
    OperationalError is such by definition (a missing table is a ProgrammingError)."""
    if exc.connection_invalidated:
        return True
    name = getattr(exc.orig, "sqlite_errorname", None)
    return name is None or str(name).startswith(_SQLITE_TRANSIENT)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The request can succeed later: a 503 a client retries, not a 500; one log line
    # (the reason), not a traceback per request.
    if not isinstance(exc, OperationalError) or not _transient(exc):
        return await _unexpected(request, exc)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, reason)
    return JSONResponse(
        status_code=503,
        content={"detail": "the database is not answering; try again shortly"},
        headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal server error"})


def _echoable(value: object) -> object:
    """`value` as strict JSON can carry it. A 422 echoes the rejected input, which
    may be what JSON cannot hold: NaN/Infinity (Python's json accepts them in a
    request; a response refuses them) or a lone UTF-16 surrogate (not encodable as
    UTF-8). Unsanitised, the 422 itself would fail and answer 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_echoable(k): _echoable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_echoable(v) for v in value]
    return value


def _takes_json_body(request: Request) -> bool:
    route = request.scope.get("route")
    return (
        isinstance(route, APIRoute)
        and route.body_field is not None
        and not isinstance(route.body_field.field_info, params.Form)
    )


def _explain_unparsed_body(request: Request, errors: Sequence[Any]) -> list[Any]:
    """`errors`, with a body left unparsed for want of a JSON content type said so.
    FastAPI parses a body as JSON only under Content-Type: application/json, so
    `curl -d '{...}'` (sent as a form) reached the model as raw bytes and got "Input
    should be a valid dictionary", which does not point at the missing header."""
    content_type = request.headers.get("content-type")
    if is_json_content_type(content_type) or not _takes_json_body(request):
        return list(errors)
    came_as = f"it came as {content_type}" if content_type else "it came without one"
    return [
        {
            "type": "json_content_type",
            "loc": error["loc"],
            "msg": f"the body must be JSON sent with Content-Type: application/json ({came_as})",
            "input": error["input"],
        }
        # The raw body: what FastAPI validates when it did not parse the body as JSON.
        if tuple(error.get("loc", ())) == ("body",) and isinstance(error.get("input"), bytes)
        else error
        for error in errors
    ]


def _plain_message(error: Any, body: type[BaseModel] | None, route: APIRoute | None) -> Any:
    if not isinstance(error, dict):
        return error
    message = error_message(error)
    loc = error.get("loc", ())
    if error.get("type") == "extra_forbidden" and body is not None and loc[:1] == ("body",):
        hint = unknown_field_hint(body, loc)
        message = f"{message}{hint}" if hint else message
    if error.get("type") == "extra_forbidden" and route is not None and loc[:1] == ("query",):
        message += names_hint(str(loc[-1]), query_names(route), "parameters here")
    if _plus_read_as_space(error):
        message += " (a + in a URL's query is a space: write a time's offset +01:00 as %2B01:00)"
    return {**error, "msg": message}


def _plus_read_as_space(error: dict[str, Any]) -> bool:
    """A time in a query whose offset's + came as a space: `?finished_before=…T00:00+01:00`
    typed as the docs show reads "…T00:00 01:00" (a walkthrough)."""
    value = error.get("input")
    return (
        str(error.get("type", "")).startswith("datetime")
        and tuple(error.get("loc", ()))[:1] == ("query",)
        and isinstance(value, str)
        and re.search(r"T\d\d:\d\d(:\d\d(\.\d+)?)? \d\d(:?\d\d)?$", value) is not None
    )


def _body_model(request: Request) -> type[BaseModel] | None:
    """The model a route validates its JSON body with, if it has one."""
    route = request.scope.get("route")
    field = route.body_field if isinstance(route, APIRoute) else None
    return model_of(field.field_info.annotation) if field is not None else None


# The most field errors one 422 lists: a body of 100,000 bad entries (under the
# request size limit) gave an answer 14 times its size.
MAX_REPORTED_ERRORS = 50


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own handler, with the echoed input made JSON-safe (DESIGN §6: 422
    # keeps FastAPI's list form) and validators' messages without pydantic's prefix.
    assert isinstance(exc, RequestValidationError)
    found = _explain_unparsed_body(request, exc.errors())
    body = _body_model(request)
    route = request.scope.get("route")
    route = route if isinstance(route, APIRoute) else None
    errors = [_plain_message(e, body, route) for e in found[:MAX_REPORTED_ERRORS]]
    if len(found) > MAX_REPORTED_ERRORS:
        more = len(found) - MAX_REPORTED_ERRORS
        errors.append(
            {"type": "too_many_errors", "loc": ["body"], "msg": f"and {more:,} more errors"}
        )
    return JSONResponse(status_code=422, content={"detail": _echoable(jsonable_encoder(errors))})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for exc_type, code in DOMAIN_STATUS:
        app.add_exception_handler(exc_type, _domain_handler(code))
    app.add_exception_handler(OperationalError, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)
