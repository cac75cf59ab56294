"""The SSE stream of one job: the current status first, then metric records (SSE id
= seq) and status changes as they happen; it closes once a terminal status is sent.

Each poll uses its own short session and reads the job's status events *before* its
metrics: a worker's last metrics are committed no later than its terminal status, so
when the first read sees a terminal status the second read sees every metric.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import anyio
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.errors import NotFound
from service.schemas.jobs import MetricRecord, StatusEvent
from service.store.db import read_transaction
from service.store.jobs import events_after, get_job, latest_event
from service.store.metrics import metrics_after
from service.store.models import TERMINAL, Job, JobEvent, Metric

POLL_SECONDS = 0.25
BATCH = 500

Message = dict[str, str]


def metric_record(metric: Metric) -> MetricRecord:
    return MetricRecord(
        seq=metric.seq,
        round=metric.round,
        attempt=metric.attempt,
        time=metric.time,
        values=metric.values,
        uploaded=metric.uploaded,
    )


def _status_from_event(event: JobEvent, job: Job) -> StatusEvent:
    failed = event.to_status == "failed"
    return StatusEvent(
        status=event.to_status,
        time=event.at,
        attempt=event.attempt,
        error=(job.error or event.reason) if failed else None,
    )


class JobStream:
    """One client's view of one job; ``after_seq`` comes from Last-Event-ID."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        job_id: int,
        after_seq: int,
        still_allowed: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.sessions = sessions
        # Asked between polls; False closes the stream (service.api.stream_guard).
        self.still_allowed = still_allowed
        self.job_id = job_id
        self.last_seq = after_seq
        self.last_event_id = 0

    def _current(self) -> StatusEvent:
        with read_transaction(self.sessions) as session:
            event = latest_event(session=session, job_id=self.job_id)
            job = get_job(session=session, job_id=self.job_id)
        if event is None:
            return StatusEvent(
                status=job.status, time=job.created_at, attempt=job.attempt, error=job.error
            )
        # Built from the event, not job.status: a change committed between the two
        # reads is then reported by the next poll instead of being skipped.
        self.last_event_id = event.id
        return _status_from_event(event, job)

    def _poll(self) -> tuple[list[tuple[datetime, Message]], list[Metric], StatusEvent | None]:
        with read_transaction(self.sessions) as session:
            events = events_after(session=session, job_id=self.job_id, after_id=self.last_event_id)
            job = get_job(session=session, job_id=self.job_id)
            metrics = metrics_after(
                session=session, job_id=self.job_id, after_seq=self.last_seq, limit=BATCH
            )
        changes: list[tuple[datetime, Message]] = []
        terminal: StatusEvent | None = None
        for event in events:
            self.last_event_id = event.id
            status = _status_from_event(event, job)
            if event.to_status in TERMINAL:
                terminal = status
            else:
                changes.append((event.at, _status_message(status)))
        if metrics:
            self.last_seq = metrics[-1].seq
        return changes, metrics, terminal

    async def messages(self) -> AsyncIterator[Message]:
        try:
            first = await run_in_threadpool(self._current)
        except NotFound:  # deleted since the route checked it: nothing left to stream
            return
        yield _status_message(first)
        terminal_sent = first.status in TERMINAL
        pending: StatusEvent | None = None
        while True:
            try:
                changes, metrics, terminal = await run_in_threadpool(self._poll)
            except NotFound:
                return
            for message in _merge(changes, metrics):
                yield message
            pending = terminal or pending
            if len(metrics) == BATCH:
                continue  # drain the backlog before a terminal status and before waiting
            if pending is not None and not terminal_sent:
                yield _status_message(pending)
                terminal_sent = True
            if terminal_sent:
                return
            if self.still_allowed is not None and not await self.still_allowed():
                return
            await anyio.sleep(POLL_SECONDS)


def _merge(changes: list[tuple[datetime, Message]], metrics: list[Metric]) -> list[Message]:
    """Interleave status changes and metrics by time, keeping each list's own order
    (metrics stay in seq order); a change sorts before a metric of the same instant."""
    merged: list[Message] = []
    i = 0
    for metric in metrics:
        while i < len(changes) and _utc(changes[i][0]) <= _utc(metric.time):
            merged.append(changes[i][1])
            i += 1
        merged.append(_metric_message(metric))
    merged.extend(message for _at, message in changes[i:])
    return merged


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _status_message(status: StatusEvent) -> Message:
    return {"event": "status", "data": status.model_dump_json()}


def _metric_message(metric: Metric) -> Message:
    return {
        "event": "metrics",
        "id": str(metric.seq),
        "data": metric_record(metric).model_dump_json(),
    }
