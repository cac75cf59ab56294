"""What the CLI makes of a token as it is found: its ends stripped (a CRLF token
file, `$(cat tok)`), and a token no header can carry refused in one line that never
shows it (httpx's "Illegal header value b'Bearer …'" printed the secret)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli_mock import answering, invoke, one_error

SECRET = "s3cr3t-" + "k" * 33


def test_a_token_with_a_carriage_return_at_its_end_is_sent_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Authorization"])
        return httpx.Response(200, json={"data": [], "next_cursor": None})

    answering(monkeypatch, server)
    result = invoke(["jobs"], LAGTRAIN_TOKEN=SECRET + "\r\n")
    assert result.exit_code == 0, (result.output, result.exception)
    assert sent == [f"Bearer {SECRET}"]


@pytest.mark.parametrize("token", [f"{SECRET[:9]}\r{SECRET[9:]}", SECRET + "\u00e9"])
def test_a_token_a_header_cannot_carry_is_refused_without_showing_it(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering(monkeypatch, lambda _r: httpx.Response(500))
    line = one_error(invoke(["jobs"], LAGTRAIN_TOKEN=token), code=2)
    assert line == (
        "error: LAGTRAIN_TOKEN holds characters an HTTP header cannot carry (a token is "
        "printable ASCII): a control character or a non-ASCII letter was copied with it"
    )


def test_httpxs_own_header_error_never_reaches_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A header refused as the request is sent: its text quotes the header."""

    def server(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {SECRET}\\x0b'")

    answering(monkeypatch, server)
    line = one_error(invoke(["jobs"]))
    assert SECRET not in line and "Illegal header" not in line
    assert line.endswith("the token holds characters an HTTP header cannot carry"), line


def test_a_token_file_that_is_not_utf8_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / ".lagtrain"
    state.mkdir()
    (state / "admin-token").write_bytes(b"\xff\xfeS\x00E\x00")  # a UTF-16 file
    answering(monkeypatch, lambda _r: httpx.Response(500))
    line = one_error(invoke(["jobs"], LAGTRAIN_TOKEN=None, LAGTRAIN_STATE_DIR=str(state)), 2)
    assert line == f"error: cannot read the token file {state / 'admin-token'}: not UTF-8 text"
