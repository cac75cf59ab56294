"""What a job produced: metric pages, the live SSE stream, checkpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse

from service.api.deps import (
    MAX_ID,
    MAX_METRICS_PAGE,
    MAX_SEQ,
    AppSettings,
    JobId,
    Sessions,
    field_error,
)
from service.api.event_stream import EventStream
from service.api.job_stream import metric_record
from service.api.responses import errors
from service.api.stream_guard import StreamSlots, TokenRecheck
from service.api.stream_hub import StreamHub
from service.artifacts import file_size, iter_file, remove_empty_folders, remove_quietly
from service.auth import CurrentUser
from service.errors import NotFound
from service.schemas.audit import AuditAction
from service.schemas.jobs import CheckpointList, CheckpointOut, MetricPage
from service.store.audit import record
from service.store.checkpoints import delete_checkpoints, get_checkpoint, list_checkpoints
from service.store.db import read_transaction, transaction
from service.store.jobs import get_visible_job
from service.store.metrics import metrics_after

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

CheckpointId = Annotated[int, Path(ge=1, le=MAX_ID, description="checkpoint id")]


@router.get("/{job_id}/metrics", response_model=MetricPage, responses=errors(401, 404))
def get_metrics(
    job_id: JobId,
    principal: CurrentUser,
    sessions: Sessions,
    after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_METRICS_PAGE)] = 1000,
) -> MetricPage:
    with read_transaction(sessions) as session:
        get_visible_job(session=session, job_id=job_id, viewer=principal)
        metrics = metrics_after(session=session, job_id=job_id, after_seq=after_seq, limit=limit)
    return MetricPage(
        data=[metric_record(m) for m in metrics],
        next_after_seq=metrics[-1].seq if metrics else after_seq,
    )


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "SSE stream"},
        **errors(401, 404, 429),
    },
)
def get_events(
    request: Request,
    job_id: JobId,
    principal: CurrentUser,
    sessions: Sessions,
    settings: AppSettings,
    last_event_id: Annotated[
        str | None, Header(max_length=20, description="resume after this metric seq")
    ] = None,
) -> EventSourceResponse:
    after_seq = 0
    if last_event_id is not None and last_event_id.strip():
        raw = last_event_id.strip()
        if not (raw.isascii() and raw.isdigit() and int(raw) <= MAX_SEQ):
            raise field_error(("header", "last-event-id"), "must be a metric seq", raw)
        after_seq = int(raw)
    with read_transaction(sessions) as session:
        get_visible_job(session=session, job_id=job_id, viewer=principal)
    slots: StreamSlots = request.app.state.stream_slots
    slots.acquire(principal.user_id, settings.max_streams_per_user)
    recheck = TokenRecheck(sessions, principal.token_id, settings.stream_auth_recheck_seconds)
    hub: StreamHub = request.app.state.stream_hub
    stream = hub.watch(job_id, after_seq=after_seq, still_allowed=recheck)
    return EventStream(stream, on_close=lambda: slots.release(principal.user_id))


@router.get("/{job_id}/checkpoints", response_model=CheckpointList, responses=errors(401, 404))
def get_checkpoints(job_id: JobId, principal: CurrentUser, sessions: Sessions) -> CheckpointList:
    with read_transaction(sessions) as session:
        get_visible_job(session=session, job_id=job_id, viewer=principal)
        checkpoints = list_checkpoints(session=session, job_id=job_id)
    return CheckpointList(
        data=[
            CheckpointOut(
                id=c.id,
                round=c.round,
                attempt=c.attempt,
                sha256=c.sha256,
                bytes=c.bytes,
                created_at=c.created_at,
            )
            for c in checkpoints
        ]
    )


@router.delete(
    "/{job_id}/checkpoints",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 404, 409),
)
def remove_checkpoints(
    job_id: JobId, principal: CurrentUser, sessions: Sessions, settings: AppSettings
) -> Response:
    """Delete every checkpoint of a finished job (its owner or an admin), the final
    one included; their bytes no longer count against the owner's storage quota. The
    job's metrics and summary stay. 409 while the job has not finished."""
    with transaction(sessions) as session:
        job = get_visible_job(session=session, job_id=job_id, viewer=principal)
        deleted = delete_checkpoints(session=session, job=job)
        if deleted:
            record(
                session=session,
                actor=principal,
                action=AuditAction.CHECKPOINTS_DELETED,
                target=f"job:{job_id}",
                detail={
                    "owner_id": job.owner_id,
                    "checkpoints": len(deleted),
                    "bytes": sum(size for _uri, size in deleted),
                },
            )
    for uri, _size in deleted:  # after the commit: a failed commit keeps rows and files
        remove_quietly(uri, location=settings.artifacts_url)
    # The job has finished: nothing writes into its folder again.
    remove_empty_folders(
        [uri for uri, _size in deleted], location=settings.artifacts_url, job_ids=[job_id]
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{job_id}/checkpoints/{checkpoint_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(401, 404)},
)
def download_checkpoint(
    job_id: JobId, checkpoint_id: CheckpointId, principal: CurrentUser, sessions: Sessions
) -> StreamingResponse:
    with read_transaction(sessions) as session:
        get_visible_job(session=session, job_id=job_id, viewer=principal)
        checkpoint = get_checkpoint(session=session, job_id=job_id, checkpoint_id=checkpoint_id)
    try:
        size = file_size(checkpoint.uri)
    except FileNotFoundError as exc:
        raise NotFound(f"checkpoint {checkpoint_id} file is missing") from exc
    name = f"job-{job_id}-round-{checkpoint.round}{_suffix(checkpoint.uri)}"
    return StreamingResponse(
        iter_file(checkpoint.uri),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(size),
            "X-Checkpoint-SHA256": checkpoint.sha256,
        },
    )


def _suffix(uri: str) -> str:
    tail = uri.rsplit("/", 1)[-1]
    return "." + tail.rsplit(".", 1)[1] if "." in tail else ""
