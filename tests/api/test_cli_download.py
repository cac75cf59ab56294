"""The CLI against a real server. `lagtrain download -o`: a directory receives the file under
the server's name; a path in a missing directory is one error line, before any
download. `lagtrain watch`: a failed job's error is printed as its text."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service import cli_watch
from service.app import create_app
from service.cli import app
from service.cli_common import TextConsole
from service.store.db import transaction
from tests.api.conftest import ADMIN_TOKEN, Api, serving

DATA = b"checkpoint-bytes" * 1000


def job_with_a_checkpoint(api: Api) -> int:
    """A job whose round-3 checkpoint is DATA."""
    job_id = api.submit(api.admin)
    api.checkpoint(api.claim(), 3, DATA)
    return job_id


def test_download_into_a_directory_and_to_a_missing_one(api: Api, tmp_path: Path) -> None:
    job_id = job_with_a_checkpoint(api)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN}
        runner = CliRunner()
        into_dir = runner.invoke(app, ["download", str(job_id), "-o", str(downloads)], env=env)
        assert into_dir.exit_code == 0, (into_dir.output, into_dir.exception)
        written = downloads / f"job-{job_id}-round-3.pt"
        assert [p.name for p in downloads.iterdir()] == [written.name]
        assert written.read_bytes() == DATA

        missing = tmp_path / "nonexistent" / "x.pt"
        refused = runner.invoke(app, ["download", str(job_id), "-o", str(missing)], env=env)
        assert refused.exit_code == 1 and isinstance(refused.exception, SystemExit)
        assert refused.stderr.splitlines() == [
            f"error: cannot write {missing}: there is no directory {missing.parent}"
        ]
        assert not missing.parent.exists()


def test_watch_prints_a_failed_jobs_error_as_text(api: Api) -> None:
    """An error is the job's text, not rich markup: brackets (a list, a path, a
    Python repr) are printed as they are, not eaten as styles."""
    from service.store.attempts import fail

    job_id = api.submit(api.admin)
    claimed = api.claim()
    error = "ValueError: bad shard [bold]3[/bold] in [/data/x]"
    with transaction(api.sessions) as session:
        fail(
            session=session,
            job_id=job_id,
            token=claimed.fencing_token,
            reason=error,
            retryable=False,
        )
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN}
        watched = CliRunner().invoke(app, ["watch", str(job_id)], env=env)
    assert watched.exit_code == 1, (watched.output, watched.exception)
    assert watched.stdout.splitlines() == [f"job {job_id} failed", error]


def test_watch_in_a_pipe_prints_whole_lines(api: Api) -> None:
    """Not a terminal (a pipe, a CI log): no bar redrawn in place and cut to 80
    columns, but a line per status and per evaluation or last round, the final
    status last."""
    job_id = api.submit(api.admin)
    claimed = api.claim()
    api.append(claimed, range(1, 6))  # rounds 0-4 of 5, train_loss 1/seq
    api.finish(claimed)
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN}
        watched = CliRunner().invoke(app, ["watch", str(job_id)], env=env)
    assert watched.exit_code == 0, (watched.output, watched.exception)
    # The terminal status last, as for a live job (the stream of a finished one
    # opens with it, before the rounds it replays).
    assert watched.stdout.splitlines() == [
        f"job {job_id} round 5/5  loss 0.2",
        f"job {job_id} succeeded",
    ]


def test_metrics_csv_has_the_uploaded_ranks(api: Api) -> None:
    """The CSV form carries what the JSON form does: `uploaded`, the ranks whose
    gradients reached the coordinator each round."""
    job_id = api.submit(api.admin)
    claimed = api.claim()
    api.append(claimed, range(1, 4))  # uploaded=[0] each round
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN}
        printed = CliRunner().invoke(app, ["metrics", str(job_id), "--csv"], env=env)
    assert printed.exit_code == 0, (printed.output, printed.exception)
    rows = list(csv.DictReader(io.StringIO(printed.stdout)))
    assert [(r["seq"], r["uploaded"], r["train_loss"]) for r in rows] == [
        ("1", "0", "1.0"),
        ("2", "0", "0.5"),
        ("3", "0", str(1 / 3)),
    ]


def test_watch_in_an_80_column_terminal_shows_the_round_and_figures_whole(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live bar: a finished job's first frame is where it ended (it drew "round
    0/5" first), and the figures have their own line (sharing the bar's row, an
    80-column terminal cut them to "roun… loss 0…")."""
    job_id = api.submit(api.admin)
    claimed = api.claim()
    api.append(claimed, range(1, 6))
    api.finish(claimed)
    screen = io.StringIO()
    terminal = TextConsole(file=screen, force_terminal=True, width=80, markup=False)
    monkeypatch.setattr(cli_watch, "console", terminal)
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN}
        watched = CliRunner().invoke(app, ["watch", str(job_id)], env=env)
    assert watched.exit_code == 0, (watched.output, watched.exception)
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # colours, cursor
    assert "round 0/5" not in drawn
    last_frame = [line.rstrip() for line in drawn.splitlines() if line.strip()][-2:]
    assert last_frame[0].startswith(f"job {job_id} succeeded") and "round 5/5" in last_frame[0]
    assert last_frame[1] == "loss 0.2"
    assert all(len(line) <= 80 for line in drawn.splitlines())


