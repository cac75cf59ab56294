"""A small typed HTTP client for the v1 API, used by the CLI, the end-to-end tests
and the benchmarks. It speaks only HTTP: it imports nothing from the server."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.sse_text import parse_sse

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)
# A reverse proxy's answers while the server behind it restarts.
PROXY_UNAVAILABLE = frozenset({502, 503, 504})


class ClientSettings(BaseSettings):
    """Where the CLI finds the server: LAGTRAIN_URL and LAGTRAIN_TOKEN, else the admin
    token that `lagtrain server` wrote under LAGTRAIN_STATE_DIR."""

    model_config = SettingsConfigDict(env_prefix="LAGTRAIN_", extra="ignore")

    url: str = "http://127.0.0.1:8000"
    token: SecretStr | None = None
    state_dir: Path = Path("./.lagtrain")

    def resolved_token(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        # Relative to the current directory, as the server wrote it: say where we looked.
        path = (self.state_dir / "admin-token").absolute()
        if not path.is_file():
            raise ApiError(
                0,
                f"no token: LAGTRAIN_TOKEN is not set and {path} does not exist (the admin "
                "token `lagtrain server` writes in its state directory: run from the "
                "server's working directory, or set LAGTRAIN_STATE_DIR)",
            )
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ApiError(0, f"cannot read the token file {path}: {exc.strerror}") from exc


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}" if status else str(detail))
        self.status = status
        self.detail = detail


class ChecksumMismatch(ApiError):
    """A downloaded file's bytes do not match the sha256 the server sent with it."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, detail)


