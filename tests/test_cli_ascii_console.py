"""Under an ASCII standard output (PYTHONIOENCODING=ascii, a C locale) what the
encoding lacks is written as escapes: a ★ or an accented name was a
UnicodeEncodeError traceback."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.cli_mock import TOKEN, URL, answering

ENV = {"LAGTRAIN_URL": URL, "LAGTRAIN_TOKEN": TOKEN}
JOB = {"id": 1, "name": "café ★", "owner": "zoë", "status": "queued", "created_at": None}


def test_names_reach_an_ascii_output_as_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    answering(monkeypatch, lambda _r: httpx.Response(200, json={"data": [JOB]}))
    listed = CliRunner(charset="ascii").invoke(app, ["jobs"], env=ENV)
    assert listed.exit_code == 0, (listed.output, listed.exception)
    assert b"| caf\\xe9 \\u2605 | zo\\xeb " in listed.stdout_bytes
