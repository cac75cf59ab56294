"""Submit over HTTP, run on a real local Ray through real dispatcher processes, and
watch the results come back through the API (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray
import torch
import yaml

from service.client import TERMINAL_STATUSES, Client
from tests.conftest import on_one_database
from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.ray


def small_job(rounds: int, **schedule: Any) -> dict[str, Any]:
    return {
        "name": "e2e-gru-digits",
        "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
        "model": {"cell": "gru", "hidden_size": 16},
        "optimizer": {"name": "adam", "lr": 0.01},
        "aggregation": {"strategy": "lasg_wk2"},
        "distributed": {"workers": 2, "split": "non_iid", "cpus_per_worker": 0.5},
        "schedule": {"rounds": rounds, "batch_size": 16, "eval_every": 10, **schedule},
    }


def status_of(client: Client, job_id: int) -> str:
    return str(client.job(job_id)["status"])


def test_job_runs_end_to_end(service_stack: Stack, tmp_path: Path) -> None:
    service_stack.start_server()
    service_stack.start_worker()
    with service_stack.admin() as client:
        job = client.submit(small_job(30, checkpoint_every=10))
        job_id = int(job["id"])
        assert job["status"] == "queued"
        wait_until(lambda: status_of(client, job_id) != "queued", timeout=90, what="running")

        seqs: list[int] = []
        statuses: list[str] = []
        for event, data in client.events(job_id):
            if event == "metrics":
                seqs.append(int(data["seq"]))
            elif event == "status":
                statuses.append(data["status"])
        assert statuses[-1] == "succeeded", service_stack.logs()
        assert "running" in statuses
        assert seqs == sorted(set(seqs)) and seqs, "metric seqs must strictly increase"
        assert seqs[-1] == 30

        done = client.job(job_id)
        assert done["status"] == "succeeded"
        summary = done["summary"]
        assert summary["rounds"] == 30
        assert 0 < summary["uploads_total"] <= summary["dense_equiv_uploads"] == 60
        # lasg_wk2 uploads full-precision gradients: it saves as many bytes as uploads.
        assert summary["dense_equiv_bytes"] == summary["final_metrics"]["dense_equiv_bytes"] > 0
        assert summary["bytes_saved_fraction"] == summary["uploads_saved_fraction"]
        assert "val_accuracy" in summary["final_metrics"]
        stored = client.metrics(job_id)
        assert [m["seq"] for m in stored] == list(range(1, 31))
        # Each record names the replicas whose upload its round used (DESIGN §11).
        for record in stored:
            assert record["uploaded"] == sorted(set(record["uploaded"]))
            assert set(record["uploaded"]) <= {0, 1}
            assert len(record["uploaded"]) == record["values"]["uploads"]
        assert stored[0]["uploaded"] == [0, 1]  # everyone uploads in round 0

        checkpoints = client.checkpoints(job_id)
        assert [c["round"] for c in checkpoints] == [9, 19, 29]
        path = client.download_checkpoint(job_id, checkpoints[-1]["id"], tmp_path / "c.pt")
        state = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
        assert state["next_round"] == 30 and state["model"]
    check_cli(service_stack, job_id, tmp_path)


def check_cli(stack: Stack, job_id: int, tmp_path: Path) -> None:
    """The client commands against the same live server, as a user types them."""
    env = {**stack.env, "LAGTRAIN_URL": stack.url, "LAGTRAIN_TOKEN": stack.admin_token}
    env["COLUMNS"] = "200"  # rich wraps to the terminal width
    lagtrain = str(Path(sys.executable).parent / "lagtrain")

    def cli(*args: str) -> str:
        done = subprocess.run(
            [lagtrain, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    rows = list(csv.DictReader(io.StringIO(cli("metrics", str(job_id), "--csv"))))
    assert [int(r["seq"]) for r in rows] == list(range(1, 31))
    assert float(rows[-1]["uploads_total"]) > 0
    assert "succeeded" in cli("jobs")
    assert "succeeded" in cli("watch", str(job_id))
    cli("download", str(job_id), "--out", "cli.pt")
    assert torch.load(tmp_path / "cli.pt", weights_only=True)["next_round"] == 30
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(small_job(1_000_000)))
    queued = int(cli("submit", str(spec_file)).split()[1])
    assert "cancel" in cli("cancel", str(queued))


@on_one_database("postgresql")
def test_cancel_stops_the_gang_and_frees_resources(service_stack: Stack) -> None:
    service_stack.start_server()
    service_stack.start_worker()
    # Ray leaves cluster_resources and available_resources unannotated.
    total = ray.cluster_resources()["CPU"]  # type: ignore[no-untyped-call]
    with service_stack.admin() as client:
        job_id = int(client.submit(small_job(1_000_000, checkpoint_every=1000))["id"])
        wait_until(lambda: client.metrics(job_id), timeout=90, what="the first metrics")
        assert ray.available_resources().get("CPU", 0.0) <= total - 2  # type: ignore[no-untyped-call]
        client.cancel(job_id)
        # One 5 s deadline for both: the job shows cancelled and Ray has its CPUs back.
        wait_until(
            lambda: (
                status_of(client, job_id) == "cancelled"
                and ray.available_resources().get("CPU", 0.0) >= total  # type: ignore[no-untyped-call]
            ),
            timeout=5,
            what="cancelled and the gang's CPUs back in Ray within 5 s",
        )
        # Stopped early, the job keeps the summary of the rounds it ran (GET /v1/jobs/{id}).
        summary = client.job(job_id)["summary"]
        assert summary is not None, "a cancelled job that ran rounds keeps their summary"
        assert summary["rounds"] == 1_000_000 and 1 <= summary["rounds_completed"] < 1_000_000
        assert 0 < summary["uploads_total"] <= summary["dense_equiv_uploads"]
        assert summary["bytes_up_total"] > 0


@on_one_database("sqlite")
def test_killed_dispatcher_job_resumes_from_checkpoint(service_stack: Stack) -> None:
    service_stack.start_server()
    first = service_stack.start_worker()
    rounds = 80
    with service_stack.admin() as client:
        job_id = int(client.submit(small_job(rounds, checkpoint_every=10))["id"])
        wait_until(
            lambda: any(c["round"] >= 19 for c in client.checkpoints(job_id)),
            timeout=120,
            what="a checkpoint at round 19",
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        killed_at = len(client.metrics(job_id))
        assert killed_at < rounds, "the job ended before the kill; make it longer"
        service_stack.start_worker()
        wait_until(
            lambda: status_of(client, job_id) in TERMINAL_STATUSES,
            timeout=180,
            what="the job to finish on the second dispatcher",
        )
        job = client.job(job_id)
        assert job["status"] == "succeeded", (job["error"], service_stack.logs())
        assert job["attempt"] == 2
        metrics = client.metrics(job_id)
        assert [m["seq"] for m in metrics] == list(range(1, rounds + 1))
        assert {m["attempt"] for m in metrics} == {1, 2}
        assert min(m["seq"] for m in metrics if m["attempt"] == 2) > 20


@on_one_database("postgresql")
def test_two_dispatchers_run_every_job_exactly_once(service_stack: Stack) -> None:
    # Each dispatcher keeps warm actors (workers.warm_pool) for the gangs it runs at
    # once: most of the 40 actors of 20 gangs reuse a process instead of starting one
    # that imports torch. The claims under test are the same with or without them.
    service_stack.env["LAGTRAIN_WARM_POOL_SIZE"] = "4"
    service_stack.start_server()
    service_stack.start_worker()
    service_stack.start_worker()
    spec = {
        "task": {"kind": "lag_paper_linreg"},
        "aggregation": {"strategy": "lag_wk"},
        # One replica keeps each gang cheap to start (every actor imports torch).
        "distributed": {"workers": 1, "cpus_per_worker": 0.5},
        "schedule": {"rounds": 5, "checkpoint_every": 5},
    }
    with service_stack.admin() as client:
        ids = [int(client.submit({**spec, "name": f"j{i}"})["id"]) for i in range(20)]
        wait_until(
            lambda: all(status_of(client, i) in TERMINAL_STATUSES for i in ids),
            timeout=300,
            what="20 jobs to finish",
        )
        for job_id in ids:
            job = client.job(job_id)
            assert (job["status"], job["attempt"]) == ("succeeded", 1), job
            assert [m["seq"] for m in client.metrics(job_id)] == [1, 2, 3, 4, 5]
