"""What every part of the v1 API client shares: its errors, the HTTP session, one
request, and reading a cursor-paged list."""

from __future__ import annotations

import uuid
from typing import Any, Self

import httpx

# Errors after which the request may have reached the server and been done, its
# answer lost (a read timeout, a dropped connection): a create is sent again with
# the same Idempotency-Key, which the server answers with what the first one made.
SENT_UNANSWERED = (
    httpx.ReadTimeout,
    httpx.ReadError,
    httpx.WriteTimeout,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}" if status else str(detail))
        self.status = status
        self.detail = detail


class ChecksumMismatch(ApiError):
    """A downloaded file's bytes do not match the sha256 the server sent with it."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, detail)


def refuse_unanswered(response: httpx.Response) -> None:
    """An ApiError for an answer that is not the one asked for: an error (its detail
    as the API sends it, {"detail": ...}) or a redirect, which httpx does not follow
    (an http->https proxy: the POST's body would be lost following it). The body of
    a streamed response must have been read."""
    status = response.status_code
    if 300 <= status < 400:
        raise ApiError(status, _redirect(response))
    if status < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if status == 404 and detail == "Not Found":
            # The framework's answer for a path no route has (every lagtrain 404 names
            # what it did not find): LAGTRAIN_URL ending in /v1 gave this alone.
            detail = (
                f"Not Found: no such route {response.request.url.path}; LAGTRAIN_URL is the "
                "server's root (http://host:port, without /v1)"
            )
        raise ApiError(status, detail)
    # A proxy's HTML error page said whole was dozens of lines.
    raise ApiError(status, f"{response.reason_phrase}: {not_the_api(response)}")


def not_the_api(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "none")
    if response.status_code >= 500:  # a proxy's own error page: the URL is likely right
        return f"not a lagtrain API answer (content-type {kind}): a proxy's or gateway's error"
    return f"not a lagtrain API answer (content-type {kind}): is LAGTRAIN_URL the server's?"


def _redirect(response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        return f"the server redirects without a Location: {not_the_api(response)}"
    target = response.url.join(location)
    # Where the API is: the target less the API's own path (/v1/jobs?limit=101),
    # which a LAGTRAIN_URL with a path (http://host/lagtrain) comes before.
    asked = response.request.url.path
    asked = asked[asked.find("/v1/") :] if "/v1/" in asked else asked
    base = str(target.copy_with(query=None, fragment=None))
    if asked != "/" and base.endswith(asked):
        return f"the server redirects to {target}: set LAGTRAIN_URL to {base[: -len(asked)]}"
    return f"the server redirects to {target}: is LAGTRAIN_URL the server's?"


class ClientBase:
    """The HTTP session and the request helpers that each resource's calls use."""

    def __init__(
        self, url: str, token: str, *, timeout: float = 30.0, http: httpx.Client | None = None
    ) -> None:
        """`http`: an httpx client to send through instead (tests pass an in-process
        one); the token is added to its headers."""
        self._http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self._http.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        refuse_unanswered(response)
        if response.status_code == 204:
            return None
        # An empty 200 (a proxy's) is no answer either: callers index the body.
        # Every v1 answer is a JSON object: anything else (an SSO login page, another
        # service on the port) is said so, not a JSONDecodeError or a TypeError later.
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(response.status_code, not_the_api(response))
        return body

    def _create(self, path: str, body: Any, idempotency_key: str | None) -> dict[str, Any]:
        """POST `body` to create something (a job, a sweep), under `idempotency_key`
        or a new one: sent once more after an error that may have hidden its answer,
        it never makes a second (DESIGN: same key and body, same job)."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        try:
            made: dict[str, Any] = self._request("POST", path, json=body, headers=headers)
        except SENT_UNANSWERED:
            made = self._request("POST", path, json=body, headers=headers)
        return made

    def _every_page(
        self,
        path: str,
        params: dict[str, Any],
        *,
        most: int | None = None,
        cursor: tuple[str, str] = ("next_cursor", "cursor"),
    ) -> list[dict[str, Any]]:
        """Every item of a cursor-paged list (`data`, `next_cursor`), or its first
        `most` (no page is read past them). `cursor`: the page's field that names the
        next page and the parameter it is passed back in (the audit log's differ)."""
        next_field, cursor_param = cursor
        params = dict(params)
        out: list[dict[str, Any]] = []
        while True:
            if most is not None:
                params["limit"] = min(params["limit"], most - len(out) + 1)
            page = self._request("GET", path, params=params)
            if not isinstance(page.get("data"), list):
                raise ApiError(200, "the answer has no list of `data`: not a lagtrain API answer")
            out.extend(page["data"])
            if most is not None and len(out) > most:
                return out  # one more than asked: the caller sees there are more
            if not page.get(next_field):
                return out
            params[cursor_param] = page[next_field]
