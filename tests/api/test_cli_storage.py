"""The storage commands against a real server: upload, datasets, usage,
delete-dataset (refused with the server's reason while a job uses the upload) and
delete-checkpoints."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner, Result

from service.app import create_app
from service.cli import app
from service.cli_sizes import size_and_bytes
from service.client import Client
from service.store.db import transaction
from service.store.models import Dataset
from tests.api.conftest import Api, serving
from tests.api.test_storage_release import TEXT, _char_lm


def storage_used(usage: Result) -> str:
    """The `used` cell of the usage table's storage row."""
    row = next(line for line in usage.stdout.splitlines() if "storage" in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[0] == "storage", cells
    return cells[1]


def test_a_user_uploads_sees_usage_and_frees_storage(api: Api, tmp_path: Path) -> None:
    _uid, alice = api.create_user("alice")
    token = alice["Authorization"].removeprefix("Bearer ")
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(TEXT)
    with serving(create_app(api.settings)) as url:

        def lagtrain(*args: str) -> Result:
            env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token, "COLUMNS": "200"}
            return CliRunner().invoke(app, list(args), env=env)

        uploaded = lagtrain("upload", str(corpus))
        assert uploaded.exit_code == 0, (uploaded.output, uploaded.exception)
        [dataset] = api.client.get("/v1/datasets", headers=alice).json()["data"]
        assert uploaded.stdout.strip() == (
            f"dataset {dataset['id']}: upload:{dataset['id']}, text, {size_and_bytes(len(TEXT))}"
        )
        listed = lagtrain("datasets")
        assert "corpus.txt" in listed.stdout and f"upload:{dataset['id']}" in listed.stdout
        assert storage_used(lagtrain("usage")).endswith(f" ({len(TEXT):,} bytes)")

        job_id = api.submit(alice, _char_lm(dataset["ref"]))
        refused = lagtrain("delete-dataset", str(dataset["id"]))
        assert refused.exit_code == 1 and refused.stdout == ""
        assert refused.stderr.startswith("error 409: ") and f"job {job_id}" in refused.stderr

        api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
        # Several at once, as delete-job takes them: one refused stops none of the rest.
        deleted = lagtrain("delete-dataset", "999999", str(dataset["id"]))
        assert deleted.stdout.strip() == f"dataset {dataset['id']} deleted", deleted.output
        assert deleted.exit_code == 1 and deleted.stderr.startswith("error 404: "), deleted.stderr
        freed = lagtrain("delete-checkpoints", str(job_id))  # a cancelled job has none
        assert freed.stdout.strip() == f"checkpoints of job {job_id} deleted", freed.output
        assert storage_used(lagtrain("usage")) == "0 B"


def test_the_client_reads_every_page_of_a_list(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    token = alice["Authorization"].removeprefix("Bearer ")
    jobs = {api.submit(alice) for _ in range(3)}
    uploads = {
        api.client.post("/v1/datasets", files={"file": (f"t{i}.txt", TEXT)}, headers=alice).json()[
            "id"
        ]
        for i in range(3)
    }
    with serving(create_app(api.settings)) as url, Client(url, token) as client:
        assert {j["id"] for j in client.jobs(limit=2)} == jobs
        assert {j["id"] for j in client.jobs(status="queued", limit=1)} == jobs
        assert {d["id"] for d in client.datasets(limit=2)} == uploads
        # The newest `most` (and one more, to say there are more): no page past them.
        newest = sorted(jobs, reverse=True)
        assert [j["id"] for j in client.jobs(limit=500, most=1)] == newest[:2]
        assert [j["id"] for j in client.jobs(limit=1, most=5)] == newest

    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token}
        runner = CliRunner()
        cut = runner.invoke(app, ["jobs", "--limit", "2"], env=env)
        whole = runner.invoke(app, ["jobs", "--limit", "0"], env=env)
    assert cut.exit_code == 0 and whole.exit_code == 0, (cut.output, whole.output)
    assert cut.stderr.strip() == "the 2 newest shown; --limit 0 lists all"
    rows = [line.split()[1] for line in cut.stdout.splitlines() if line.split()[1:2]]
    assert [int(r) for r in rows if r.isdigit()] == newest[:2]
    assert whole.stderr == "" and all(str(j) in whole.stdout for j in jobs)


def table_cells(listing: Result) -> tuple[list[str], list[list[str]]]:
    """The header and the body rows' cells of a rich table printed to a pipe (rich
    draws the header's column lines heavy, ┃, and the body's light, │)."""
    rows = [
        [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        for line in listing.stdout.splitlines()
        if line.startswith(("│", "┃"))
    ]
    return rows[0], rows[1:]


def test_datasets_shows_what_each_upload_holds(api: Api, tmp_path: Path) -> None:
    """The shape summary taken at upload, in a `contents` column; an upload stored
    before summaries were kept shows an empty cell, not an error."""
    _uid, alice = api.create_user("alice")
    token = alice["Authorization"].removeprefix("Bearer ")
    files = {
        "corpus.txt": TEXT,
        "digits.csv": b"label,x1,x2\n0,0.5,1\n9,-2,3e-2\n",
        "one.csv": b"y,x\n0.5,1\n",  # a header first: 0.5 is no label
        "old.txt": b"older\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token}
        for name in files:
            uploaded = CliRunner().invoke(app, ["upload", str(tmp_path / name)], env=env)
            assert uploaded.exit_code == 0, uploaded.output
        with transaction(api.sessions) as session:  # as migration 0002 left older uploads
            old = session.scalars(select(Dataset).where(Dataset.filename == "old.txt")).one()
            old.shape = None
        listed = CliRunner().invoke(app, ["datasets"], env=env)
    assert listed.exit_code == 0, (listed.output, listed.exception)
    header, rows = table_cells(listed)
    assert header == ["id", "ref", "owner", "file", "format", "size", "contents", "uploaded (UTC)"]
    contents = {row[3]: row[6] for row in rows}
    distinct = len(set(TEXT.decode()))
    assert contents == {
        "corpus.txt": f"{len(TEXT):,} chars, {distinct} distinct",
        "digits.csv": "2 rows, 3 columns, 10 classes",
        "one.csv": "1 row, 2 columns, labels not integers",
        "old.txt": "",
    }
