"""Faults while jobs run (issue 9, point 6); figures go to LAGTRAIN_CHAOS_REPORT and
docs/reliability.md. Each scenario ends with harness.verify: every job succeeded,
gap- and duplicate-free series, resumes re-train at most checkpoint_every rounds."""

from __future__ import annotations

import functools
import os
import signal
import sqlite3
import time
from pathlib import Path

from tests.chaos.conftest import Store, worker_env
from tests.chaos.harness import (
    Processes,
    RayHead,
    all_terminal,
    job_spec,
    jobs,
    record,
    submit,
    verify,
    wait_http_ready,
)
from tests.e2e.conftest import free_port
from tests.polling import wait_until

CHECKPOINT_EVERY = 20
KILL_CYCLES = int(os.environ.get("LAGTRAIN_CHAOS_KILL_CYCLES", "20"))
# How long the SQLite "outage" (another process holding the write lock) lasts: the
# fault's length, not a synchronisation.
SQLITE_LOCK_SECONDS = 3.0


def _progressed(store: Store, job_ids: list[int], baseline: dict[int, int], rounds: int) -> bool:
    return any(
        j.status == "running" and j.progress_round >= baseline.get(j.id, 0) + rounds
        for j in jobs(store.sessions, job_ids)
    )


def test_kill_9_one_of_two_dispatchers_mid_run(store: Store, processes: Processes) -> None:
    rounds = 200
    spec = job_spec(rounds, CHECKPOINT_EVERY)
    processes.spawn("w0", "worker")
    processes.spawn("w1", "worker")
    job_ids = submit(store.sessions, 4, spec)
    kills = 0
    for _cycle in range(KILL_CYCLES):
        live = [j for j in jobs(store.sessions, job_ids) if j.status in {"queued", "running"}]
        if len(live) < 3:
            job_ids += submit(store.sessions, 2, spec)
        baseline = {j.id: j.progress_round for j in jobs(store.sessions, job_ids)}
        wait_until(
            functools.partial(_progressed, store, list(job_ids), baseline, 5),
            timeout=300,
            what="a job making progress",
        )
        running = [j for j in jobs(store.sessions, job_ids) if j.status == "running"]
        victim = next(
            (n for j in running if j.dispatcher_id and (n := processes.holder(j.dispatcher_id))),
            "w0",
        )
        processes.kill9(victim)
        kills += 1
        processes.spawn(victim, "worker")
    wait_until(lambda: all_terminal(store.sessions, job_ids), timeout=1200, what="all jobs")
    figures = verify(
        store.sessions,
        job_ids,
        rounds=rounds,
        checkpoint_every=CHECKPOINT_EVERY,
        logs=processes.text(),
    )
    record("kill -9 of one of two dispatchers", store.kind, {"kills": kills, **figures})


def test_database_restarts_with_jobs_in_flight(store: Store, processes: Processes) -> None:
    rounds = 300
    # Outages are meant to be shorter than the lease (the service's promise); the
    # suite's 10 s lease leaves little margin for a restart on a loaded machine.
    processes.env["LAGTRAIN_LEASE_SECONDS"] = "15"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes.spawn("server", "server", "--host", "127.0.0.1", "--port", str(port))
    wait_http_ready(url, timeout=120)
    processes.spawn("w0", "worker")
    processes.spawn("w1", "worker")
    job_ids = submit(store.sessions, 3, job_spec(rounds, CHECKPOINT_EVERY))
    answered: list[float] = []
    for _ in range(3):
        baseline = {j.id: j.progress_round for j in jobs(store.sessions, job_ids)}
        wait_until(
            lambda b=baseline: (
                _progressed(store, job_ids, b, 10)  # type: ignore[misc]
                or all_terminal(store.sessions, job_ids)
            ),
            timeout=300,
            what="jobs in flight",
        )
        if store.server is not None:
            restarted = time.monotonic()
            store.server.restart()
            wait_http_ready(url, timeout=60)
            answered.append(round(time.monotonic() - restarted, 2))
        else:
            assert store.path is not None
            holder = sqlite3.connect(store.path, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            time.sleep(SQLITE_LOCK_SECONDS)
            holder.execute("COMMIT")
            holder.close()
    wait_until(lambda: all_terminal(store.sessions, job_ids), timeout=900, what="all jobs")
    figures = verify(
        store.sessions,
        job_ids,
        rounds=rounds,
        checkpoint_every=CHECKPOINT_EVERY,
        logs=processes.text(),
    )
    assert figures["attempts"] == {"1": len(job_ids)}, (figures, processes.tail())
    record(
        "3 database restarts" if store.server else "3 SQLite write locks of 3 s",
        store.kind,
        {"api_answered_after_s": answered, **figures},
    )


def test_sigterm_drain_of_a_worker(store: Store, processes: Processes) -> None:
    rounds, every = 300, 100
    w0 = processes.spawn("w0", "worker")
    job_ids = submit(store.sessions, 2, job_spec(rounds, every))
    wait_until(
        lambda: all(
            j.status == "running" and j.progress_round >= 5 for j in jobs(store.sessions, job_ids)
        ),
        timeout=300,
        what="w0 running both jobs",
    )
    processes.spawn("w1", "worker")
    sent = time.monotonic()
    w0.send_signal(signal.SIGTERM)
    assert w0.wait(timeout=60) == 0, processes.tail()
    exited = round(time.monotonic() - sent, 2)
    wait_until(lambda: all_terminal(store.sessions, job_ids), timeout=900, what="all jobs")
    figures = verify(
        store.sessions, job_ids, rounds=rounds, checkpoint_every=every, logs=processes.text()
    )
    assert figures["attempts"] == {"1": len(job_ids)}, figures
    assert figures["retrained_max"] == 0, figures
    record("SIGTERM drain of a worker", store.kind, {"worker_exit_s": exited, **figures})


def test_ray_head_restart(store: Store, tmp_path: Path) -> None:
    rounds = 200
    head = RayHead(tmp_path)
    head.start()
    processes = Processes(worker_env(store, head.address, tmp_path), tmp_path)
    try:
        processes.spawn("w0", "worker")
        processes.spawn("w1", "worker")
        job_ids = submit(store.sessions, 3, job_spec(rounds, CHECKPOINT_EVERY))
        wait_until(
            lambda: all(
                j.status == "running" and j.progress_round >= CHECKPOINT_EVERY + 5
                for j in jobs(store.sessions, job_ids)
            ),
            timeout=300,
            what="jobs past their first checkpoint",
        )
        head.kill()
        head.start()
        restarts = 0

        def supervised() -> bool:
            # What systemd's Restart=always does for a worker that Ray aborted.
            nonlocal restarts
            for name in ("w0", "w1"):
                if processes.procs[name].poll() is not None:
                    processes.spawn(name, "worker")
                    restarts += 1
            return all_terminal(store.sessions, job_ids)

        wait_until(supervised, timeout=900, what="all jobs after the Ray head restart")
        figures = verify(
            store.sessions,
            job_ids,
            rounds=rounds,
            checkpoint_every=CHECKPOINT_EVERY,
            logs=processes.text(),
        )
        record("Ray head restart", store.kind, {"worker_restarts": restarts, **figures})
    finally:
        processes.stop_all()
        head.destroy()
