"""SIGTERM to `lagtrain worker` (issue 9, point 4), as an operator deploying would
send it: the worker exits 0 within its drain bound, its running job goes back to
the queue without using an attempt, and another worker finishes it from the
checkpoint the drain wrote (on SQLite and PostgreSQL)."""

from __future__ import annotations

import signal
import time

import pytest

from service.client import TERMINAL_STATUSES
from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.ray

ROUNDS = 400


def test_sigterm_drains_a_worker_and_its_job_continues_elsewhere(service_stack: Stack) -> None:
    service_stack.env["LAGTRAIN_DRAIN_SECONDS"] = "20"
    service_stack.start_server()
    worker = service_stack.start_worker()
    with service_stack.admin() as client:
        job_id = int(
            client.submit(
                {
                    "task": {"kind": "adding"},
                    "distributed": {"workers": 2, "cpus_per_worker": 0.5},
                    "schedule": {"rounds": ROUNDS, "checkpoint_every": 100},
                    "max_attempts": 1,
                }
            )["id"]
        )

        def training() -> bool:
            job = client.job(job_id)
            return job["status"] == "running" and job["progress"]["round"] >= 5

        wait_until(training, timeout=120, what="the job training")
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, service_stack.logs()
        print(f"worker exited {time.monotonic() - sent:.1f} s after SIGTERM")
        job = client.job(job_id)
        assert job["status"] == "queued", (job, service_stack.logs())
        assert job["max_attempts"] == 2, "the drained attempt is given back"
        checkpoints = client.checkpoints(job_id)
        assert checkpoints and max(c["round"] for c in checkpoints) + 1 == job["progress"]["round"]

        service_stack.start_worker()
        wait_until(
            lambda: client.job(job_id)["status"] in TERMINAL_STATUSES,
            timeout=300,
            what="the job to finish on the second worker",
        )
        job = client.job(job_id)
        assert (job["status"], job["attempt"]) == ("succeeded", 2), (job, service_stack.logs())
        seqs = [int(m["seq"]) for m in client.metrics(job_id)]
        assert seqs == list(range(1, ROUNDS + 1))
