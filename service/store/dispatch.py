"""Reads the dispatcher needs beyond the queue: dataset locations for a claimed job,
and queued jobs whose gang can never fit the cluster."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.store.lifecycle import JobStatus
from service.store.models import Dataset, Job
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
