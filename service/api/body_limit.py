"""Request body size limit as a pure ASGI middleware: a declared Content-Length over
the limit is refused before the app runs, and streamed (chunked) bodies are counted
as they arrive, so a client cannot get past the limit by not declaring a length."""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large(limit: int, note: str | None) -> str:
    """The 413's detail: the limit in bytes, and what it means for the route."""
    return f"request body larger than {limit} bytes" + (f"; {note}" if note else "")


class BodyTooLarge(HTTPException):
    # An HTTPException, so FastAPI's body parsing re-raises it unchanged and the
    # exception middleware answers 413 when the limit trips mid-stream.
    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        default_limit: int,
        route_limits: Mapping[tuple[str, str], tuple[int, str]] | None = None,
    ) -> None:
        """`route_limits`: (method, path) → (limit, a note for its 413: what the limit
        is made of, e.g. a dataset's own limit plus the form's envelope)."""
        self.app = app
        self.default_limit = default_limit
        self.route_limits = dict(route_limits or {})

    def _limit_for(self, scope: Scope) -> tuple[int, str | None]:
        key = (scope["method"], scope["path"].rstrip("/") or "/")
        return self.route_limits.get(key, (self.default_limit, None))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, note = self._limit_for(scope)
        detail = too_large(limit, note)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, detail)
            return
        if declared is not None or not _chunked(scope):
            # The server reads exactly Content-Length bytes (checked above), and a
            # request with neither header has no body: nothing to count, and no
            # wrappers on the way (an SSE stream's every write would pass them).
            await self.app(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(detail)
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _send_413(send, detail)


def _chunked(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" for name, _value in scope.get("headers", []))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
