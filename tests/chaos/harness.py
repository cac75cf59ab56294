"""The reliability suite's harness: real `lagtrain worker` (and `lagtrain server`)
processes over a store (a SQLite file or a private PostgreSQL), jobs submitted
through the store, faults injected from outside (kill -9, SIGTERM, a database
restart or lock), and the checks every scenario ends with: every job succeeded, its
metric series has no gap and no duplicate, and how many attempts and re-trained
rounds the faults cost (read from the store and the workers' logs)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.resolve import resolve
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import TERMINAL, Job, JobAttempt, Metric
from service.store.users import create_user
from tests.polling import wait_until

RESUME_LINE = re.compile(r"job (\d+): attempt (\d+) resumes after (\d+) rounds?")
REPORT = Path(os.environ.get("LAGTRAIN_CHAOS_REPORT", "chaos-report.jsonl"))


def job_spec(rounds: int, checkpoint_every: int) -> dict[str, Any]:
    return {
        "task": {"kind": "adding"},
        "distributed": {"workers": 2, "cpus_per_worker": 0.5},
        "schedule": {"rounds": rounds, "checkpoint_every": checkpoint_every},
        "max_attempts": 20,
    }


@dataclass
class Processes:
    """`lagtrain` subprocesses of one scenario, each in its own process group."""

    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)
    current_log: dict[str, Path] = field(default_factory=dict)

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}-{len(self.logs)}.log"
        self.logs.append(log_path)
        self.current_log[name] = log_path
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "lagtrain"), *args],
            env=self.env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def holder(self, dispatcher_id: str) -> str | None:
        """The name of the live process whose dispatcher has this id."""
        for name, path in self.current_log.items():
            alive = self.procs[name].poll() is None
            if (
                alive
                and path.exists()
                and f"dispatcher {dispatcher_id} started" in path.read_text(errors="replace")
            ):
                return name
        return None

    def text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in self.logs
            if p.exists()
        )

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_http_ready(url: str, timeout: float) -> float:
    """Seconds until GET url/readyz answers 200."""
    start = time.monotonic()

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=timeout, what=f"{url}/readyz")
    return time.monotonic() - start


def submit(sessions: sessionmaker[Session], count: int, spec: dict[str, Any]) -> list[int]:
    resolved = resolve(spec)
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name=f"chaos{time.monotonic_ns()}", role="user")
        return [
            enqueue(session=session, owner_id=user.id, spec=resolved)[0].id for _ in range(count)
        ]


def jobs(sessions: sessionmaker[Session], job_ids: list[int]) -> list[Job]:
    with sessions() as session:
        return [j for i in job_ids if (j := session.get(Job, i)) is not None]


def all_terminal(sessions: sessionmaker[Session], job_ids: list[int]) -> bool:
    terminal = {s.value for s in TERMINAL}
    return all(j.status in terminal for j in jobs(sessions, job_ids))


def verify(
    sessions: sessionmaker[Session],
    job_ids: list[int],
    *,
    rounds: int,
    checkpoint_every: int,
    logs: str,
) -> dict[str, Any]:
    """The end-of-scenario checks; returns the figures for the report."""
    resumes = {
        (int(j), int(a)): int(r) for j, a, r in RESUME_LINE.findall(logs)
    }  # (job, attempt) -> next round
    report: dict[str, Any] = {"jobs": len(job_ids), "statuses": {}, "attempts": {}, "retrained": []}
    with sessions() as session:
        for job_id in job_ids:
            job = session.get(Job, job_id)
            assert job is not None
            report["statuses"][job.status] = report["statuses"].get(job.status, 0) + 1
            assert job.status == "succeeded", f"job {job_id} is {job.status}: {job.error}"
            metrics = session.query(Metric).filter_by(job_id=job_id).order_by(Metric.seq).all()
            seqs = [m.seq for m in metrics]
            assert seqs == list(range(1, rounds + 1)), f"job {job_id}: series has gaps/duplicates"
            outcomes = [
                a.outcome
                for a in session.query(JobAttempt)
                .filter_by(job_id=job_id)
                .order_by(JobAttempt.number)
            ]
            used = sum(1 for o in outcomes if o != "released")
            report["attempts"][str(used)] = report["attempts"].get(str(used), 0) + 1
            for attempt in range(2, job.attempt + 1):
                stored_before = max((m.seq for m in metrics if m.attempt < attempt), default=0)
                resumed_at = resumes.get((job_id, attempt), 0)
                retrained = max(0, stored_before - resumed_at)
                report["retrained"].append(retrained)
                assert retrained <= checkpoint_every, (
                    f"job {job_id} attempt {attempt} re-trained {retrained} rounds"
                )
    retrained = report["retrained"]
    report["resumes"] = len(retrained)
    report["retrained_max"] = max(retrained, default=0)
    report["retrained_total"] = sum(retrained)
    del report["retrained"]
    return report


def record(scenario: str, db_kind: str, figures: dict[str, Any]) -> None:
    line = {"scenario": scenario, "db": db_kind, **figures}
    print(json.dumps(line))
    with REPORT.open("a") as fh:
        fh.write(json.dumps(line) + "\n")


class RayHead:
    """A private Ray head (`ray start --head --block`) in its own process group and
    temp dir, so that it never registers itself in /tmp/ray/ray_current_cluster."""

    def __init__(self, log_dir: Path, num_cpus: int = 6) -> None:
        import socket
        import tempfile

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.temp_dir = tempfile.mkdtemp(prefix="lgt-ray")
        self.log_dir = log_dir
        self.num_cpus = num_cpus
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log_path = self.log_dir / f"ray-head-{self.starts}.log"
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "ray"),
                "start",
                "--head",
                "--block",
                f"--port={self.port}",
                f"--num-cpus={self.num_cpus}",
                "--include-dashboard=false",
                "--node-ip-address=127.0.0.1",
                f"--temp-dir={self.temp_dir}",
            ],
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "RAY_AUTH_MODE": "token"},
        )
        wait_until(
            lambda: "Ray runtime started" in log_path.read_text(errors="replace"),
            timeout=120,
            what="the Ray head",
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def destroy(self) -> None:
        import shutil

        self.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
