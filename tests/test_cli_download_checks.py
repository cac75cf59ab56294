"""`lagtrain download` keeps a file that exists (--force replaces it) and says
"verified" only when a digest was checked: where a proxy drops X-Checkpoint-SHA256
the listing's sha256 is checked, and with no digest at all it says so."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.cli_mock import Handler, answering, invoke, one_error

DATA = b"weights" * 100
SHA = hashlib.sha256(DATA).hexdigest()


def without_the_header(listed: str | None, fetched: list[str]) -> Handler:
    """Checkpoint 5 (round 3) of job 1, listed with `listed` as its sha256 and sent
    without X-Checkpoint-SHA256 (as a proxy that drops it would)."""

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/jobs/1/checkpoints":
            return httpx.Response(200, json={"data": [{"id": 5, "round": 3, "sha256": listed}]})
        fetched.append(request.url.path)
        return httpx.Response(200, content=DATA)

    return server


def test_an_existing_file_is_kept_unless_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[str] = []
    answering(monkeypatch, without_the_header(SHA, fetched))
    dest = tmp_path / "job-1-round-3.pt"
    dest.write_bytes(b"my fine-tuned weights")
    line = one_error(invoke(["download", "1", "-o", str(tmp_path)]))
    assert line == f"error: {dest} exists: --force replaces it"
    assert dest.read_bytes() == b"my fine-tuned weights" and fetched == []  # none downloaded

    forced = invoke(["download", "1", "-o", str(dest), "--force"])
    assert forced.exit_code == 0, (forced.output, forced.exception)
    assert dest.read_bytes() == DATA
    assert forced.stdout == f"wrote {dest} (round 3, sha256 {SHA[:12]}… verified)\n"


def test_without_the_header_the_listings_digest_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering(monkeypatch, without_the_header("0" * 64, []))
    line = one_error(invoke(["download", "1", "-o", f"{tmp_path}/"]))
    assert f"the download's sha256 {SHA} does not match the server's {'0' * 64}" in line
    assert list(tmp_path.iterdir()) == []


def test_with_no_digest_at_all_it_is_not_called_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering(monkeypatch, without_the_header(None, []))
    done = invoke(["download", "1", "-o", f"{tmp_path}/"])
    assert done.exit_code == 0, (done.output, done.exception)
    written = tmp_path / "job-1-round-3.pt"
    assert done.stdout == f"wrote {written} (round 3, the server sent no sha256 to check)\n"
    assert written.read_bytes() == DATA


def test_a_file_made_during_the_download_is_kept_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before the download saw no file; one made while the bytes came (a
    second download, the user's own save) is left as it is, not replaced (a review)."""
    dest = tmp_path / "job-1-round-3.pt"
    plain = without_the_header(SHA, [])

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/checkpoints/5"):
            dest.write_bytes(b"saved meanwhile")
        return plain(request)

    answering(monkeypatch, server)
    line = one_error(invoke(["download", "1", "-o", str(tmp_path)]))
    assert line == f"error: {dest} exists: --force replaces it"
    assert dest.read_bytes() == b"saved meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]  # no partial file left
