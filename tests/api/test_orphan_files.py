"""`lagtrain admin orphan-files` (SQLite and PostgreSQL): files in the artifacts
location that no upload or checkpoint row names, left by faults, are listed and, with
--delete, removed and audited; named files, young files (their row may commit a moment
later) and files outside lagtrain's folders stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import service.orphan_files as orphan_files
from service.artifacts import artifact_url, removed_file
from service.cli import app
from service.store.db import read_transaction, transaction
from service.store.models import AuditEvent, Dataset
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
        # an earlier attempt's file for a round checkpointed again, whose removal failed
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
    assert lines[0] == f"{root}: 6 files, 2 named by a row"
    assert {Path(line.split("\t")[0]) for line in lines[1:-1]} == orphans
    size = sum(p.stat().st_size for p in orphans)
    # Each file's size and the total readable, the total's exact count beside it.
    assert all(line.split("\t")[1].endswith(" B") for line in lines[1:-1]), lines
    assert lines[-1].startswith(f"3 files, {size} B, that no row names")
    assert all(p.exists() for p in orphans)  # listing removes nothing

    removed = runner.invoke(app, ["admin", "orphan-files", "--delete"], env=env)
    assert removed.exit_code == 0, removed.output
    assert removed.output.strip().endswith(f"removed 3 files, {size} B")
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
    assert again.exit_code == 0 and "\n0 files, 0 B, that" in again.output, again.output


def test_removing_orphans_counts_only_files_that_were_there_and_leaves_no_empty_job_folder(
    api: Api,
) -> None:
    """A deleted job's late checkpoint, its folder's only file: the folder goes with it
    (as a job's delete removes it). Two runs over one list (overlapping cron runs)
    count each file once."""
    root = Path(api.settings.artifacts_url)
    late = _old_file(root / "jobs" / "12" / "round-00000010-a1.pt", b"ab")
    scan = orphan_files.find_orphans(
        sessions=api.sessions, artifacts_url=str(root), older_than=time.time() - DAY
    )
    assert [o.url for o in scan.orphans] == [str(late)]
    first, second = orphan_files.Removal(), orphan_files.Removal()
    orphan_files.remove_orphans(scan.orphans, first, location=str(root))
    orphan_files.remove_orphans(scan.orphans, second, location=str(root))
    assert (first.files, first.bytes) == (1, 2)
    assert (second.files, second.bytes, second.failed) == (0, 0, [])
    assert not (root / "jobs" / "12").exists()
    assert (root / "jobs").is_dir()


def test_rows_spelled_otherwise_protect_their_files_and_a_wrong_location_deletes_nothing(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row may name its file by a relative path or a file:// URL (a server run with a
    relative LAGTRAIN_ARTIFACTS_URL); the command run with an absolute one, or from
    another directory, still sees the file as named. Pointed at a location whose files
    no row names at all, --delete refuses."""
    root = Path(api.settings.artifacts_url)
    _alice_id, alice = api.create_user("alice")
    dataset = _upload(api, alice)
    [stored] = (root / "datasets").iterdir()
    monkeypatch.chdir(root.parent)
    with transaction(api.sessions) as session:  # as a relative-path server wrote it
        row = session.get(Dataset, dataset["id"])
        assert row is not None
        row.uri = f"{root.name}/datasets/{stored.name}"
    _age_everything(root)
    env = {"LAGTRAIN_DATABASE_URL": api.settings.database_url}
    runner = CliRunner()
    for location in (str(root), f"file://{root}", root.name):
        kept = runner.invoke(
            app,
            ["admin", "orphan-files", "--delete"],
            env=env | {"LAGTRAIN_ARTIFACTS_URL": location},
        )
        assert kept.exit_code == 0 and "0 files, 0 B, that" in kept.output, (location, kept.output)
        assert stored.exists()

    # Another location holding lagtrain-shaped files, none of which the rows name.
    elsewhere = tmp_path / "other-artifacts"
    stray = _old_file(elsewhere / "datasets" / "ffff-0000.txt", b"someone else's")
    refused = runner.invoke(
        app,
        ["admin", "orphan-files", "--delete"],
        env=env | {"LAGTRAIN_ARTIFACTS_URL": str(elsewhere)},
    )
    assert refused.exit_code == 1 and stray.exists(), refused.output
    assert "not deleting: the database names 1 file and none of them" in refused.stderr


def test_a_file_that_cannot_be_removed_is_named_and_the_rest_still_go_and_are_audited(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(api.settings.artifacts_url)
    _alice_id, alice = api.create_user("alice")
    _upload(api, alice)
    stuck = _old_file(root / "datasets" / "aa-stuck.txt", b"12345")
    gone = _old_file(root / "datasets" / "bb-gone.txt", b"123")
    _age_everything(root)
    real_remove = removed_file

    def remove(url: str) -> bool:
        if url.endswith("aa-stuck.txt"):
            raise PermissionError("read-only")
        return real_remove(url)

    monkeypatch.setattr(orphan_files, "removed_file", remove)
    env = {
        "LAGTRAIN_DATABASE_URL": api.settings.database_url,
        "LAGTRAIN_ARTIFACTS_URL": str(root),
    }
    result = CliRunner().invoke(app, ["admin", "orphan-files", "--delete"], env=env)
    assert result.exit_code == 1, result.output
    assert stuck.exists() and not gone.exists()
    assert f"could not remove {stuck}: read-only" in result.stderr
    assert result.stdout.strip().endswith("removed 1 file, 3 B")
    with read_transaction(api.sessions) as session:
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "artifacts.orphans_removed")
        ).all()
        assert event.detail == {"files": 1, "bytes": 3}


