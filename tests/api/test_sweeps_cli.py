"""The sweep commands against a real server: `lagtrain sweeps` (a user who did not
keep a sweep's id finds it, newest first, like `lagtrain jobs`) and `sweep-watch` in a
pipe (a line per change, as it happens)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

from rich.console import Console
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app
from service.cli_sweeps import sweep_table
from tests.api.conftest import SMALL_SWEEP, Api, serving
from workers.sweeps.controller import SweepController


def test_sweeps_lists_the_users_sweeps_newest_first(api: Api) -> None:
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    ids = [
        api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"] for _ in "abc"
    ]
    bobs = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=bob).json()["id"]
    api.client.post(f"/v1/sweeps/{ids[0]}/cancel", headers=alice)
    token = alice["Authorization"].removeprefix("Bearer ")
    with serving(create_app(api.settings)) as url:
        env = {"LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token, "COLUMNS": "200"}
        runner = CliRunner()
        cut = runner.invoke(app, ["sweeps", "--limit", "2"], env=env)
        whole = runner.invoke(app, ["sweeps", "--limit", "0"], env=env)
        cancelled = runner.invoke(app, ["sweeps", "--status", "cancelled"], env=env)
    for result in (cut, whole, cancelled):
        assert result.exit_code == 0, (result.output, result.exception)

    def rows(text: str) -> list[list[str]]:
        cells = ([c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines())
        return [row for row in cells if row and row[0].isdigit()]

    assert [int(r[0]) for r in rows(cut.stdout)] == ids[:0:-1]
    assert cut.stderr.strip() == "the 2 newest shown; --limit 0 lists all"
    listed = rows(whole.stdout)
    assert [int(r[0]) for r in listed] == ids[::-1], "bob's sweep is not alice's"
    assert str(bobs) not in {r[0] for r in listed} and whole.stderr == ""
    assert listed[0][1:5] == ["small-sweep", "alice", "queued", f"0/{SMALL_SWEEP['trials']}"]
    assert [(int(r[0]), r[3]) for r in rows(cancelled.stdout)] == [(ids[0], "cancelled")]


def test_sweep_watch_in_a_pipe_prints_a_line_per_change_as_it_happens(api: Api) -> None:
    """A live table is drawn once, at the end, when the output is not a terminal: a
    sweep watched in a pipe or a CI log must still show its trials as they go."""
    _a, alice = api.create_user("alice")
    body = {**SMALL_SWEEP, "trials": 1, "parallel": 1}
    sweep_id = api.client.post("/v1/sweeps", json=body, headers=alice).json()["id"]
    controller = SweepController(api.settings, api.sessions)
    controller.poll()
    token = alice["Authorization"].removeprefix("Bearer ")
    with serving(create_app(api.settings)) as url:
        env = {**os.environ, "LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token, "COLUMNS": "200"}
        watcher = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "sweep-watch", str(sweep_id)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        stdout = watcher.stdout
        assert stdout is not None

        def pump() -> None:
            for x in stdout:
                lines.put(x)

        threading.Thread(target=pump, daemon=True).start()
        try:
            first = next_line(lines, "trial 0 queued")
            # Shown while the sweep still runs, with the trial's point.
            assert first.startswith("trial 0 queued (job ") and "optimizer.lr=" in first
            assert next_line(lines, "sweep ") == f"sweep {sweep_id} running"
            api.finish(api.claim())  # no val_mse in its summary: the trial fails
            controller.poll()
            failed = next_line(lines, "trial 0 failed")
            assert failed.endswith("the job's final metrics have no finite val_mse"), failed
            assert next_line(lines, "sweep ") == f"sweep {sweep_id} failed"
            assert watcher.wait(timeout=30) == 1
        finally:
            watcher.kill()


def next_line(lines: queue.Queue[str], prefix: str, within: float = 20.0) -> str:
    """The watcher's next output line that starts with `prefix` (others skipped)."""
    deadline = time.monotonic() + within
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line starting {prefix!r} within {within} s") from None
        if line.startswith(prefix):
            return line.rstrip("\n")


def test_the_sweep_tables_caption_names_its_best_trials() -> None:
    def caption(best: list[int], objectives: int, status: str = "succeeded") -> str:
        metrics = [{"metric": f"m{i}", "direction": "minimize"} for i in range(objectives)]
        spec = {"parameters": {}, "objectives": metrics, "trials": 5, "sampler": "random"}
        sweep = {"id": 1, "name": None, "status": status, "spec": spec, "trials": [], "best": best}
        console = Console(width=200, record=True)
        console.print(sweep_table(sweep))
        return console.export_text().splitlines()[-1].strip()

    assert caption([3], 1) == "★ best: trial 3"  # was "trials 3"
    assert caption([4, 0], 2) == "★ Pareto front: trials 0, 4"
    assert caption([], 1, "running") == "★ best: (none yet)"
    assert caption([], 2) == "★ Pareto front: (none)"


def test_the_final_table_says_why_a_trial_failed_or_did_no_better_than_its_baseline() -> None:
    """A walkthrough's sweep marked a trial below chance as its best with no word, and
    the final table dropped a failed trial's reason (shown only in the lines before)."""
    objectives = [
        {"metric": "val_accuracy", "direction": "maximize"},
        {"metric": "bytes_up_total", "direction": "minimize"},
    ]
    spec = {"parameters": {"optimizer.lr": {}}, "objectives": objectives, "trials": 3}
    trial = {"params": {"optimizer.lr": 0.01}, "error": None, "status": "succeeded"}
    sweep = {
        "id": 1,
        "name": "s",
        "status": "succeeded",
        "spec": {**spec, "sampler": "random"},
        "best": [0],
        "trials": [
            {**trial, "number": 0, "job_id": 10, "values": [0.1058, 293_400.0]},
            {**trial, "number": 1, "job_id": 11, "values": [0.93, 293_400.0]},
            {
                **trial,
                "number": 2,
                "job_id": None,
                "values": None,
                "status": "failed",
                "error": "invalid point: task.seq_len: [12] does not divide 64",
            },
        ],
    }
    jobs = {
        10: {"summary": {"final_metrics": {"val_accuracy": 0.1058, "chance_accuracy": 0.1226}}},
        11: {"summary": {"final_metrics": {"val_accuracy": 0.93, "chance_accuracy": 0.1226}}},
    }
    console = Console(width=250, record=True)
    console.print(sweep_table(sweep, jobs))
    rows = {
        cells[0]: cells
        for line in console.export_text().splitlines()
        if (cells := [c.strip() for c in line.split("│")[1:-1]]) and cells[0].isdigit()
    }
    assert rows["0"][-1] == "val_accuracy no better than its chance_accuracy (0.1226)"
    assert rows["1"][-1] == ""
    # Markup-like text stays as written.
    assert rows["2"][-1] == "invalid point: task.seq_len: [12] does not divide 64"
    assert rows["0"][5] == "287 KiB"  # bytes in binary units, as everywhere
