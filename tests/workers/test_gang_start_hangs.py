"""A gang start that hangs after placement fails within its bound (the dispatcher's
gang_ready_seconds) with a message naming the step, instead of leaving the job
"running" forever: its lease is renewed and the stall watch is not armed yet. Real
local Ray; the hangs are real too (a checkpoint that is a FIFO nobody writes, warm
actors stopped with SIGSTOP)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import ray

from service.schemas.resolve import resolve
from tests.polling import wait_until
from workers.ray_job import RayJob
from workers.resume import ResumeFailed
from workers.warm_pool import WarmPool

pytestmark = pytest.mark.ray

SMALL_GANG = {
    "task": {"kind": "adding"},
    "distributed": {"workers": 2, "cpus_per_worker": 0.5},
    "schedule": {"rounds": 5},
}


def _start_in_thread(job: RayJob, timeout_s: float, **kwargs: Any) -> BaseException | None:
    """job.start's error, or None; fails the test if start is still waiting well past
    its bound (without one it would wait forever)."""
    errors: list[BaseException] = []

    def start() -> None:
        try:
            job.start(ready_timeout_s=timeout_s, **kwargs)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    thread.join(timeout=timeout_s + 30)
    assert not thread.is_alive(), f"the gang start was still waiting after {timeout_s + 30:g} s"
    return errors[0] if errors else None


def test_a_resume_that_hangs_fails_the_start_naming_the_checkpoint(
    ray_address: str, tmp_path: Path
) -> None:
    # Reading a FIFO with no writer blocks: a checkpoint on a hung file system.
    checkpoint = tmp_path / "hung.ckpt"
    os.mkfifo(checkpoint)
    job = RayJob(resolve(SMALL_GANG), job_key="hung-resume", artifacts_url=str(tmp_path))
    try:
        # Also the time the job's own actors take to start (import torch) on a busy host.
        error = _start_in_thread(job, 15.0, resume=(str(checkpoint), "0" * 64))
    finally:
        job.stop()  # kills the driver blocked on the FIFO
    assert isinstance(error, TimeoutError), repr(error)
    assert str(error) == (
        f"the gang's driver did not resume from checkpoint {checkpoint} within 15 s"
        " (LAGTRAIN_GANG_READY_SECONDS)"
    )


def test_warm_actors_that_hang_fail_the_start_and_are_not_kept(ray_address: str) -> None:
    node = ray.get_runtime_context().get_node_id()
    pool = WarmPool(size=3, idle_seconds=3600)  # the gang's driver and two replicas
    pids: list[int] = []
    try:
        pool.prewarm(node)
        wait_until(lambda: pool.started_count() == 3, timeout=120, what="the warm actors")
        actors = [idle.actor for idle in pool._idle]
        pids = ray.get([a.__ray_call__.remote(lambda _self: os.getpid()) for a in actors])
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        job = RayJob(resolve(SMALL_GANG), job_key="hung-become", artifacts_url="/", pool=pool)
        try:
            error = _start_in_thread(job, 3.0)
        finally:
            job.stop()
        assert isinstance(error, TimeoutError), repr(error)
        assert str(error) == (
            "the gang's warm actors did not take up the job within 3 s"
            " (LAGTRAIN_GANG_READY_SECONDS)"
        )
        # A start that did not end cleanly kills its warm actors: none goes back idle.
        assert pool.idle_count() == 0
        wait_until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids),
            timeout=30,
            what="the stopped actors to be killed",
        )
    finally:
        for pid in pids:  # however the test ends, a stopped process is let go
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        pool.close()


def test_a_checkpoint_the_driver_cannot_load_is_a_resume_failure(
    ray_address: str, tmp_path: Path
) -> None:
    """What workers.resume.fallback_resume falls back from: a file that passes its
    sha256 but is no checkpoint this version reads (the driver's load raised). A
    file the driver cannot read at all stays the start's plain error (retried: the
    next attempt may read it)."""
    foreign = tmp_path / "other-version.ckpt"
    foreign.write_bytes(b"not a checkpoint of this version")
    sha = hashlib.sha256(foreign.read_bytes()).hexdigest()
    job = RayJob(resolve(SMALL_GANG), job_key="foreign-resume", artifacts_url=str(tmp_path))
    try:
        error = _start_in_thread(job, 60.0, resume=(str(foreign), sha))
        assert isinstance(error, ResumeFailed), repr(error)
        assert error.uri == str(foreign), error.uri
        assert error.reason.startswith("UnpicklingError"), error.reason
        # The fallback's next try: fresh actors (new names) in the placement group
        # the gang still holds, from round 0.
        held = job.pg
        assert job.restart(ready_timeout_s=60.0, resume=None) == 0
        assert job.pg is held
        assert ray.get_actor("lagtrain-jobforeign-resume-attempt1-try2-driver") is not None
    finally:
        job.stop()
    missing = RayJob(resolve(SMALL_GANG), job_key="missing-resume", artifacts_url=str(tmp_path))
    try:
        error = _start_in_thread(missing, 60.0, resume=(str(tmp_path / "gone.ckpt"), sha))
    finally:
        missing.stop()
    assert isinstance(error, ray.exceptions.RayTaskError), repr(error)
    assert not isinstance(error, ResumeFailed)