def test_download_to_a_new_folder_and_after_the_checkpoints_were_deleted(
    api: Api, tmp_path: Path
) -> None:
    """`-o checkpoints/` (the README's form) makes the folder; a finished job whose
    checkpoints were deleted says so, not "no checkpoint yet"."""
    job_id = api.submit(api.admin)
    claimed = api.claim()
    api.checkpoint(claimed, 3, DATA)
    api.finish(claimed)
    folder = tmp_path / "checkpoints"
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN}
        runner = CliRunner()
        saved = runner.invoke(app, ["download", str(job_id), "-o", f"{folder}/"], env=env)
        assert saved.exit_code == 0, (saved.output, saved.exception)
        assert (folder / f"job-{job_id}-round-3.pt").read_bytes() == DATA

        deleted = runner.invoke(app, ["delete-checkpoints", str(job_id)], env=env)
        assert deleted.exit_code == 0, deleted.output
        none = runner.invoke(app, ["download", str(job_id), "-o", f"{folder}/"], env=env)
    assert none.exit_code == 1 and none.stderr.splitlines() == [
        f"error: job {job_id} has no checkpoint: it ended (succeeded) without one, or they were "
        "deleted"
    ]


def test_a_checkpoint_is_chosen_by_round_and_a_wrong_id_names_those_there_are(
    api: Api, tmp_path: Path
) -> None:
    """The checkpoint ids are the server's, which nothing else in the CLI shows: a
    wrong one is answered with the job's checkpoints (id and round), and --round picks
    by the number its file is named with."""
    job_id = api.submit(api.admin)
    claimed = api.claim()
    api.checkpoint(claimed, 9, DATA)
    api.checkpoint(claimed, 19, DATA + b"!")
    api.finish(claimed)
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN}
        runner = CliRunner()
        ids = {
            c["round"]: c["id"]
            for c in api.client.get(f"/v1/jobs/{job_id}/checkpoints", headers=api.admin).json()[
                "data"
            ]
        }
        wrong = runner.invoke(app, ["download", str(job_id), "--checkpoint", "999"], env=env)
        assert wrong.exit_code == 1
        assert wrong.stderr.splitlines() == [
            f"error: job {job_id} has no checkpoint 999; its checkpoints: "
            f"{ids[9]} (round 9), {ids[19]} (round 19)"
        ]
        out = tmp_path / "nine.pt"
        nine = runner.invoke(
            app, ["download", str(job_id), "--round", "9", "-o", str(out)], env=env
        )
        assert nine.exit_code == 0, nine.output
        assert out.read_bytes() == DATA
        both = runner.invoke(
            app, ["download", str(job_id), "--round", "9", "--checkpoint", "1"], env=env
        )
        assert both.exit_code == 2 and "not both" in both.stderr


def test_metrics_are_json_lines_and_a_422_is_one_line(api: Api, tmp_path: Path) -> None:
    """In a pipe: one JSON record per line however long (never wrapped at 80
    columns); a refused spec is one line naming each field."""
    job_id = api.submit(api.admin)
    claimed = api.claim()
    api.append(claimed, range(1, 4))
    spec = tmp_path / "bad.yaml"
    spec.write_text("task: {kind: adding}\nschedule: {rounds: -1, batch_size: -3}\n")
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": ADMIN_TOKEN}
        runner = CliRunner()
        printed = runner.invoke(app, ["metrics", str(job_id)], env=env)
        refused = runner.invoke(app, ["submit", str(spec)], env=env)
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]
    assert max(len(line) for line in lines) > 80
    assert refused.exit_code == 1 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith("error 422: schedule.rounds: "), line
    assert "; schedule.batch_size: " in line, line


def test_watchfigures_show_the_bytes_saved_beside_the_uploads() -> None:
    """A LAQ job uploads every round at a quarter of the bytes: the uploads alone say
    0 % saved. Records written before dense_equiv_bytes existed show no bytes figure."""
    from service.cli_figures import figures

    laq = {"uploads_total": 40.0, "dense_equiv_uploads": 40.0}
    assert figures({**laq, "bytes_up_total": 2500.0, "dense_equiv_bytes": 10000.0}) == (
        "uploads 40/40 (0 % saved)  bytes 75 % saved"
    )
    assert figures({**laq, "bytes_up_total": 2500.0}) == "uploads 40/40 (0 % saved)"


def test_watch_figures_write_a_tasks_baseline_after_its_headline() -> None:
    from service.cli_figures import figures

    record: dict[str, float | None] = {
        "train_loss": 2.5,
        "val_perplexity": 9.87654,
        "unigram_perplexity": 27.123,
    }
    assert figures(record) == "loss 2.5  val_perplexity 9.877 (unigram_perplexity 27.12)"
    # Records of other tasks, or of a job from before the baseline, write no baseline.
    assert figures({"val_perplexity": 9.87654}) == "val_perplexity 9.877"
    assert figures({"unigram_perplexity": 27.123}) == ""
    classifier: dict[str, float | None] = {"val_accuracy": 0.91234, "chance_accuracy": 0.1034}
    assert figures(classifier) == "val_accuracy 0.9123 (chance_accuracy 0.1034)"
    regression: dict[str, float | None] = {"val_mse": 0.0042, "chance_mse": 0.1671}
    assert figures(regression) == "val_mse 0.0042 (chance_mse 0.1671)"
