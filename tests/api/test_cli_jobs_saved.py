"""`lagtrain jobs` against a real server shows what each job saved against dense, as
the dashboard's jobs list does: uploads and bytes, from the summary the dispatcher
stores (built here by its own rule for one job), "" where there is nothing to show
(not ended; a summary from before dense_equiv_bytes existed has no bytes figure)."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from service.app import create_app
from service.cli import app
from service.cli_figures import percent
from service.store.attempts import finish
from service.store.db import transaction
from tests.api.conftest import Api, serving
from tests.api.test_cli_storage import table_cells
from tests.store.test_end_summary import ran
from workers.job_outcome import Progress, summary

# Uploads nearly every round, at 3/16 of the bytes (LAQ): only the bytes say it saved.
LAQ_LIKE = {
    "rounds": 5,
    "rounds_completed": 5,
    "uploads_total": 40.0,
    "dense_equiv_uploads": 40.0,
    "uploads_saved_fraction": 0.0,
    "bytes_up_total": 750.0,
    "dense_equiv_bytes": 4000.0,
    "bytes_saved_fraction": 0.8125,
}
# Stored before the summary had dense_equiv_bytes and bytes_saved_fraction.
OLDER = {"rounds": 5, "rounds_completed": 5, "uploads_saved_fraction": 0.5}


def test_jobs_lists_the_uploads_and_bytes_each_job_saved(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    token = alice["Authorization"].removeprefix("Bearer ")
    lag, laq, older, queued = (api.submit(alice) for _ in range(4))
    for job_id in (lag, laq, older):
        claimed = api.claim()
        assert claimed.job_id == job_id
        ended: dict[str, Any] | None
        if job_id == lag:
            ran(api.sessions, claimed, 5)  # 30 of 40 uploads, 3000 of 4000 bytes
            with transaction(api.sessions) as session:
                ended = summary(
                    session, job_id=lag, rounds=5, progress=Progress(), attempt=1, wall_s=1.0
                )
        else:
            ended = LAQ_LIKE if job_id == laq else OLDER
        with transaction(api.sessions) as session:
            finish(session=session, job_id=job_id, token=claimed.fencing_token, summary=ended)

    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token}
        listed = CliRunner().invoke(app, ["jobs"], env=env)
    assert listed.exit_code == 0, (listed.output, listed.exception)
    header, rows = table_cells(listed)
    assert header == [
        "id", "name", "owner", "status", "progress", "uploads saved", "bytes saved", "created (UTC)"
    ]  # fmt: skip
    saved = {int(row[0]): (row[3], row[5], row[6]) for row in rows}
    assert saved == {
        lag: ("succeeded", "25 %", "25 %"),
        # Rounded half up as the dashboard's toPrecision does (Python's own: 81.2).
        laq: ("succeeded", "0 %", "81.3 %"),
        older: ("succeeded", "50 %", ""),
        queued: ("queued", "", ""),
    }


def test_percent_writes_what_the_dashboard_writes() -> None:
    """dom.js percent: 3 significant figures, no trailing zeros, ties away from zero
    (tests/ui/test_page_text.py holds percent() to dom.js's own in the browser)."""
    shown = {
        0.0: "0 %",
        1.0: "100 %",
        0.9999: "100 %",
        0.918: "91.8 %",
        0.8125: "81.3 %",
        0.9000001: "90 %",
        1 / 3: "33.3 %",
        0.00015: "0.015 %",
        -0.05: "-5 %",
        None: "",
    }
    assert {fraction: percent(fraction) for fraction in shown} == shown