def test_a_local_location_that_does_not_exist_is_an_error_naming_it(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped location (or a relative one read from another working directory)
    lists no files: it is one line naming the folder and exit status 1, never "0
    files" and exit 0 as if all were clean."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-folder").write_bytes(b"a file")
    env = {"LAGTRAIN_DATABASE_URL": api.settings.database_url}
    runner = CliRunner()
    for location, problem in (
        ("artifcts", f"there is no folder {tmp_path / 'artifcts'}"),
        (f"file://{tmp_path}/gone", f"there is no folder {tmp_path / 'gone'}"),
        ("not-a-folder", f"{tmp_path / 'not-a-folder'} is not a folder"),
    ):
        for delete in ([], ["--delete"]):
            result = runner.invoke(
                app,
                ["admin", "orphan-files", *delete],
                env=env | {"LAGTRAIN_ARTIFACTS_URL": location},
            )
            assert result.exit_code == 1, (location, result.output)
            assert result.stdout == ""
            assert result.stderr == f"error: LAGTRAIN_ARTIFACTS_URL ({location}): {problem}\n"
    assert not (tmp_path / "artifcts").exists()  # looking made nothing


def test_a_remote_location_is_searched_as_before(api: Api) -> None:
    """An object store has no folders to be missing: an empty prefix lists no files."""
    env = {
        "LAGTRAIN_DATABASE_URL": api.settings.database_url,
        "LAGTRAIN_ARTIFACTS_URL": "memory:///lagtrain-nothing-here",
    }
    result = CliRunner().invoke(app, ["admin", "orphan-files"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("memory:///lagtrain-nothing-here: 0 files, 0 named by a row")
    assert result.stdout.strip().endswith("0 files, 0 B, that no row names, at least 24 h old")


def test_a_location_in_a_symlink_loop_is_an_error_not_a_traceback(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loop").symlink_to("loop")
    env = {"LAGTRAIN_DATABASE_URL": api.settings.database_url, "LAGTRAIN_ARTIFACTS_URL": "loop"}
    result = CliRunner().invoke(app, ["admin", "orphan-files"], env=env)
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr.startswith("error: LAGTRAIN_ARTIFACTS_URL (loop): cannot be read: ")


def test_a_location_with_a_tilde_is_searched_where_the_server_writes(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "~" is the home folder for the server's writes and for the search alike (it
    arrives unexpanded from a systemd Environment= line or an .env file): the server
    wrote to a folder named "~" in its working directory while fsspec searched home."""
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(home))
    assert artifact_url("~/art", "jobs/7/old.pt") == f"{home}/art/jobs/7/old.pt"
    orphan = _old_file(home / "art" / "jobs" / "7" / "old.pt", b"abc")
    _old_file(tmp_path / "~" / "art" / "jobs" / "8" / "literal.pt", b"abcd")  # not there
    env = {"LAGTRAIN_DATABASE_URL": api.settings.database_url, "LAGTRAIN_ARTIFACTS_URL": "~/art"}
    result = CliRunner().invoke(app, ["admin", "orphan-files"], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.startswith(f"{home / 'art'}: 1 file, 0 named by a row")
    assert f"{orphan}\t3 B\t" in result.stdout


def test_a_delete_younger_than_the_store_outage_bound_is_refused(api: Api) -> None:
    """A worker waits out a store outage (up to LAGTRAIN_STORE_OUTAGE_SECONDS) before
    its checkpoint's row names the file it wrote: a delete of files younger than that
    could remove a checkpoint about to be recorded. Listing them is harmless."""
    root = Path(api.settings.artifacts_url)
    orphan = _old_file(root / "jobs" / "3" / "round-00000005-a0.pt", b"w", age_s=1.5 * 3600)
    env = {
        "LAGTRAIN_DATABASE_URL": api.settings.database_url,
        "LAGTRAIN_ARTIFACTS_URL": str(root),
        "LAGTRAIN_STORE_OUTAGE_SECONDS": str(2 * 3600),
    }
    runner = CliRunner()
    refused = runner.invoke(
        app, ["admin", "orphan-files", "--delete", "--min-age-hours", "1"], env=env
    )
    assert refused.exit_code == 2, refused.output
    assert "--min-age-hours 1 is within the 2 h" in refused.output, refused.output
    assert "LAGTRAIN_STORE_OUTAGE_SECONDS" in refused.output and orphan.exists()
    listed = runner.invoke(app, ["admin", "orphan-files", "--min-age-hours", "1"], env=env)
    assert listed.exit_code == 0 and str(orphan) in listed.output, listed.output
    removed = runner.invoke(
        app,
        ["admin", "orphan-files", "--delete", "--min-age-hours", "1"],
        env={**env, "LAGTRAIN_STORE_OUTAGE_SECONDS": "300"},
    )
    assert removed.exit_code == 0 and not orphan.exists(), removed.output
