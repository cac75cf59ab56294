"""What a sweep controller's poll costs while a large sweep only runs: one sweep of
1,000 trials, 900 finished and 100 running (parallel 100), nothing changing. The
controller as it is — the step skipped while its inputs are unchanged
(workers.sweeps.idle_sweeps) — against the same controller stepping at every poll
(what it did before), in one process, alternating. Medians of 15 polls each, and the
share of a poll spent in write transactions (SQLite's one write lock).

    python -m benchmarks.sweep_poll [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service.schemas.sweep_space import check_sweep
from service.schemas.sweeps import SweepSpec
from service.settings import Settings
from service.store import attempts
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.migrate import upgrade
from service.store.models import Job
from service.store.sweeps import create_sweep
from service.store.users import create_user
from workers.sweeps.controller import SweepController
from workers.sweeps.idle_sweeps import IdleSweeps

TRIALS, PARALLEL, POLLS = 1_000, 100, 15
SETTINGS = Settings(
    default_max_running_jobs=10_000, default_max_queued_jobs=100_000, default_max_cpus=100_000
)


class EveryPoll(IdleSweeps):
    """The controller before: every poll steps every sweep."""

    def unchanged(self, sweep_id: int) -> bool:
        return False


def fill(factory: sessionmaker[Session]) -> SweepController:
    """A sweep with TRIALS - PARALLEL trials finished and PARALLEL running."""
    spec = {
        "name": "big",
        "base": {"task": {"kind": "lag_paper_linreg"}, "schedule": {"rounds": 40}},
        "parameters": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}},
        "objectives": [{"metric": "optimality_gap", "direction": "minimize"}],
        "trials": TRIALS,
        "parallel": PARALLEL,
        "sampler": "random",
    }
    with transaction(factory) as session:
        user, _, _ = create_user(session=session, name="ada", role="user")
        stored = check_sweep(SweepSpec.model_validate(spec)).stored
        create_sweep(session=session, owner_id=user.id, spec=stored, name="big")
    controller = SweepController(SETTINGS, factory, controller_id="bench")
    for batch in range(TRIALS // PARALLEL):
        controller.poll()  # records the last batch's results, submits the next
        claimed = []
        while True:
            with transaction(factory) as session:
                job = attempts.claim_next(
                    session=session,
                    dispatcher_id="bench",
                    lease_seconds=3600,
                    free_cpus=10_000,
                    free_gpus=0,
                    quota_defaults=SETTINGS.quota_defaults(),
                )
            if job is None:
                break
            claimed.append(job)
        if batch == TRIALS // PARALLEL - 1:
            break  # the last batch stays running
        for job in claimed:
            with transaction(factory) as session:
                attempts.finish(
                    session=session,
                    job_id=job.job_id,
                    token=job.fencing_token,
                    summary={"final_metrics": {"optimality_gap": 0.1 + job.job_id * 1e-4}},
                )
    controller.poll()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'sweeps.db'}"
        upgrade(url)
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        controller = fill(factory)
        with factory() as session:
            running = session.query(Job).filter(Job.status == "running").count()
        print(f"load average {os.getloadavg()[0]:.2f}; {engine.dialect.name}; {running} running")
        idle, every = IdleSweeps(factory), EveryPoll(factory)
        times: dict[str, list[float]] = {"skipped while unchanged": [], "stepped every poll": []}
        for _ in range(POLLS):
            for name, memory in (("skipped while unchanged", idle), ("stepped every poll", every)):
                controller.idle = memory
                started = time.perf_counter()
                controller.poll()
                times[name].append((time.perf_counter() - started) * 1e3)
        medians = {}
        for name, ms in times.items():
            ms.sort()
            medians[name] = statistics.median(ms)
            print(f"{name:24s} {medians[name]:8.1f} ms (spread {ms[0]:.1f}-{ms[-1]:.1f})")
        ratio = medians["skipped while unchanged"] / medians["stepped every poll"]
        print(f"ratio {ratio:.3f}")
        engine.dispose()


if __name__ == "__main__":
    main()
