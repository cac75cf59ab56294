"""The one place where domain errors become HTTP answers. Every error body is
{"detail": ...}; unexpected exceptions become a 500 without internals."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.errors import Conflict, NotFound, QuotaExceeded

log = logging.getLogger(__name__)

DOMAIN_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),  # includes IdempotencyConflict, InvalidTransition, StaleLease
    (QuotaExceeded, 429),
)


def _domain_handler(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=code, content={"detail": str(exc) or None})

    return handle


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


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own handler, with the echoed input made JSON-safe (DESIGN §6: 422
    # keeps FastAPI's list form).
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        status_code=422, content={"detail": _echoable(jsonable_encoder(exc.errors()))}
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for exc_type, code in DOMAIN_STATUS:
        app.add_exception_handler(exc_type, _domain_handler(code))
    app.add_exception_handler(Exception, _unexpected)
