"""Reads the dispatcher needs beyond the queue: dataset locations for a claimed job,
and queued jobs whose gang can never fit the cluster."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.store.lifecycle import JobStatus
from service.store.models import Dataset, Job, Metric
from service.store.queue import RESOURCE_EPSILON


def dataset_uris(session: Session, *, dataset_ids: Iterable[int]) -> dict[str, str]:
    """{str(id): uri} for the given dataset ids (the part after "upload:")."""
    ids = list(dataset_ids)
    if not ids:
        return {}
    rows = session.execute(select(Dataset.id, Dataset.uri).where(Dataset.id.in_(ids))).all()
    return {str(row.id): row.uri for row in rows}


def unschedulable_jobs(session: Session, *, total_cpus: float, total_gpus: float) -> list[Job]:
    """Queued jobs whose whole gang needs more than the cluster has in total."""
    query = select(Job).where(
        Job.status == JobStatus.QUEUED.value,
        or_(
            Job.cpus_required > total_cpus + RESOURCE_EPSILON,
            Job.gpus_required > total_gpus + RESOURCE_EPSILON,
        ),
    )
    return list(session.scalars(query))


def latest_metric_values(session: Session, *, job_id: int) -> dict[str, Any]:
    """The values of the job's newest metric record ({} before the first)."""
    values = session.scalar(
        select(Metric.values).where(Metric.job_id == job_id).order_by(Metric.seq.desc()).limit(1)
    )
    return dict(values or {})
