"""The job after a cancel, on a dispatcher with a warm pool: a cancelled job that
stops at its round's end hands its actors back (as served), against the baseline
where they are killed (`workers.job_run.CANCEL_STOP_SECONDS` set to 0 in this process:
what every cancel did before). A real dispatcher (in this process) on a local Ray and
a migrated SQLite file; the pool holds 3 actors, the gang's size.

Per repeat, each variant in turn: a long lag_paper_linreg job runs a few rounds and is
cancelled (cancel requested → `cancelled` recorded), then a short job of the same
gang shape is queued (queued → `succeeded`: what a pruned sweep trial's successor
waits). The short job hands its actors back, so each repeat starts from a full pool.

    .venv/bin/python benchmarks/cancel_warm.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.schemas.resolve import resolve
from service.settings import Settings
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.jobs import enqueue, get_job, request_cancel
from service.store.migrate import upgrade
from service.store.users import create_user
from workers import job_run
from workers.dispatcher import Dispatcher
from workers.ray_runtime import connect

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import load_average, wait_for
else:  # run as `python benchmarks/cancel_warm.py`: benchmarks/ is on sys.path
    from local_stack import load_average, wait_for

GANG = {"workers": 2, "cpus_per_worker": 0.5}
LONG = {
    "task": {"kind": "lag_paper_linreg"},
    "distributed": GANG,
    "schedule": {"rounds": 1_000_000, "checkpoint_every": 1_000_000},
}
SHORT = {"task": {"kind": "lag_paper_linreg"}, "distributed": GANG, "schedule": {"rounds": 5}}
VARIANTS = {"hand back (as served)": job_run.CANCEL_STOP_SECONDS, "kill (before)": 0.0}


def status(sessions: Any, job_id: int) -> tuple[str, int]:
    with sessions() as session:
        job = get_job(session=session, job_id=job_id)
        return job.status, job.progress_round


def one_round_trip(sessions: Any, owner_id: int) -> tuple[float, float]:
    """(cancel requested → cancelled, the next job queued → succeeded), in seconds."""
    with transaction(sessions) as session:
        long_id = enqueue(session=session, owner_id=owner_id, spec=resolve(LONG))[0].id
    wait_for(lambda: status(sessions, long_id)[1] >= 3, timeout=300, what="a few rounds")
    started = time.perf_counter()
    with transaction(sessions) as session:
        request_cancel(session=session, job=get_job(session=session, job_id=long_id), actor="b")
    wait_for(lambda: status(sessions, long_id)[0] == "cancelled", timeout=120, what="cancel")
    cancelled = time.perf_counter() - started
    started = time.perf_counter()
    with transaction(sessions) as session:
        short_id = enqueue(session=session, owner_id=owner_id, spec=resolve(SHORT))[0].id
    wait_for(lambda: status(sessions, short_id)[0] == "succeeded", timeout=300, what="next job")
    return cancelled, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    connect(None, num_cpus=4)
    with tempfile.TemporaryDirectory(prefix="lagtrain-cancel-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'lagtrain.db'}"
        upgrade(url)
        settings = Settings(
            database_url=url,
            artifacts_url=str(Path(tmp) / "artifacts"),
            state_dir=Path(tmp) / "state",
            warm_pool_size=3,
            heartbeat_seconds=0.5,
            poll_seconds=0.2,
        )
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        dispatcher = Dispatcher(settings, sessions)
        pool = dispatcher.warm_pool
        assert pool is not None
        thread = threading.Thread(target=dispatcher.run_forever, daemon=True)
        thread.start()
        found: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
        try:
            with transaction(sessions) as session:
                owner_id = create_user(session=session, name="bench", role="user")[0].id
            for _ in range(args.repeat):
                for name, grace in VARIANTS.items():
                    wait_for(lambda: pool.started_count() == 3, timeout=300, what="the pool")
                    job_run.CANCEL_STOP_SECONDS = grace
                    found[name].append(one_round_trip(sessions, owner_id))
        finally:
            dispatcher.stop()
            thread.join(timeout=60)
            engine.dispose()

    print(f"# the job after a cancel, warm pool of 3, {args.repeat} repeats ({load_average()})")
    print("| cancelled job's actors | cancel → cancelled (s) | next job queued → succeeded (s) |")
    print("|---|---|---|")
    for name, runs in found.items():
        cells = []
        for column in (0, 1):
            values = [run[column] for run in runs]
            low, high = min(values), max(values)
            cells.append(f"{statistics.median(values):.2f} ({low:.2f}-{high:.2f})")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
