"""Deleting an uploaded dataset: the only way, with deleting a finished job's
checkpoints, for a user to give back storage quota (max_storage_bytes counts uploads
and checkpoints). A dataset that an unfinished job or sweep of its owner names stays:
deleting it would fail that job later, on a worker, instead of now."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound
from service.store.datasets import UPLOAD_PREFIX, upload_id
from service.store.models import TERMINAL, Dataset, Job, Sweep
from service.store.quotas import lock_owner
from service.store.sweeps import SWEEP_TERMINAL
from service.store.users import Principal


def delete_dataset(*, session: Session, dataset_id: int, viewer: Principal) -> Dataset:
    """Delete the dataset row if `viewer` owns it (or is an admin) and nothing
    unfinished uses it (NotFound / Conflict otherwise); returns the deleted row, whose
    file the caller removes once this transaction has committed and no other row
    names it (file_in_use)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or (dataset.owner_id != viewer.user_id and not viewer.is_admin):
        raise NotFound(f"dataset {dataset_id} not found")
    # The owner's quota lock, which every submit of theirs holds while it checks its
    # upload (store.spec_checks) and queues the job: a submit naming this dataset
    # either committed before this check, and is seen by it, or finds it gone.
    lock_owner(session=session, user_id=dataset.owner_id)
    users = _unfinished_users(session=session, owner_id=dataset.owner_id, dataset_id=dataset_id)
    if users:
        them, they = ("that", "it finishes") if len(users) == 1 else ("them", "they finish")
        raise Conflict(
            # Named as the specs and the Data page name it.
            f"{UPLOAD_PREFIX}{dataset_id} is used by unfinished {', '.join(users)}; "
            f"cancel {them} or wait until {they}, then delete it"
        )
    # By id, after the lock: of two concurrent deletes, the second deletes nothing.
    gone = session.execute(delete(Dataset).where(Dataset.id == dataset_id))
    if gone.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"dataset {dataset_id} not found")
    session.flush()
    return dataset


def file_in_use(*, session: Session, uri: str) -> bool:
    """Whether a dataset row still names the file at `uri`. Earlier uploads of the
    same bytes shared one content-addressed file; every upload now writes its own, so
    no new row can come to name a file that no row names any more."""
    return bool(session.scalar(select(func.count()).where(Dataset.uri == uri)))


def _unfinished_users(*, session: Session, owner_id: int, dataset_id: int) -> list[str]:
    """['job 4', 'job 7', 'sweep 2'] for the owner's unfinished jobs and sweeps that
    name the dataset (none: empty). Read in Python: a user's unfinished jobs are bounded by
    max_queued_jobs and max_running_jobs, and the two databases' JSON paths differ."""
    jobs = session.execute(
        select(Job.id, Job.spec).where(Job.owner_id == owner_id, Job.status.not_in(TERMINAL))
    ).all()
    sweeps = session.execute(
        select(Sweep.id, Sweep.spec).where(
            Sweep.owner_id == owner_id, Sweep.status.not_in(SWEEP_TERMINAL)
        )
    ).all()
    names = [f"job {row.id}" for row in jobs if dataset_id in _job_datasets(row.spec)]
    names += [f"sweep {row.id}" for row in sweeps if dataset_id in _sweep_datasets(row.spec)]
    return names


def _job_datasets(spec: dict[str, Any]) -> set[int]:
    return _ids([(spec.get("task") or {}).get("dataset")])


def _sweep_datasets(spec: dict[str, Any]) -> set[int]:
    """The base's dataset and every dataset a `task.dataset` parameter may choose."""
    refs = [((spec.get("base") or {}).get("task") or {}).get("dataset")]
    parameter = (spec.get("parameters") or {}).get("task.dataset") or {}
    refs += parameter.get("choices") or []
    return _ids(refs)


def _ids(refs: list[Any]) -> set[int]:
    return {i for ref in refs if isinstance(ref, str) and (i := upload_id(ref)) is not None}
