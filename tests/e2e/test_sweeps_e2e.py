"""Sweeps on the real stack (SQLite and PostgreSQL): `lagtrain server --embedded`
runs a GP sweep to completion, submitted and watched with the CLI, never more than
`parallel` trial jobs at once; a killed server and dispatcher, restarted, continue a
sweep without duplicate trials; cancelling a sweep stops every trial job."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
import yaml
from sqlalchemy import create_engine, text

from service.client import TERMINAL_STATUSES, Client
from tests.e2e.conftest import STARTUP_DEADLINE_S, Stack, free_port, wait_until

pytestmark = pytest.mark.ray

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


@pytest.fixture
def embedded(db_url: str, clean_db: None, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`lagtrain server --embedded` (its own local Ray) over the session's database."""
    port = free_port()
    token = secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAGTRAIN_", "RAY_"))}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "LAGTRAIN_DATABASE_URL": db_url,
        "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": token,
        "LAGTRAIN_EMBEDDED_RAY_CPUS": "4",
        "LAGTRAIN_SWEEP_POLL_SECONDS": "0.2",
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [LAGTRAIN, "server", "--embedded", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=STARTUP_DEADLINE_S, what="the embedded server")
        yield url, token
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_a_sweep_runs_to_completion_on_the_embedded_stack(
    embedded: tuple[str, str], db_url: str, tmp_path: Path
) -> None:
    url, token = embedded
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


@pytest.fixture
def sweep_stack(service_stack: Stack) -> Stack:
    service_stack.env |= {
        "LAGTRAIN_SWEEP_POLL_SECONDS": "0.2",
        # A killed controller's step lease runs out soon, so the restart continues.
        "LAGTRAIN_SWEEP_STEP_LEASE_SECONDS": "3",
    }
    return service_stack


def test_a_restarted_server_and_dispatcher_continue_the_sweep_without_duplicates(
    sweep_stack: Stack, db_url: str
) -> None:
    sweep_stack.start_server()
    sweep_stack.start_worker()
    with sweep_stack.admin() as client:
        sweep_id = int(client.submit_sweep(linreg_sweep(400))["id"])

        def a_trial_done_and_one_mid_run() -> int | None:
            trials = client.sweep(sweep_id)["trials"]
            if not any(t["status"] == "succeeded" for t in trials):
                return None
            for trial in trials:
                if trial["status"] == "running":
                    job = client.job(trial["job_id"])
                    if 0 < job["progress"]["round"] < 200:
                        return int(job["id"])
            return None

        killed = wait_until(
            a_trial_done_and_one_mid_run, timeout=240, what="a finished and a half-run trial"
        )
        assert isinstance(killed, int)
    for proc in sweep_stack.procs:  # server and dispatcher die at once, no clean-up
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    sweep_stack.start_server()
    sweep_stack.start_worker()
    with sweep_stack.admin() as client:
        wait_until(
            lambda: client.sweep(sweep_id)["status"] in TERMINAL_STATUSES,
            timeout=400,
            what="the sweep to finish after the restart",
        )
        sweep = client.sweep(sweep_id)
        assert sweep["status"] == "succeeded", (sweep, sweep_stack.logs())
        trials = sweep["trials"]
        assert [t["number"] for t in trials] == [0, 1, 2, 3]
        assert all(t["status"] == "succeeded" for t in trials), trials
        job_ids = {t["job_id"] for t in trials}
        sweep_jobs = [j for j in client.jobs() if j["sweep_id"] == sweep_id]
        assert len(job_ids) == 4 == len(sweep_jobs)
        assert {j["id"] for j in sweep_jobs} == job_ids
        # The trial killed mid-run came back on its job's next attempt and finished.
        assert client.job(killed)["attempt"] == 2
    assert max_concurrent_jobs(db_url, sweep_id) <= 2


def test_cancelling_a_sweep_stops_every_trial_job(sweep_stack: Stack) -> None:
    sweep_stack.start_server()
    sweep_stack.start_worker()
    total = ray.cluster_resources()["CPU"]
    with sweep_stack.admin() as client:
        sweep_id = int(client.submit_sweep(linreg_sweep(10_000_000, trials=4))["id"])

        def both_running() -> bool:
            trials = client.sweep(sweep_id)["trials"]
            return len(trials) == 2 and all(t["status"] == "running" for t in trials)

        wait_until(both_running, timeout=180, what="two running trials")
        env = {**sweep_stack.env, "LAGTRAIN_URL": sweep_stack.url}
        env["LAGTRAIN_TOKEN"] = sweep_stack.admin_token
        done = subprocess.run(
            [LAGTRAIN, "sweep-cancel", str(sweep_id)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0 and "cancelling" in done.stdout, done
        wait_until(
            lambda: (
                client.sweep(sweep_id)["status"] == "cancelled"
                and ray.available_resources().get("CPU", 0.0) >= total
            ),
            timeout=30,
            what="the sweep cancelled and its gangs' CPUs back in Ray",
        )
        trials = client.sweep(sweep_id)["trials"]
        assert len(trials) == 2, "no trial after the cancel"
        for trial in trials:
            assert trial["status"] == "cancelled"
            assert client.job(trial["job_id"])["status"] == "cancelled"
