"""Storage in units a person reads and writes: `lagtrain usage` prints storage as
"1.2 GiB (1,288,490,188 bytes)", and `--quota max_storage_bytes=` takes 10GiB or
500MB besides a count of bytes (a walkthrough: usage printed raw bytes, and 10GiB
was "no number"). The refusals, which need no server: tests/test_cli_sizes.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from service.app import create_app
from service.cli import app
from service.cli_sizes import size_and_bytes
from tests.api.conftest import ADMIN_TOKEN, Api, serving
from tests.api.test_cli_storage import storage_used, table_cells

runner = CliRunner()


def storage_limit(usage: Result) -> str:
    """The `limit` cell of the usage table's storage row."""
    row = next(line for line in usage.stdout.splitlines() if "storage" in line)
    return [cell.strip() for cell in row.split("│") if cell.strip()][2]


def test_usage_uploads_and_datasets_print_sizes_in_units(api: Api, tmp_path: Path) -> None:
    """Usage with the exact count beside (what a quota takes); an upload's line too;
    the datasets table readable sizes (a walkthrough: raw byte counts everywhere)."""
    _uid, alice = api.create_user("alice")
    api.client.post("/v1/datasets", files={"file": ("t.txt", b"x" * 1500)}, headers=alice)
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"y" * 3_000_000)
    token = alice["Authorization"].removeprefix("Bearer ")
    limit = api.settings.default_max_storage_bytes
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token, "COLUMNS": "200"}
        usage = runner.invoke(app, ["usage"], env=env)
        uploaded = runner.invoke(app, ["upload", str(corpus)], env=env)
        listed = runner.invoke(app, ["datasets"], env=env)
    assert uploaded.exit_code == 0, (uploaded.output, uploaded.exception)
    assert uploaded.stdout.strip().endswith(", text, 2.86 MiB (3,000,000 bytes)"), uploaded.stdout
    header, rows = table_cells(listed)
    sizes = {row[3]: row[header.index("size")] for row in rows}
    assert sizes == {"t.txt": "1.46 KiB", "corpus.txt": "2.86 MiB"}, sizes
    assert usage.exit_code == 0, (usage.output, usage.exception)
    assert storage_used(usage) == "1.46 KiB (1,500 bytes)"
    assert storage_limit(usage) == size_and_bytes(limit)
    assert size_and_bytes(20 << 30) == "20 GiB (21,474,836,480 bytes)"


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("10GiB", 10 << 30),
        ("500MB", 500_000_000),
        ("1.5 gib", 3 << 29),
        ("2048", 2048),  # a plain count of bytes, as before
    ],
)
def test_a_storage_quota_takes_a_unit(api: Api, value: str, stored: int) -> None:
    _uid, bob = api.create_user("bob")
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN, "COLUMNS": "200"}
        changed = runner.invoke(
            app, ["user-set", "bob", "--quota", f"max_storage_bytes={value}"], env=env
        )
    assert changed.exit_code == 0, (changed.output, changed.exception)
    me = api.client.get("/v1/users/me", headers=bob).json()
    assert me["quota"]["max_storage_bytes"] == stored
