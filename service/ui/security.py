"""Browser-facing headers for the dashboard's pages and assets.

The dashboard authenticates with a bearer token that its script sends in the
Authorization header (never a cookie, never the URL): a cross-site page cannot make
the browser attach it, so state-changing API calls need no separate CSRF token. The
CSP then keeps the token's holder — the page's own script — the only script there is.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# plotly.js sets inline style attributes and injects its own <style> element, and its
# heatmaps paint into data: images; no inline or foreign *script* is allowed.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

UI_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def is_ui_path(path: str) -> bool:
    return path == "/" or path.startswith("/ui/")


class UiSecurityHeaders:
    """Adds UI_HEADERS to responses for the dashboard's paths; the API's JSON and the
    OpenAPI docs (which load Swagger UI from a CDN) keep their own headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ui_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *UI_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
