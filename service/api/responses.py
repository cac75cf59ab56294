"""The error statuses a route declares in its OpenAPI `responses=`, with the body
shape every error has ({"detail": ...}, DESIGN §6), so generated clients and the
schemathesis check see every status a route can return. Usage:

    @router.get("/x", responses=errors(401, 404))

422 is declared by FastAPI itself (HTTPValidationError, the same {"detail": [...]}
list our own field errors use) for every route that takes parameters or a body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]] | None = Field(
        description="what went wrong; a list of field errors for a 422"
    )


DESCRIPTIONS: dict[int, str] = {
    400: "the request cannot be processed as sent",
    401: "missing, unknown, expired or revoked bearer token, or a disabled user",
    403: "the token's user may not do this (admin role required)",
    404: "no such object, or it belongs to another user",
    409: "the request contradicts the stored state",
    413: "the request body is larger than the server's limit",
    422: "a field is invalid; the detail names it",
    429: "a quota or rate limit is reached; the detail names it",
    503: "the database is unreachable or not answering; retry after Retry-After seconds",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut, "description": DESCRIPTIONS[code]} for code in codes}
