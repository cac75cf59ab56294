"""What every part of the v1 API client shares: its errors, the HTTP session, one
request, and reading a cursor-paged list."""

from __future__ import annotations

from typing import Any, Self

import httpx


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}" if status else str(detail))
        self.status = status
        self.detail = detail


class ChecksumMismatch(ApiError):
    """A downloaded file's bytes do not match the sha256 the server sent with it."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, detail)


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
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        return response.json() if response.content else None

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
            out.extend(page["data"])
            if most is not None and len(out) > most:
                return out  # one more than asked: the caller sees there are more
            if not page.get(next_field):
                return out
            params[cursor_param] = page[next_field]
