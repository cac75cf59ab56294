"""Deleting a finished job: its row, and with it (the foreign keys cascade) its
metric records, events, attempts and checkpoint rows. The one way for a lab's tables
to shrink — metrics and events only grow otherwise — and for a user to clear away
experiments they no longer want; the audit log keeps the record that the job was
there and who removed it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound
from service.store.checkpoints import delete_checkpoints
from service.store.models import TERMINAL, Job, Metric, Sweep
from service.store.sweeps import SWEEP_TERMINAL


@dataclass(frozen=True)
class RemovedJob:
    """What went with the job: the audit's detail, and the checkpoint files (uri,
    bytes) the caller deletes once this transaction has committed."""

    metric_records: int
    checkpoint_files: list[tuple[str, int]]


def delete_job(*, session: Session, job: Job) -> RemovedJob:
    """Delete a finished job (Conflict for one that has not finished: a dispatcher
    may still write to it; and for a trial of a sweep that has not finished: the
    sweep still reads its trials' jobs). Terminal states never change, so nothing can
    write to the job once this has checked it. A trial of a finished sweep keeps its
    row in the sweep, with its value and status, and no job (`job_id` is set to null
    by its foreign key). Of two concurrent deletes the second is a NotFound."""
    if job.status not in TERMINAL:
        raise Conflict(
            f"job {job.id} is {job.status}; cancel it or wait until it finishes, then delete it"
        )
    if job.sweep_id is not None:
        sweep_status = session.scalar(select(Sweep.status).where(Sweep.id == job.sweep_id))
        if sweep_status is not None and sweep_status not in SWEEP_TERMINAL:
            raise Conflict(
                f"job {job.id} is a trial of sweep {job.sweep_id}, which is {sweep_status}; "
                "delete it once the sweep has finished"
            )
    records = session.scalar(select(func.count()).where(Metric.job_id == job.id)) or 0
    files = delete_checkpoints(session=session, job=job)
    gone = session.execute(
        delete(Job).where(Job.id == job.id), execution_options={"synchronize_session": False}
    )
    if gone.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"job {job.id} not found")
    session.expunge(job)
    session.flush()
    return RemovedJob(metric_records=records, checkpoint_files=files)
