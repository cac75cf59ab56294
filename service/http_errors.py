"""The one place where domain errors become HTTP answers. Every error body is
{"detail": ...}; unexpected exceptions become a 500 without internals."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
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


def install_error_handlers(app: FastAPI) -> None:
    for exc_type, code in DOMAIN_STATUS:
        app.add_exception_handler(exc_type, _domain_handler(code))
    app.add_exception_handler(Exception, _unexpected)
