"""`lagtrain admin orphan-files` (SQLite and PostgreSQL): files in the artifacts
location that no upload or checkpoint row names, left by faults, are listed and, with
--delete, removed and audited; named files, young files (their row may commit a moment
later) and files outside lagtrain's folders stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from service.cli import app
from service.store.db import read_transaction
from service.store.models import AuditEvent
from tests.api.conftest import Api
from tests.api.test_storage_release import _upload

DAY = 24 * 3600.0


def _old_file(path: Path, data: bytes, age_s: float = 2 * DAY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def _age_everything(root: Path) -> None:
    """Make every file old: being named, not being young, must be what keeps one."""
    then = time.time() - 2 * DAY
    for path in root.rglob("*"):
        os.utime(path, (then, then))


def test_orphan_files_lists_then_removes_only_what_no_row_names(api: Api) -> None:
    root = Path(api.settings.artifacts_url)
    _alice_id, alice = api.create_user("alice")
    dataset = _upload(api, alice)
    api.submit(alice)
    claimed = api.claim()
    checkpoint_uri, _ = api.checkpoint(claimed, 4, b"weights")
    _age_everything(root)
    [upload_file] = (root / "datasets").iterdir()
    named = {upload_file, Path(checkpoint_uri)}

    job = claimed.job_id
    orphans = {
        # an earlier attempt's file for a round the resumed attempt checkpointed again
        _old_file(root / "jobs" / str(job) / "round-00000005-a0.pt", b"old weights"),
        # a fenced attempt's temporary file, cut short by a crash
        _old_file(root / "jobs" / str(job) / "round-00000009-a0.pt.tmp-0123abcd", b"half"),
        # a deleted upload whose file removal failed
        _old_file(root / "datasets" / "ab12-deadbeef.txt", b"gone upload"),
    }
    young = _old_file(root / "jobs" / str(job) / "round-00000010-a1.pt", b"new", age_s=60)
    foreign = _old_file(root / "notes" / "readme.txt", b"not lagtrain's")
    env = {
        "LAGTRAIN_DATABASE_URL": api.settings.database_url,
        "LAGTRAIN_ARTIFACTS_URL": str(root),
    }
    runner = CliRunner()

    listed = runner.invoke(app, ["admin", "orphan-files"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert {Path(line.split("\t")[0]) for line in lines[:-1]} == orphans
    size = sum(p.stat().st_size for p in orphans)
    assert lines[-1].startswith(f"3 files ({size} bytes)")
    assert all(p.exists() for p in orphans)  # listing removes nothing

    removed = runner.invoke(app, ["admin", "orphan-files", "--delete"], env=env)
    assert removed.exit_code == 0, removed.output
    assert removed.output.strip().endswith(f"removed 3 files ({size} bytes)")
    assert not any(p.exists() for p in orphans)
    assert all(p.exists() for p in {*named, young, foreign})
    assert [d["id"] for d in api.client.get("/v1/datasets", headers=alice).json()["data"]] == [
        dataset["id"]
    ]
    with read_transaction(api.sessions) as session:
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "artifacts.orphans_removed")
        ).all()
        assert event.detail == {"files": 3, "bytes": size}
        assert event.actor.startswith("cli:")

    again = runner.invoke(app, ["admin", "orphan-files", "--delete"], env=env)
    assert again.exit_code == 0 and again.output.startswith("0 files"), again.output
