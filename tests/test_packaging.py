"""The wheel a plain `pip install` makes holds everything the commands need: the
migrations (without them `lagtrain db upgrade`, `server` and `worker` stop at the
schema check) and the dashboard's files. Built from this checkout, unpacked, and run
from outside the repository, where nothing but the wheel's files can be found."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from service.store.migrate import head_revisions

REPO = Path(__file__).resolve().parents[1]


def _source_copy(target: Path) -> Path:
    """The checkout's files (tracked, and new ones git does not ignore), without the
    build/ and egg-info a local build leaves behind, which setuptools would reuse."""
    listed = (
        subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.timeout(300)
def test_the_wheel_migrates_a_database_and_serves_the_dashboards_files(tmp_path: Path) -> None:
    source = _source_copy(tmp_path / "source")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("lagtrain-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "migrations/env.py",
        "migrations/script.py.mako",
        "service/ui/static/index.html",
        "service/ui/static/views/data.js",
        "service/py.typed",
    ):
        assert needed in names, needed
    assert sum(n.startswith("migrations/versions/") for n in names) >= 6

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(unpacked),
        "LAGTRAIN_DATABASE_URL": f"sqlite:///{outside / 'lab.db'}",
    }
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import service, sys; from service.cli import app; "
            "assert service.__file__.startswith(sys.argv[1]), service.__file__; "
            "app(['db', 'upgrade'])",
            str(unpacked),
        ],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    head = ", ".join(head_revisions())
    assert run.stdout.strip() == f"database at revision {head} (was empty)"
