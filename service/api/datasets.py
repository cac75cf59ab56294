"""Dataset uploads (text or CSV), validated at upload and stored under the artifacts
location, one file per upload; deleting one gives its bytes back to the owner's
storage quota."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile, status
from sqlalchemy.orm import Session, sessionmaker

from service.api.body_limit import BodyTooLarge
from service.api.deps import (
    AppSettings,
    Cursor,
    DatasetId,
    Limit,
    Sessions,
    decode_cursor,
    field_error,
    next_cursor,
)
from service.api.query_check import only_form_fields
from service.api.responses import errors
from service.artifacts import CHUNK_BYTES, artifact_url, remove_quietly, write_once_from
from service.auth import CurrentUser
from service.errors import ArtifactsUnavailable
from service.schemas.accounts import DatasetOut
from service.schemas.audit import AuditAction
from service.schemas.common import CONTROL_CHARACTERS, Page
from service.schemas.datasets import (
    DatasetFormat,
    DatasetRejected,
    guess_format,
    stored_shape,
    validate_stream,
)
from service.store.audit import record
from service.store.dataset_removal import delete_dataset, file_in_use
from service.store.datasets import UPLOAD_PREFIX, create_dataset, list_datasets
from service.store.db import read_transaction, transaction
from service.store.models import Dataset
from service.store.quotas import check_upload_storage
from service.store.users import user_names

router = APIRouter(prefix="/v1", tags=["datasets"])
log = logging.getLogger(__name__)

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
        shape=stored_shape(dataset.format, dataset.shape),
    )


@router.post(
    "/datasets",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses=errors(400, 401, 413, 429),
    dependencies=[Depends(only_form_fields("file", "format"))],
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
    """Validated in one streaming pass (bounded memory; the multipart parser keeps
    the file on disk), then copied to the artifacts location. 413 over
    max_dataset_bytes, 429 over the storage quota, 422 naming `file` when it is not
    a usable dataset (or over the vocabulary / CSV width limits)."""
    limit = settings.max_dataset_bytes
    # Kept for display only: what no store can hold (a NUL for PostgreSQL, an unpaired
    # surrogate for UTF-8) and what a terminal would obey (control characters) is
    # dropped or replaced rather than refused.
    raw_name = CONTROL_CHARACTERS.sub("", file.filename or "dataset")[-255:]
    filename = raw_name.encode("utf-8", "replace").decode("utf-8") or "dataset"
    fmt: DatasetFormat = format or guess_format(filename, file.content_type)
    digest = hashlib.sha256()
    size = 0

    def chunks() -> Iterator[bytes]:
        nonlocal size
        while chunk := file.file.read(CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"dataset larger than {limit} bytes")
            digest.update(chunk)
            yield chunk

    def check_room(session: Session, adding: int) -> None:
        check_upload_storage(
            session=session,
            user_id=principal.user_id,
            defaults=settings.quota_defaults(),
            adding=adding,
        )

    # The quota is checked before the file is read (what the multipart parser counted:
    # a user at the quota does not cost the server a 50 MB validation each try),
    # before it is stored (no write for a refused upload), and again under the user's
    # quota lock in the transaction that adds the row (concurrent uploads of one user
    # all pass the earlier checks).
    with transaction(sessions) as session:
        check_room(session, file.size or 0)
    try:
        shape = validate_stream(chunks(), fmt, settings.upload_limits())
    except DatasetRejected as exc:
        raise field_error(("body", "file"), f"not a valid {fmt} dataset: {exc}", filename) from exc
    with transaction(sessions) as session:
        check_room(session, size)
    # Its own file, not one shared by every upload of the same bytes: a deleted
    # dataset's file can then go at once, with no upload racing to name it again.
    name = f"datasets/{digest.hexdigest()}-{secrets.token_hex(8)}.{EXTENSION[fmt]}"
    uri = artifact_url(settings.artifacts_url, name)
    file.file.seek(0)
    try:
        write_once_from(uri, file.file)
    except OSError as exc:  # a full or read-only location: a 503, not a traceback
        log.warning("upload by user %s not stored at %s: %s", principal.user_id, uri, exc)
        raise ArtifactsUnavailable(
            "the server cannot store files right now (its artifacts location refused "
            "the write); nothing was stored, try again later"
        ) from exc
    try:
        with transaction(sessions) as session:
            check_room(session, size)
            dataset = create_dataset(
                session=session,
                owner_id=principal.user_id,
                filename=filename,
                fmt=fmt,
                size=size,
                sha256=digest.hexdigest(),
                uri=uri,
                shape=shape.model_dump(),
            )
            record(
                session=session,
                actor=principal,
                action=AuditAction.DATASET_UPLOADED,
                target=f"dataset:{dataset.id}",
                detail={"filename": filename, "bytes": size},
            )
    except BaseException:  # refused, or the transaction failed
        if not _named_by_a_row(sessions, uri):
            remove_quietly(uri, location=settings.artifacts_url)
        raise
    return _dataset_out(dataset, principal.name)


def _named_by_a_row(sessions: sessionmaker[Session], uri: str) -> bool:
    """Whether the upload's row committed though its transaction raised: a connection
    lost at COMMIT after the server applied it. Its file then stays (before, it was
    removed, and every job on the listed dataset failed "the file … is missing"). A
    store that cannot say keeps the file too: `lagtrain orphan-files` removes it once
    no row names it."""
    try:
        with read_transaction(sessions) as session:
            return file_in_use(session=session, uri=uri)
    except Exception:
        log.warning("upload at %s kept: the store could not say whether its row committed", uri)
        return True


@router.get("/datasets", response_model=Page[DatasetOut], responses=errors(401))
def get_datasets(
    principal: CurrentUser, sessions: Sessions, limit: Limit = 50, cursor: Cursor = None
) -> Page[DatasetOut]:
    with read_transaction(sessions) as session:
        datasets = list_datasets(
            session=session, viewer=principal, limit=limit + 1, after_id=decode_cursor(cursor)
        )
        names = user_names(session=session, user_ids={d.owner_id for d in datasets})
    return Page[DatasetOut](
        data=[_dataset_out(d, names[d.owner_id]) for d in datasets[:limit]],
        next_cursor=next_cursor([d.id for d in datasets], limit),
    )


@router.delete(
    "/datasets/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 404, 409),
)
def remove_dataset(
    dataset_id: DatasetId, principal: CurrentUser, sessions: Sessions, settings: AppSettings
) -> Response:
    """Delete an upload (its owner or an admin) and its file; its bytes no longer
    count against the owner's storage quota. 409 while an unfinished job or sweep of
    the owner names it; jobs that have finished keep their record."""
    with transaction(sessions) as session:
        dataset = delete_dataset(session=session, dataset_id=dataset_id, viewer=principal)
        record(
            session=session,
            actor=principal,
            action=AuditAction.DATASET_DELETED,
            target=f"dataset:{dataset_id}",
            detail={
                "owner_id": dataset.owner_id,
                "filename": dataset.filename,
                "bytes": dataset.bytes,
            },
        )
        uri = dataset.uri
    # After the commit: a failed commit leaves the row, and so must leave its file.
    with read_transaction(sessions) as session:
        in_use = file_in_use(session=session, uri=uri)
    if not in_use:
        remove_quietly(uri, location=settings.artifacts_url)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
