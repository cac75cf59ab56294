"""Sweeps on the real stack: a GP sweep runs to completion (here on PostgreSQL through
`lagtrain server` and `lagtrain worker`; on SQLite through `lagtrain server --embedded`
in tests/e2e/test_embedded.py), submitted and watched with the CLI, never more than
`parallel` trial jobs at once; a killed server and dispatcher, restarted, continue a
sweep without duplicate trials (on SQLite); cancelling a sweep stops every trial job
(on PostgreSQL). The store's part of each runs on both in tests/sweeps and tests/api."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import ray

from service.client import TERMINAL_STATUSES
from tests.conftest import on_one_database
from tests.e2e.conftest import Stack, wait_until
from tests.e2e.sweep_checks import (
    LAGTRAIN,
    check_a_sweep_runs_to_completion,
    linreg_sweep,
    max_concurrent_jobs,
)

pytestmark = pytest.mark.ray


@pytest.fixture
def sweep_stack(service_stack: Stack) -> Stack:
    service_stack.env |= {
        "LAGTRAIN_SWEEP_POLL_SECONDS": "0.2",
        # A killed controller's step lease runs out soon, so the restart continues.
        "LAGTRAIN_SWEEP_STEP_LEASE_SECONDS": "3",
        # Two trials of one-replica gangs run at once: the later trials reuse their
        # actors (workers.warm_pool) instead of starting processes that import torch.
        "LAGTRAIN_WARM_POOL_SIZE": "4",
    }
    return service_stack


@on_one_database("postgresql")
def test_a_sweep_runs_to_completion(sweep_stack: Stack, db_url: str, tmp_path: Path) -> None:
    sweep_stack.start_server()
    sweep_stack.start_worker()
    check_a_sweep_runs_to_completion(sweep_stack.url, sweep_stack.admin_token, db_url, tmp_path)


@on_one_database("sqlite")
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


@on_one_database("postgresql")
def test_cancelling_a_sweep_stops_every_trial_job(sweep_stack: Stack) -> None:
    sweep_stack.start_server()
    sweep_stack.start_worker()
    # Ray leaves cluster_resources and available_resources unannotated.
    total = ray.cluster_resources()["CPU"]  # type: ignore[no-untyped-call]
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
                and ray.available_resources().get("CPU", 0.0) >= total  # type: ignore[no-untyped-call]
            ),
            timeout=30,
            what="the sweep cancelled and its gangs' CPUs back in Ray",
        )
        trials = client.sweep(sweep_id)["trials"]
        assert len(trials) == 2, "no trial after the cancel"
        for trial in trials:
            assert trial["status"] == "cancelled"
            assert client.job(trial["job_id"])["status"] == "cancelled"
