"""What the sweep end-to-end tests check, shared by tests/e2e/test_sweeps_e2e.py
(server and dispatcher, PostgreSQL) and tests/e2e/test_embedded.py (`lagtrain server
--embedded`, SQLite), so each kind of stack starts its Ray only once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text

from service.client import TERMINAL_STATUSES, Client

LAGTRAIN = str(Path(sys.executable).parent / "lagtrain")


def linreg_sweep(rounds: int, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "e2e-sweep",
        "base": {
            "task": {"kind": "lag_paper_linreg"},
            "aggregation": {"strategy": "lag_wk"},
            # One replica keeps each gang cheap to start (every actor imports torch).
            "distributed": {"workers": 1, "cpus_per_worker": 0.5},
            "schedule": {"rounds": rounds, "eval_every": 10, "checkpoint_every": 1000},
        },
        "parameters": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}},
        "objectives": [{"metric": "optimality_gap", "direction": "minimize"}],
        "trials": 4,
        "parallel": 2,
        "sampler": "gp",
        "startup_trials": 2,
        "seed": 0,
    }
    spec.update(overrides)
    return spec


def max_concurrent_jobs(db_url: str, sweep_id: int) -> int:
    """The most trial jobs of the sweep that were queued, running or cancelling at
    the same instant, from the jobs' status history (job_events)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT e.job_id, e.at, e.to_status FROM job_events e JOIN jobs j"
                    " ON j.id = e.job_id WHERE j.sweep_id = :s ORDER BY e.at, e.id"
                ),
                {"s": sweep_id},
            ).all()
    finally:
        engine.dispose()
    live: set[int] = set()
    most = 0
    for job_id, _at, to_status in rows:
        if to_status in TERMINAL_STATUSES:
            live.discard(job_id)
        else:
            live.add(job_id)
        most = max(most, len(live))
    return most


def check_a_sweep_runs_to_completion(url: str, token: str, db_url: str, tmp_path: Path) -> None:
    """A GP sweep submitted and watched with the CLI runs to completion, never more
    than `parallel` trial jobs at once."""
    spec_file = tmp_path / "sweep.yaml"
    spec_file.write_text(yaml.safe_dump(linreg_sweep(30)))
    env = {**os.environ, "LAGTRAIN_URL": url, "LAGTRAIN_TOKEN": token, "COLUMNS": "200"}
    watched = subprocess.run(
        [LAGTRAIN, "sweep", str(spec_file), "--watch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert watched.returncode == 0, (watched.stdout, watched.stderr)
    assert "succeeded" in watched.stdout and "★" in watched.stdout
    sweep_id = int(watched.stdout.split()[1])
    with Client(url, token) as client:
        sweep = client.sweep(sweep_id)
        assert sweep["status"] == "succeeded", sweep
        trials = sweep["trials"]
        assert [t["number"] for t in trials] == [0, 1, 2, 3]
        assert all(t["status"] == "succeeded" and len(t["values"]) == 1 for t in trials)
        best = min(trials, key=lambda t: t["values"][0])
        assert sweep["best"] == [best["number"]]
        for trial in trials:
            job = client.job(trial["job_id"])
            assert job["sweep_id"] == sweep_id
            assert job["spec"]["optimizer"]["lr"] == trial["params"]["optimizer.lr"]
            assert job["summary"]["final_metrics"]["optimality_gap"] == trial["values"][0]
    assert max_concurrent_jobs(db_url, sweep_id) == 2
