"""Run in a spawned process by test_claim_concurrency: claim until the queue is empty."""

from __future__ import annotations

import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from service.store.attempts import claim_next
from service.store.db import make_engine, make_sessionmaker, transaction


def claim_until_empty(
    url: str,
    name: str,
    start: Barrier,
    attempting: Queue[str],
    results: Queue[tuple[list[int], float]],
) -> None:
    """Says on `attempting` when it is about to claim for the first time; puts the
    jobs it claimed and the wall time its first claim committed (inf: none)."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    claimed: list[int] = []
    first_committed_at = float("inf")
    try:
        start.wait(timeout=120)
        attempting.put(name)
        while True:
            with transaction(factory) as session:
                job = claim_next(
                    session=session,
                    dispatcher_id=name,
                    lease_seconds=60,
                    free_cpus=1e6,
                    free_gpus=0,
                )
            if job is None:
                break
            if not claimed:
                first_committed_at = time.time()
            claimed.append(job.job_id)
    finally:
        results.put((claimed, first_committed_at))
        engine.dispose()