class Client:
    def __init__(
        self, url: str, token: str, *, timeout: float = 30.0, http: httpx.Client | None = None
    ) -> None:
        """`http`: an httpx client to send through instead (tests pass an in-process
        one); the token is added to its headers."""
        self._http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self._http.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> Client:
        return cls(settings.url, settings.resolved_token())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
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

    def submit(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self._request("POST", "/v1/jobs", json=spec, headers=headers)
        return result

    def job(self, job_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/jobs/{job_id}")
        return result

    def explain(self, job_id: int) -> dict[str, Any]:
        """Why a job waits: its place in the queue and what blocks it."""
        result: dict[str, Any] = self._request("GET", f"/v1/jobs/{job_id}/explain")
        return result

    def jobs(
        self, *, status: str | None = None, limit: int = 50, most: int | None = None
    ) -> list[dict[str, Any]]:
        """Your jobs (an admin's: everyone's), newest first, `limit` a page; with
        `most`, the newest `most` and one more when there are more."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._every_page("/v1/jobs", params, most=most)

    def cancel(self, job_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", f"/v1/jobs/{job_id}/cancel")
        return result

    def metrics(self, job_id: int, *, after_seq: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self._request(
                "GET", f"/v1/jobs/{job_id}/metrics", params={"after_seq": after_seq, "limit": 1000}
            )
            out.extend(page["data"])
            if not page["data"]:
                return out
            after_seq = page["next_after_seq"]

    def checkpoints(self, job_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", f"/v1/jobs/{job_id}/checkpoints")[
            "data"
        ]
        return result

    def download_checkpoint(self, job_id: int, checkpoint_id: int, dest: Path) -> Path:
        """Stream the checkpoint to `dest`, checking it against the X-Checkpoint-SHA256
        the server sends: the bytes go to a temporary file beside `dest`, which
        replaces `dest` only when they match (else ChecksumMismatch, `dest` untouched)."""
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/checkpoints/{checkpoint_id}") as r:
                if r.status_code >= 400:
                    r.read()
                    raise ApiError(r.status_code, r.text)
                expected = r.headers.get("X-Checkpoint-SHA256")
                digest = hashlib.sha256()
                with partial.open("wb") as fh:
                    for chunk in r.iter_bytes():
                        digest.update(chunk)
                        fh.write(chunk)
            if expected is not None and digest.hexdigest() != expected.lower():
                raise ChecksumMismatch(
                    f"checkpoint {checkpoint_id} of job {job_id}: the download's sha256 "
                    f"{digest.hexdigest()} does not match the server's {expected}; "
                    f"{dest} was not written"
                )
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    def upload_dataset(self, path: Path, *, fmt: str | None = None) -> dict[str, Any]:
        """Upload a text or CSV file (streamed from disk); `fmt` None: from its name."""
        with path.open("rb") as fh:
            result: dict[str, Any] = self._request(
                "POST",
                "/v1/datasets",
                files={"file": (path.name, fh)},
                data={} if fmt is None else {"format": fmt},
            )
        return result

    def datasets(self, *, limit: int = 50) -> list[dict[str, Any]]:
        return self._every_page("/v1/datasets", {"limit": limit})

    def delete_dataset(self, dataset_id: int) -> None:
        self._request("DELETE", f"/v1/datasets/{dataset_id}")

    def delete_checkpoints(self, job_id: int) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}/checkpoints")

    def me(self) -> dict[str, Any]:
        """The signed-in user, with `quota` (in force) and `usage`."""
        result: dict[str, Any] = self._request("GET", "/v1/users/me")
        return result

    def users(self) -> list[dict[str, Any]]:
        """Every user (admins)."""
        return self._every_page("/v1/users", {"limit": 500})

    def create_user(
        self,
        name: str,
        *,
        role: str = "user",
        share: float | None = None,
        quota: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new user (admins), with `token`, shown only in this answer."""
        body: dict[str, Any] = {"name": name, "role": role}
        body |= {k: v for k, v in {"share": share, "quota": quota}.items() if v is not None}
        result: dict[str, Any] = self._request("POST", "/v1/users", json=body)
        return result

    def update_user(self, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """PATCH a user (admins): `disabled`, `share`, `quota` (a null field: the
        server's default)."""
        result: dict[str, Any] = self._request("PATCH", f"/v1/users/{user_id}", json=changes)
        return result

    def tokens(self, *, user_id: int | None = None) -> list[dict[str, Any]]:
        """Active tokens, never their secrets: yours, or (admins) a user's."""
        params = {} if user_id is None else {"user_id": user_id}
        result: list[dict[str, Any]] = self._request("GET", "/v1/tokens", params=params)["data"]
        return result

    def create_token(
        self, *, expires_in_days: int | None = None, user_id: int | None = None
    ) -> dict[str, Any]:
        """A new token (`token` shown only in this answer): yours, or (admins) a user's."""
        body = {"expires_in_days": expires_in_days}
        if user_id is not None:
            body["user_id"] = user_id
        result: dict[str, Any] = self._request("POST", "/v1/tokens", json=body)
        return result

    def revoke_token(self, token_id: int) -> None:
        self._request("DELETE", f"/v1/tokens/{token_id}")

    def audit(
        self,
        *,
        order: str = "oldest",
        actor_id: int | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = 100,
        most: int | None = None,
    ) -> list[dict[str, Any]]:
        """The audit log (admins), `order` "oldest" or "newest" first, paged like
        jobs(); a filter left None matches any event."""
        filters = {"actor_id": actor_id, "action": action, "target": target}
        params = {"order": order, "limit": limit}
        params |= {name: value for name, value in filters.items() if value is not None}
        return self._every_page(
            "/v1/audit", params, most=most, cursor=("next_after_id", "after_id")
        )

    def submit_sweep(
        self, spec: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self._request("POST", "/v1/sweeps", json=spec, headers=headers)
        return result

    def sweeps(
        self, *, status: str | None = None, limit: int = 50, most: int | None = None
    ) -> list[dict[str, Any]]:
        """Your sweeps (an admin's: everyone's), newest first, paged like jobs()."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._every_page("/v1/sweeps", params, most=most)

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/sweeps/{sweep_id}")
        return result

    def cancel_sweep(self, sweep_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", f"/v1/sweeps/{sweep_id}/cancel")
        return result

    def events(
        self, job_id: int, *, last_event_id: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (event, data) from the job's SSE stream until the server closes it."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
        # The server pings every 15 s: a minute without a byte is a dead connection
        # (a crashed host, a dropped NAT entry), which `follow` reconnects.
        with self._http.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=STREAM_TIMEOUT
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, response.text)
            for message in parse_sse(response.iter_lines()):
                yield message.event, message.data

    def follow(
        self,
        job_id: int,
        *,
        give_up_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """`events` until the server closes the stream after a terminal status,
        through a lost connection (a server restarting, a proxy timing out): it
        reconnects with Last-Event-ID = the last metric seen, so no metric repeats or
        goes missing. (A finished job's stream sends its terminal status first and
        again after its metrics: the end is the stream's close, and a connection lost
        before it reconnects.) Raises the connection's error once the server has been
        unreachable for `give_up_after` seconds."""
        last_seq: int | None = None
        failing_since: float | None = None
        wait = 0.5
        ended = False
        while True:
            try:
                for event, data in self.events(job_id, last_event_id=last_seq):
                    failing_since, wait = None, 0.5
                    if event == "metrics":
                        last_seq = int(data["seq"])
                        ended = False  # a finished job's backlog: its status comes again
                    elif event == "status":
                        ended = data.get("status") in TERMINAL_STATUSES
                    yield event, data
                if ended:
                    return
            except (httpx.TransportError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status not in PROXY_UNAVAILABLE:
                    raise
                now = time.monotonic()
                failing_since = failing_since if failing_since is not None else now
                if now - failing_since >= give_up_after:
                    raise
            # The stream ended (or broke) before a terminal status: connect again.
            sleep(wait)
            wait = min(wait * 2, 5.0)
