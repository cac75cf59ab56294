"""Dataset uploads (text or CSV), validated at upload and stored content-addressed
under the artifacts location."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile, status

from service.api.deps import (
    AppSettings,
    Cursor,
    Limit,
    Sessions,
    decode_cursor,
    field_error,
    next_cursor,
)
from service.artifacts import artifact_url, write_once
from service.auth import CurrentUser
from service.schemas.accounts import DatasetOut
from service.schemas.common import Page
from service.schemas.datasets import DatasetFormat, DatasetRejected, guess_format, validate_dataset
from service.store.datasets import UPLOAD_PREFIX, create_dataset, list_datasets
from service.store.db import transaction
from service.store.models import Dataset
from service.store.users import user_names

router = APIRouter(prefix="/v1", tags=["datasets"])

EXTENSION: dict[str, str] = {"text": "txt", "csv": "csv"}
# Multipart framing around the file; the file itself is held to max_dataset_bytes.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def _dataset_out(dataset: Dataset, owner: str) -> DatasetOut:
    return DatasetOut(
        id=dataset.id,
        ref=f"{UPLOAD_PREFIX}{dataset.id}",
        owner=owner,
        filename=dataset.filename,
        format=dataset.format,
        bytes=dataset.bytes,
        sha256=dataset.sha256,
        created_at=dataset.created_at,
    )


@router.post(
    "/datasets",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses={413: {"description": "the file is larger than the server's dataset limit"}},
)
def post_dataset(
    principal: CurrentUser,
    sessions: Sessions,
    settings: AppSettings,
    file: Annotated[UploadFile, File(description="a UTF-8 text file or a numeric CSV")],
    format: Annotated[
        DatasetFormat | None, Form(description="text or csv; default: from the file name")
    ] = None,
) -> DatasetOut:
    limit = settings.max_dataset_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(status_code=413, detail=f"dataset larger than {limit} bytes")
    filename = (file.filename or "dataset")[-255:]
    fmt: DatasetFormat = format or guess_format(filename, file.content_type)
    try:
        shape = validate_dataset(data, fmt)
    except DatasetRejected as exc:
        raise field_error(("body", "file"), f"not a valid {fmt} dataset: {exc}", filename) from exc
    digest = hashlib.sha256(data).hexdigest()
    uri = artifact_url(settings.artifacts_url, f"datasets/{digest}.{EXTENSION[fmt]}")
    write_once(uri, data)
    with transaction(sessions) as session:
        dataset = create_dataset(
            session=session,
            owner_id=principal.user_id,
            filename=filename,
            fmt=fmt,
            size=len(data),
            sha256=digest,
            uri=uri,
            shape=shape.model_dump(),
        )
    return _dataset_out(dataset, principal.name)


@router.get("/datasets", response_model=Page[DatasetOut])
def get_datasets(
    principal: CurrentUser, sessions: Sessions, limit: Limit = 50, cursor: Cursor = None
) -> Page[DatasetOut]:
    with transaction(sessions) as session:
        datasets = list_datasets(
            session=session, viewer=principal, limit=limit, after_id=decode_cursor(cursor)
        )
        names = user_names(session=session, user_ids={d.owner_id for d in datasets})
    return Page[DatasetOut](
        data=[_dataset_out(d, names[d.owner_id]) for d in datasets],
        next_cursor=next_cursor([d.id for d in datasets], limit),
    )
