"""The client checks a downloaded checkpoint against the X-Checkpoint-SHA256 the
server sends (issue 9, point 3): a file whose bytes changed on disk since it was
recorded is refused and the destination is left untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.artifacts import write_file
from service.client import ChecksumMismatch, Client
from tests.api.conftest import ADMIN_TOKEN, Api


def test_download_verifies_the_sha256_and_refuses_changed_bytes(api: Api, tmp_path: Path) -> None:
    job_id = api.submit(api.admin)
    data = b"checkpoint-bytes" * 1000
    uri, checkpoint_id = api.checkpoint(api.claim(), 0, data)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    client = Client("http://testserver", ADMIN_TOKEN, http=api.client)
    good = client.download_checkpoint(job_id, checkpoint_id, downloads / "good.pt")
    assert good.read_bytes() == data

    write_file(uri, b"X" + data[1:])  # the same size, one byte changed
    dest = downloads / "bad.pt"
    with pytest.raises(ChecksumMismatch, match="does not match"):
        client.download_checkpoint(job_id, checkpoint_id, dest)
    assert not dest.exists()
    assert sorted(p.name for p in downloads.iterdir()) == ["good.pt"], "no partial file left"
