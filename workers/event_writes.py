"""One batch of a gang's events written to the store, in stream order: metric
records (fenced, idempotent by seq) and checkpoint records (fenced, by round), with
checkpoint retention (the newest `checkpoints_keep`; the final one is the newest)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from service.store import checkpoints, metrics
from service.store.metrics import MetricIn
from workers.ray_job import CheckpointEvent, JobEvent, RecordEvent


def store_events(
    *,
    session: Session,
    job_id: int,
    token: str,
    attempt: int,
    batch: Sequence[JobEvent],
    checkpoints_keep: int,
) -> list[str]:
    """Returns the files no row names any more (checkpoints dropped by retention, an
    earlier attempt's file for a round checkpointed again), for the caller to delete
    once this transaction has committed."""
    pruned: list[str] = []
    records: list[MetricIn] = []
    # In stream order: a checkpoint's seq covers the metrics sent before it.
    for event in [*batch, None]:
        if isinstance(event, RecordEvent):
            records.append(
                MetricIn(
                    seq=event.round + 1,
                    round=event.round,
                    values=event.values,
                    uploaded=event.uploaded,
                )
            )
            continue
        if records:
            metrics.append_metrics(
                session=session, job_id=job_id, token=token, attempt=attempt, records=records
            )
            records = []
        if isinstance(event, CheckpointEvent):
            # A resumed attempt's checkpoint for a round its lost predecessor also
            # checkpointed replaces that row; the predecessor's file goes with it.
            replaced = checkpoints.checkpoint_file(
                session=session, job_id=job_id, round=event.round
            )
            if replaced is not None and replaced != event.uri:
                pruned.append(replaced)
            checkpoints.record_checkpoint(
                session=session,
                job_id=job_id,
                token=token,
                round=event.round,
                seq=event.round + 1,
                uri=event.uri,
                sha256=event.sha256,
                bytes=event.bytes,
            )
            pruned += checkpoints.prune_checkpoints(
                session=session, job_id=job_id, keep=checkpoints_keep, attempt=attempt
            )
    return pruned
