"""Dataset rows: uploaded files, owned by their uploader, referenced as upload:<id>."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.schemas.data_limits import DatasetShape
from service.schemas.datasets import stored_shape
from service.store.models import Dataset, utcnow
from service.store.users import Principal

UPLOAD_PREFIX = "upload:"
MAX_ID_DIGITS = 18  # stays inside a signed 64-bit key


def create_dataset(
    *,
    session: Session,
    owner_id: int,
    filename: str,
    fmt: str,
    size: int,
    sha256: str,
    uri: str,
    shape: dict[str, Any],
) -> Dataset:
    dataset = Dataset(
        owner_id=owner_id,
        filename=filename,
        format=fmt,
        bytes=size,
        sha256=sha256,
        uri=uri,
        created_at=utcnow(),
        shape=shape,
    )
    session.add(dataset)
    session.flush()
    return dataset


def list_datasets(
    *, session: Session, viewer: Principal, limit: int, after_id: int | None
) -> list[Dataset]:
    """The viewer's datasets (admins: everyone's), oldest first."""
    query = select(Dataset).order_by(Dataset.id).limit(limit)
    if not viewer.is_admin:
        query = query.where(Dataset.owner_id == viewer.user_id)
    if after_id is not None:
        query = query.where(Dataset.id > after_id)
    return list(session.scalars(query))


def upload_id(ref: str) -> int | None:
    """The dataset id an ``upload:<id>`` reference names (None when it names none)."""
    if not ref.startswith(UPLOAD_PREFIX):
        return None
    raw_id = ref.removeprefix(UPLOAD_PREFIX)
    if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > MAX_ID_DIGITS:
        return None
    return int(raw_id)


def owned_upload(*, session: Session, ref: str, owner_id: int) -> Dataset | None:
    """The dataset an ``upload:<id>`` reference names, if ``owner_id`` owns it."""
    dataset_id = upload_id(ref)
    if dataset_id is None:
        return None
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.owner_id != owner_id:
        return None
    return dataset


def upload_shape(*, session: Session, ref: str | None, owner_id: int) -> DatasetShape | None:
    """The stored shape of the upload `ref` names (None for builtin or generated data,
    a dataset not owned by `owner_id`, or one uploaded before shapes were kept)."""
    if ref is None or not ref.startswith(UPLOAD_PREFIX):
        return None
    dataset = owned_upload(session=session, ref=ref, owner_id=owner_id)
    return None if dataset is None else stored_shape(dataset.format, dataset.shape)


def dataset_files(*, session: Session, dataset_ids: Iterable[int]) -> dict[str, tuple[str, str]]:
    """{str(id): (uri, sha256)} for the given dataset ids (the part after "upload:"):
    where a dispatcher finds a claimed job's uploads, and what their bytes hashed to
    at upload."""
    ids = list(dataset_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Dataset.id, Dataset.uri, Dataset.sha256).where(Dataset.id.in_(ids))
    ).all()
    return {str(row.id): (row.uri, row.sha256) for row in rows}
