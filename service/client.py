"""A small typed HTTP client for the v1 API, used by the CLI, the end-to-end tests
and the benchmarks. It speaks only HTTP: it imports nothing from the server."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.client_accounts import AccountsApi
from service.client_base import ApiError, ChecksumMismatch
from service.client_data import DataApi
from service.client_jobs import TERMINAL_STATUSES, JobsApi
from service.client_sweeps import SweepsApi

__all__ = ["TERMINAL_STATUSES", "ApiError", "ChecksumMismatch", "Client", "ClientSettings"]


class ClientSettings(BaseSettings):
    """Where the CLI finds the server: LAGTRAIN_URL and LAGTRAIN_TOKEN, else the admin
    token that `lagtrain server` wrote under LAGTRAIN_STATE_DIR."""

    model_config = SettingsConfigDict(env_prefix="LAGTRAIN_", extra="ignore")

    url: str = "http://127.0.0.1:8000"
    token: SecretStr | None = None
    state_dir: Path = Path("./.lagtrain")

    @field_validator("token", mode="before")
    @classmethod
    def _blank_is_unset(cls, token: object) -> object:
        # `LAGTRAIN_TOKEN=` (as the server treats an empty bootstrap token): sent, it
        # was "Bearer ", an illegal header reported as a lost connection. The ends are
        # stripped as a token file's are: `$(cat tok)` of a CRLF file keeps the \r.
        if isinstance(token, str):
            return token.strip() or None
        return token

    def resolved_token(self) -> str:
        if self.token is not None:
            return _sendable(self.token.get_secret_value(), "LAGTRAIN_TOKEN")
        # Relative to the current directory, as the server wrote it: say where we looked.
        path = (self.state_dir / "admin-token").absolute()
        if not path.is_file():
            raise ApiError(
                0,
                "no token: set LAGTRAIN_TOKEN to the API token your lab's admin gave you "
                f"(`lagtrain token-new` makes one). Without it the CLI reads {path}, the "
                "admin token `lagtrain server` writes in its state directory, and that "
                "does not exist (an admin on the server's machine: run from its working "
                "directory, or set LAGTRAIN_STATE_DIR)",
            )
        try:
            return _sendable(path.read_text(encoding="utf-8-sig").strip(), f"the token file {path}")
        except UnicodeDecodeError as exc:
            raise ApiError(0, f"cannot read the token file {path}: not UTF-8 text") from exc
        except OSError as exc:
            raise ApiError(0, f"cannot read the token file {path}: {exc.strerror}") from exc


def _sendable(token: str, source: str) -> str:
    """`token`, if an Authorization header can carry it. Else an error naming where
    it came from but never the token: httpx's own ("Illegal header value b'Bearer
    …'") quoted the secret on stderr, as a lost connection."""
    if not all(" " <= c <= "~" for c in token):
        raise ApiError(
            0,
            f"{source} holds characters an HTTP header cannot carry (a token is printable "
            "ASCII): a control character or a non-ASCII letter was copied with it",
        )
    return token


class Client(JobsApi, SweepsApi, DataApi, AccountsApi):
    """The whole v1 API: each resource's calls come from its own module."""

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> Client:
        return cls(settings.url, settings.resolved_token())
