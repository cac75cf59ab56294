"""Metric records of a job: the fenced append a lease holder makes, and the reads
(pages for the API and the SSE stream, the newest record for a run's summary)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import SequenceGap, StaleLease
from service.store.lifecycle import lease_holder
from service.store.models import Metric, json_safe, utcnow
from service.store.notify import notify_feed


@dataclass(frozen=True)
class MetricIn:
    seq: int
    round: int
    values: Mapping[str, float | int | None]
    uploaded: Sequence[int]  # ranks whose upload the round used
    time: datetime | None = None


def append_metrics(
    *,
    session: Session,
    job_id: int,
    token: str,
    attempt: int,
    records: Sequence[MetricIn],
    now: datetime | None = None,
) -> int:
    """Store metric records; returns how many were new. Only with the current lease
    token and attempt (else StaleLease).

    Idempotent on (job, seq): a record whose seq is already stored is ignored (a
    re-sent batch, or a resumed attempt replaying rounds after its checkpoint). The
    new records must continue job.last_seq without a gap, else SequenceGap and
    nothing is written. Non-finite values (a diverged loss) are stored as null."""
    now = now or utcnow()
    job = lease_holder(session=session, job_id=job_id, token=token)
    if attempt != job.attempt:
        raise StaleLease(f"job {job_id}: attempt {attempt} is not the current one")
    fresh: dict[int, MetricIn] = {}
    for record in records:
        if record.seq < 1:
            raise SequenceGap(f"job {job_id}: metric seq must be >= 1, got {record.seq}")
        if record.seq > job.last_seq:
            fresh.setdefault(record.seq, record)
    expected = job.last_seq + 1
    for seq in sorted(fresh):
        if seq != expected:
            raise SequenceGap(
                f"job {job_id}: metric seq {seq} leaves a gap, expected {expected} "
                f"(stored up to {job.last_seq})"
            )
        expected += 1
    ordered = [fresh[seq] for seq in sorted(fresh)]
    session.add_all(
        Metric(
            job_id=job_id,
            seq=r.seq,
            attempt=attempt,
            round=r.round,
            time=r.time or now,
            values=json_safe(dict(r.values)),
            uploaded=list(r.uploaded),
        )
        for r in ordered
    )
    if ordered:
        job.last_seq = ordered[-1].seq
        # progress.round counts rounds completed (round is 0-based): 300/300 when done.
        job.progress_round = max(job.progress_round, max(r.round for r in ordered) + 1)
        notify_feed(session=session, job_id=job_id)
    session.flush()
    return len(ordered)


def metrics_after(*, session: Session, job_id: int, after_seq: int, limit: int) -> list[Metric]:
    return list(
        session.scalars(
            select(Metric)
            .where(Metric.job_id == job_id, Metric.seq > after_seq)
            .order_by(Metric.seq)
            .limit(limit)
        )
    )


def latest_record(*, session: Session, job_id: int) -> tuple[int, dict[str, Any]] | None:
    """The round and values of the job's newest metric record (None before the first)."""
    row = session.execute(
        select(Metric.round, Metric.values)
        .where(Metric.job_id == job_id)
        .order_by(Metric.seq.desc())
        .limit(1)
    ).one_or_none()
    return None if row is None else (row.round, dict(row.values or {}))
