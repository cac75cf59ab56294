"""Reading metric records and checkpoints of a job."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.store.models import Checkpoint, Metric


def metrics_after(session: Session, *, job_id: int, after_seq: int, limit: int) -> list[Metric]:
    return list(
        session.scalars(
            select(Metric)
            .where(Metric.job_id == job_id, Metric.seq > after_seq)
            .order_by(Metric.seq)
            .limit(limit)
        )
    )


def list_checkpoints(session: Session, *, job_id: int) -> list[Checkpoint]:
    return list(
        session.scalars(
            select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.round)
        )
    )


def get_checkpoint(session: Session, *, job_id: int, checkpoint_id: int) -> Checkpoint:
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None or checkpoint.job_id != job_id:
        raise NotFound(f"checkpoint {checkpoint_id} of job {job_id} not found")
    return checkpoint
