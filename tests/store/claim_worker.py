"""Run in a spawned process by test_claim_concurrency: claim until the queue is empty."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from service.store.attempts import claim_next
from service.store.db import make_engine, make_sessionmaker, transaction


def claim_until_empty(url: str, name: str, start: Barrier, results: Queue[list[int]]) -> None:
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    claimed: list[int] = []
    try:
        start.wait(timeout=120)
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
            claimed.append(job.job_id)
    finally:
        results.put(claimed)
        engine.dispose()
