"""Running the `lagtrain` CLI against an httpx.MockTransport: for answers a real
lagtrain server never gives (a proxy's redirect, an SSO page, a timeout after the
request was sent). The CLI's own code runs whole; only the socket is replaced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from service.cli import app
from service.client import Client, ClientSettings

URL = "http://lagtrain.test"
TOKEN = "t" * 40
Handler = Callable[[httpx.Request], httpx.Response]


def answering(monkeypatch: pytest.MonkeyPatch, handler: Handler) -> None:
    """Every client the CLI makes from now on sends through `handler`."""

    def from_settings(cls: type[Client], settings: ClientSettings) -> Client:
        http = httpx.Client(base_url=settings.url, transport=httpx.MockTransport(handler))
        return cls(settings.url, settings.resolved_token(), http=http)

    monkeypatch.setattr(Client, "from_settings", classmethod(from_settings))


def invoke(args: list[str], **env: Any) -> Result:
    return CliRunner().invoke(app, args, env={"LAGTRAIN_URL": URL, "LAGTRAIN_TOKEN": TOKEN, **env})


def one_error(result: Result, code: int = 1) -> str:
    """The command's one error line on stderr, after a clean exit with `code`."""
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error"), result.stderr
    return lines[0]
