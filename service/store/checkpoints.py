"""Checkpoints of a job: the fenced record a lease holder makes, and the reads (the
newest one to resume from, the list and one file for the API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound
from service.store.lifecycle import lease_holder
from service.store.models import TERMINAL, Checkpoint, Job, utcnow


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint as plain data (it crosses to the dispatcher and to Ray)."""

    id: int
    attempt: int
    round: int
    seq: int
    uri: str
    sha256: str
    bytes: int


def checkpoint_ref(checkpoint: Checkpoint) -> CheckpointRef:
    return CheckpointRef(
        id=checkpoint.id,
        attempt=checkpoint.attempt,
        round=checkpoint.round,
        seq=checkpoint.seq,
        uri=checkpoint.uri,
        sha256=checkpoint.sha256,
        bytes=checkpoint.bytes,
    )


def record_checkpoint(
    *,
    session: Session,
    job_id: int,
    token: str,
    round: int,
    seq: int,
    uri: str,
    sha256: str,
    bytes: int,
    now: datetime | None = None,
) -> Checkpoint:
    """Record the checkpoint written at `round` (covering metrics up to `seq`); only
    with the current lease token (else StaleLease). A resumed attempt that reaches a
    round its lost predecessor checkpointed replaces that row: the newest file for a
    round wins."""
    now = now or utcnow()
    job = lease_holder(session=session, job_id=job_id, token=token)
    checkpoint = session.scalars(
        select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.round == round)
    ).one_or_none()
    if checkpoint is None:
        checkpoint = Checkpoint(job_id=job_id, round=round)
        session.add(checkpoint)
    checkpoint.attempt = job.attempt
    checkpoint.seq = seq
    checkpoint.uri = uri
    checkpoint.sha256 = sha256
    checkpoint.bytes = bytes
    checkpoint.created_at = now
    session.flush()
    return checkpoint


def checkpoint_file(*, session: Session, job_id: int, round: int) -> str | None:
    """The file the job's checkpoint row for `round` names, if there is one: the file
    record_checkpoint is about to replace when a resumed attempt reaches a round its
    lost predecessor checkpointed."""
    uri: str | None = session.scalar(
        select(Checkpoint.uri).where(Checkpoint.job_id == job_id, Checkpoint.round == round)
    )
    return uri


def prune_checkpoints(*, session: Session, job_id: int, keep: int, attempt: int) -> list[str]:
    """Retention: delete all but the job's newest `keep` checkpoints by round (the
    final one is always the newest) and the newest `keep` of the running `attempt`;
    returns the removed files' URIs, for the caller to delete once this transaction
    has committed. The attempt's own: one that resumed below checkpoints whose files
    did not verify (a wiped folder, a host that could not read them) writes rounds
    lower than theirs, which by round alone were deleted as soon as written (a
    review); the older rows stay too, for an attempt on a host that can read them."""
    newest = (
        select(Checkpoint.id)
        .where(Checkpoint.job_id == job_id)
        .order_by(Checkpoint.round.desc())
        .limit(keep)
    )
    attempts_own = newest.where(Checkpoint.attempt == attempt)
    old = session.scalars(
        select(Checkpoint).where(
            Checkpoint.job_id == job_id,
            Checkpoint.id.not_in(newest.scalar_subquery()),
            Checkpoint.id.not_in(attempts_own.scalar_subquery()),
        )
    ).all()
    for checkpoint in old:
        session.delete(checkpoint)
    session.flush()
    return [checkpoint.uri for checkpoint in old]


def delete_checkpoints(*, session: Session, job: Job) -> list[tuple[str, int]]:
    """Delete every checkpoint of a finished job (Conflict for an unfinished one: it
    may still resume from them); returns (uri, bytes) of the rows this call deleted
    (of two concurrent calls, the second deletes none), whose files the caller
    deletes once this transaction has committed. A finished job never records
    another (record_checkpoint needs its lease), so none can appear afterwards."""
    if job.status not in TERMINAL:
        raise Conflict(
            f"job {job.id} is {job.status}; its checkpoints can be deleted once it has finished"
        )
    gone = session.execute(
        delete(Checkpoint)
        .where(Checkpoint.job_id == job.id)
        .returning(Checkpoint.uri, Checkpoint.bytes),
        execution_options={"synchronize_session": False},
    ).all()
    session.flush()
    return [(row.uri, row.bytes) for row in gone]


def latest_checkpoint(*, session: Session, job_id: int) -> Checkpoint | None:
    return session.scalars(
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id)
        .order_by(Checkpoint.round.desc())
        .limit(1)
    ).one_or_none()


def list_checkpoints(*, session: Session, job_id: int) -> list[Checkpoint]:
    return list(
        session.scalars(
            select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.round)
        )
    )


def get_checkpoint(*, session: Session, job_id: int, checkpoint_id: int) -> Checkpoint:
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None or checkpoint.job_id != job_id:
        raise NotFound(f"checkpoint {checkpoint_id} of job {job_id} not found")
    return checkpoint
